using System.Net.Sockets;
using StackExchange.Redis;

namespace Resilient.Caching;

/// <summary>What kind of failure an exception from Redis is, and so whether it may be swallowed.</summary>
internal enum RedisFailureKind
{
    /// <summary>Not a Redis availability problem (argument errors, cancellation, WRONGTYPE, …): propagates.</summary>
    None,

    /// <summary>The connection failed or timed out: the socket may be dead, so the next probe uses a fresh connection.</summary>
    Transport,

    /// <summary>Redis answered but cannot serve now (LOADING, READONLY, BUSY, OOM, MISCONF, max clients, …): the connection is fine.</summary>
    ServerUnavailable,

    /// <summary>NOAUTH / WRONGPASS: a misconfiguration, swallowed like an outage but logged at Error.</summary>
    Authentication,
}

internal static class RedisErrorClassifier
{
    // Reply prefixes that mean "not available now" rather than "your command is wrong".
    private static readonly string[] s_unavailableReplies =
        ["LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "OOM", "MISCONF", "NOREPLICAS"];

    private static readonly string[] s_authenticationReplies = ["NOAUTH", "WRONGPASS"];

    public static RedisFailureKind Classify(Exception exception)
    {
        switch (exception)
        {
            case RedisConnectionException connection:
                return connection.FailureType == ConnectionFailureType.AuthenticationFailure
                    || StartsWithAny(connection.Message, s_authenticationReplies)
                    || (connection.InnerException is { } inner && Classify(inner) == RedisFailureKind.Authentication)
                    ? RedisFailureKind.Authentication
                    : RedisFailureKind.Transport;
            case RedisTimeoutException:
            case TimeoutException:
            case SocketException:
            case IOException:
                return RedisFailureKind.Transport;
            case ObjectDisposedException disposed:
                return IsRedisObject(disposed.ObjectName) ? RedisFailureKind.Transport : RedisFailureKind.None;
            case RedisServerException server:
                return ClassifyReply(server);
            case AggregateException aggregate:
                return ClassifyAggregate(aggregate);
            default:
                return RedisFailureKind.None;
        }
    }

    private static RedisFailureKind ClassifyReply(RedisServerException server)
    {
        switch (server.Kind)
        {
            case RedisErrorKind.NoAuth or RedisErrorKind.WrongPass:
                return RedisFailureKind.Authentication;
            case RedisErrorKind.Loading or RedisErrorKind.ReadOnly or RedisErrorKind.MasterDown or RedisErrorKind.Busy
                or RedisErrorKind.TryAgain or RedisErrorKind.ClusterDown or RedisErrorKind.OutOfMemory
                or RedisErrorKind.Misconfigured or RedisErrorKind.MaxClients or RedisErrorKind.NoReplicas:
                return RedisFailureKind.ServerUnavailable;
            case RedisErrorKind.ConnectionFault or RedisErrorKind.Timeout:
                return RedisFailureKind.Transport;
            default:
                // Replies the client did not classify (and transactions aborted because of one): read the prefix.
                var message = server.Message.StartsWith("EXECABORT", StringComparison.Ordinal) && server.Message.IndexOf(": ", StringComparison.Ordinal) is var at and > 0
                    ? server.Message[(at + 2)..]
                    : server.Message;
                return StartsWithAny(message, s_authenticationReplies) ? RedisFailureKind.Authentication
                    : StartsWithAny(message, s_unavailableReplies) ? RedisFailureKind.ServerUnavailable
                    : RedisFailureKind.None;
        }
    }

    /// <summary>
    /// A closed multiplexer, socket or pipe, or a discarded inner cache or store, is a connection going away; a
    /// disposed object of the caller's (a buffer writer, a service provider) is the caller's bug and propagates.
    /// </summary>
    private static bool IsRedisObject(string? objectName) =>
        string.IsNullOrEmpty(objectName)
        || objectName.Contains("Redis", StringComparison.OrdinalIgnoreCase)
        || objectName.Contains("Multiplexer", StringComparison.OrdinalIgnoreCase)
        || objectName.Contains("OutputCache", StringComparison.OrdinalIgnoreCase)
        || objectName.StartsWith("System.Net.Sockets", StringComparison.Ordinal)
        || objectName.StartsWith("System.IO.Pipelines", StringComparison.Ordinal)
        || objectName.StartsWith("Pipelines.Sockets", StringComparison.Ordinal);

    /// <summary>Swallowable only when every inner exception is; the first inner one decides the kind.</summary>
    private static RedisFailureKind ClassifyAggregate(AggregateException aggregate)
    {
        var result = RedisFailureKind.None;
        foreach (var inner in aggregate.Flatten().InnerExceptions)
        {
            var kind = Classify(inner);
            if (kind == RedisFailureKind.None)
            {
                return RedisFailureKind.None;
            }

            if (result == RedisFailureKind.None)
            {
                result = kind;
            }
        }

        return result;
    }

    private static bool StartsWithAny(string message, string[] prefixes)
    {
        foreach (var prefix in prefixes)
        {
            if (message.StartsWith(prefix, StringComparison.Ordinal)
                && (message.Length == prefix.Length || message[prefix.Length] == ' '))
            {
                return true;
            }
        }

        return false;
    }
}

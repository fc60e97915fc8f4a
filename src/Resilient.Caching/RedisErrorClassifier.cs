using System.Net.Sockets;
using StackExchange.Redis;

namespace Resilient.Caching;

/// <summary>What kind of failure an exception from Redis is, and so whether it may be swallowed.</summary>
internal enum RedisErrorKind
{
    /// <summary>Not a Redis availability problem (argument errors, cancellation, WRONGTYPE, …): propagates.</summary>
    None,

    /// <summary>The connection failed or timed out: the socket may be dead, so the next probe uses a fresh connection.</summary>
    Transport,

    /// <summary>Redis answered but cannot serve now (LOADING, READONLY, BUSY, OOM, …): the connection is fine.</summary>
    ServerUnavailable,

    /// <summary>NOAUTH / WRONGPASS: a misconfiguration, swallowed like an outage but logged at Error.</summary>
    Authentication,
}

internal static class RedisErrorClassifier
{
    // Reply prefixes that mean "not available now" rather than "your command is wrong".
    private static readonly string[] s_unavailableReplies =
        ["LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "OOM"];

    private static readonly string[] s_authenticationReplies = ["NOAUTH", "WRONGPASS"];

    public static RedisErrorKind Classify(Exception exception)
    {
        switch (exception)
        {
            case RedisConnectionException connection:
                return connection.FailureType == ConnectionFailureType.AuthenticationFailure
                    || StartsWithAny(connection.Message, s_authenticationReplies)
                    || (connection.InnerException is { } inner && Classify(inner) == RedisErrorKind.Authentication)
                    ? RedisErrorKind.Authentication
                    : RedisErrorKind.Transport;
            case RedisTimeoutException:
            case TimeoutException:
            case SocketException:
            case IOException:
            case ObjectDisposedException:
                return RedisErrorKind.Transport;
            case RedisServerException server:
                return StartsWithAny(server.Message, s_authenticationReplies) ? RedisErrorKind.Authentication
                    : StartsWithAny(server.Message, s_unavailableReplies) ? RedisErrorKind.ServerUnavailable
                    : RedisErrorKind.None;
            case AggregateException aggregate:
                return ClassifyAggregate(aggregate);
            default:
                return RedisErrorKind.None;
        }
    }

    /// <summary>Swallowable only when every inner exception is; the first inner one decides the kind.</summary>
    private static RedisErrorKind ClassifyAggregate(AggregateException aggregate)
    {
        var result = RedisErrorKind.None;
        foreach (var inner in aggregate.Flatten().InnerExceptions)
        {
            var kind = Classify(inner);
            if (kind == RedisErrorKind.None)
            {
                return RedisErrorKind.None;
            }

            if (result == RedisErrorKind.None)
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

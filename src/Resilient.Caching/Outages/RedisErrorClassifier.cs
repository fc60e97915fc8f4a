using System.Net.Sockets;
using StackExchange.Redis;

namespace Resilient.Caching.Outages;

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

    private static readonly string[] s_readOnlyReply = ["READONLY"];

    // A redirect the client did not follow: the raw replies, and the client's own wording when it gives up.
    private static readonly string[] s_redirectReplies = ["MOVED", "ASK"];
    private static readonly string[] s_redirectNotFollowed = ["Key has MOVED", "Key has ASK"];

    /// <param name="exception">What the call threw.</param>
    /// <param name="connectionWasReset">The connection the call used has been reset since it began: whatever it throws on the way out is the reset's doing.</param>
    public static RedisFailureKind Classify(Exception exception, bool connectionWasReset = false)
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
                return connectionWasReset || ThrownByRedisStack(disposed) ? RedisFailureKind.Transport : RedisFailureKind.None;
            case RedisServerException server:
                return ClassifyReply(server);
            case AggregateException aggregate:
                return ClassifyAggregate(aggregate, connectionWasReset);
            default:
                return RedisFailureKind.None;
        }
    }

    /// <summary>A READONLY reply: the server is a replica now (a failover in progress, or a demotion).</summary>
    public static bool IsReadOnlyReply(Exception exception) => exception switch
    {
        RedisServerException server => server.Kind == RedisErrorKind.ReadOnly || StartsWithAny(server.Message, s_readOnlyReply)
            || (server.Message.StartsWith("EXECABORT", StringComparison.Ordinal) && server.Message.Contains(": READONLY", StringComparison.Ordinal)),
        AggregateException aggregate => aggregate.Flatten().InnerExceptions.Any(IsReadOnlyReply),
        _ => false,
    };

    /// <summary>
    /// A MOVED or ASK redirect the client did not follow: it follows one redirect per command, so in the instant of a
    /// failover two nodes that each name the other (the old primary already pointing at the new one, the new one, or
    /// the client's map, still at the old) leave it with a redirect in hand. The slot is changing hands, not refused.
    /// </summary>
    public static bool IsRedirect(Exception exception) => exception switch
    {
        RedisServerException server => server.Kind is RedisErrorKind.Moved or RedisErrorKind.Ask or RedisErrorKind.UnknownRedirectTarget
            || StartsWithAny(server.Message, s_redirectReplies) || StartsWithAny(server.Message, s_redirectNotFollowed),
        AggregateException aggregate => aggregate.Flatten().InnerExceptions.Any(IsRedirect),
        _ => false,
    };

    private static RedisFailureKind ClassifyReply(RedisServerException server)
    {
        if (IsRedirect(server))
        {
            return RedisFailureKind.ServerUnavailable;
        }

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
    /// Decided by the code that threw, not by the wording of an object name: the frame that threw belongs to the
    /// Redis client, its socket and pipe layers, or Microsoft's Redis cache and output-cache store.
    /// </summary>
    private static bool ThrownByRedisStack(ObjectDisposedException exception)
    {
        foreach (var frame in new System.Diagnostics.StackTrace(exception, fNeedFileInfo: false).GetFrames())
        {
            var type = frame.GetMethod()?.DeclaringType;
            if (type is null || type == typeof(ObjectDisposedException) || type.FullName == "System.ThrowHelper" || IsAwaitPlumbing(type))
            {
                // The throw helpers, and the rethrow of an await: the code that called them decides. A task the client
                // faulted without throwing (a connection it tore down failing the commands on it) has only these
                // frames and then the awaiting method's.
                continue;
            }

            var assembly = type.Assembly.GetName().Name ?? string.Empty;
            return assembly.StartsWith("StackExchange.Redis", StringComparison.Ordinal)
                || assembly.StartsWith("Pipelines.Sockets.Unofficial", StringComparison.Ordinal)
                || assembly is "System.Net.Sockets" or "System.IO.Pipelines"
                || assembly.StartsWith("Microsoft.Extensions.Caching.StackExchangeRedis", StringComparison.Ordinal)
                || assembly.StartsWith("Microsoft.AspNetCore.OutputCaching.StackExchangeRedis", StringComparison.Ordinal)
                || type.Assembly == typeof(RedisErrorClassifier).Assembly;
        }

        return false;
    }

    private static bool IsAwaitPlumbing(Type type) =>
        type.Assembly == typeof(object).Assembly
        && type.Namespace is "System.Runtime.CompilerServices" or "System.Runtime.ExceptionServices" or "System.Threading.Tasks" or "System.Threading.Tasks.Sources";

    /// <summary>Swallowable only when every inner exception is; the first inner one decides the kind.</summary>
    private static RedisFailureKind ClassifyAggregate(AggregateException aggregate, bool connectionWasReset)
    {
        var result = RedisFailureKind.None;
        foreach (var inner in aggregate.Flatten().InnerExceptions)
        {
            var kind = Classify(inner, connectionWasReset);
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

using Microsoft.Extensions.Logging;
using Resilient.Caching.Diagnostics;

namespace Resilient.Caching;

/// <summary>
/// Every log line of the library, with stable event ids that tests and alerts can rely on. An outage logs one
/// Warning (or one Error for a credentials problem) per window, however many requests fail.
/// </summary>
/// <remarks>
/// Every text argument and every attached exception passes through <see cref="Redaction"/> here, whoever calls:
/// a secret cannot reach a log line by a path that forgot to mask it.
/// </remarks>
internal static partial class Log
{
    internal const int IdWindowOpened = 1;
    internal const int IdWindowClosed = 2;
    internal const int IdProbeFailed = 3;
    internal const int IdErrorWhileUnavailable = 4;
    internal const int IdSettingsInForce = 5;
    internal const int IdSettingsNotApplied = 6;
    internal const int IdAuthenticationFailed = 7;
    internal const int IdSocketOptionFailed = 8;
    internal const int IdAbandonedOperationFailed = 9;
    internal const int IdTagEvictionSkipped = 10;
    internal const int IdConnectFailed = 11;
    internal const int IdDistributedCacheNotInUse = 12;
    internal const int IdOutputCacheStoreNotInUse = 13;
    internal const int IdFailureSuspected = 20;
    internal const int IdBlipRecovered = 21;
    internal const int IdInvalidationsApplied = 22;
    internal const int IdInvalidationsDropped = 23;
    internal const int IdApplicationStall = 24;
    internal const int IdEventHandlerFailed = 30;
    internal const int IdSignOutTicketNotRemoved = 40;

    public static void WindowOpened(ILogger logger, Exception? exception, string operation, string reason, double windowSeconds)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            WindowOpenedCore(logger, Redaction.ForOutput(exception), operation, Redaction.Redact(reason), windowSeconds);
        }
    }

    [LoggerMessage(LogLevel.Information, "Redis is available again after {OutageSeconds:0.###} s; {SkippedOperations} cache operations skipped Redis meanwhile.",
        EventName = "WindowClosed", EventId = IdWindowClosed)]
    public static partial void WindowClosed(ILogger logger, double outageSeconds, long skippedOperations);

    public static void ProbeFailed(ILogger logger, Exception? exception, string operation, string reason, double windowSeconds)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            ProbeFailedCore(logger, Redaction.ForOutput(exception), operation, Redaction.Redact(reason), windowSeconds);
        }
    }

    public static void ShardWindowOpened(ILogger logger, Exception? exception, string serverAddress, string slots, string operation, string reason, double windowSeconds)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            ShardWindowOpenedCore(logger, Redaction.ForOutput(exception), serverAddress, slots, operation, Redaction.Redact(reason), windowSeconds);
        }
    }

    public static void ShardProbeFailed(ILogger logger, Exception? exception, string serverAddress, string slots, string operation, string reason, double windowSeconds)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            ShardProbeFailedCore(logger, Redaction.ForOutput(exception), serverAddress, slots, operation, Redaction.Redact(reason), windowSeconds);
        }
    }

    [LoggerMessage(LogLevel.Information, "Redis shard {ServerAddress} (slots {Slots}) is available again after {OutageSeconds:0.###} s; {SkippedOperations} cache operations on its keys skipped Redis meanwhile.",
        EventName = "ShardWindowClosed", EventId = IdWindowClosed)]
    public static partial void ShardWindowClosed(ILogger logger, string serverAddress, string slots, double outageSeconds, long skippedOperations);

    public static void ApplicationStall(ILogger logger, Exception? exception, string operation, string reason)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            ApplicationStallCore(logger, Redaction.ForOutput(exception), operation, Redaction.Redact(reason));
        }
    }

    [LoggerMessage(LogLevel.Debug, "{Operation} timed out while the application's thread pool was starved or the reply was received but not yet read ({Reason}): not a Redis outage; no window, no reset.",
        EventName = "ApplicationStall", EventId = IdApplicationStall)]
    private static partial void ApplicationStallCore(ILogger logger, Exception? exception, string operation, string reason);

    public static void ErrorWhileUnavailable(ILogger logger, Exception? exception, string operation, string reason)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            ErrorWhileUnavailableCore(logger, Redaction.ForOutput(exception), operation, Redaction.Redact(reason));
        }
    }

    public static void SettingsInForce(ILogger logger, string settings)
    {
        if (logger.IsEnabled(LogLevel.Information))
        {
            SettingsInForceCore(logger, Redaction.Redact(settings));
        }
    }

    [LoggerMessage(LogLevel.Warning, "ConnectionMultiplexerFactory is set, so the Redis connection is the application's own: SocketKeepAlive, TcpKeepAlive, ConnectTimeout and OperationTimeout are not applied to it. The unavailable window still is.",
        EventName = "SettingsNotApplied", EventId = IdSettingsNotApplied)]
    public static partial void SettingsNotApplied(ILogger logger);

    public static void AuthenticationFailed(ILogger logger, Exception? exception, string operation, string reason, double windowSeconds)
    {
        if (logger.IsEnabled(LogLevel.Error))
        {
            AuthenticationFailedCore(logger, Redaction.ForOutput(exception), operation, Redaction.Redact(reason), windowSeconds);
        }
    }

    public static void SocketOptionFailed(ILogger logger, Exception exception, string option, string endPoint)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            SocketOptionFailedCore(logger, Redaction.ForOutput(exception)!, option, Redaction.Redact(endPoint));
        }
    }

    public static void AbandonedOperationFailed(ILogger logger, Exception? exception, string operation, string reason)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            AbandonedOperationFailedCore(logger, Redaction.ForOutput(exception), operation, Redaction.Redact(reason));
        }
    }

    [LoggerMessage(LogLevel.Warning, "Output-cache eviction of tag '{Tag}' could not reach Redis; it is applied when Redis is back, before the cache is used again (unless more writes fail than MaxPendingInvalidations remembers).",
        EventName = "TagEvictionSkipped", EventId = IdTagEvictionSkipped)]
    public static partial void TagEvictionSkipped(ILogger logger, string tag);

    [LoggerMessage(LogLevel.Debug, "Output-cache eviction of tag '{Tag}' was skipped too (Redis unavailable).",
        EventName = "TagEvictionSkippedAgain", EventId = IdTagEvictionSkipped)]
    public static partial void TagEvictionSkippedAgain(ILogger logger, string tag);

    public static void FailureSuspected(ILogger logger, Exception? exception, string operation, string reason)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            FailureSuspectedCore(logger, Redaction.ForOutput(exception), operation, Redaction.Redact(reason));
        }
    }

    [LoggerMessage(LogLevel.Debug, "Redis answered the check after {Milliseconds:0} ms: it was a blip, not an outage ({SkippedOperations} cache operations skipped Redis meanwhile).",
        EventName = "BlipRecovered", EventId = IdBlipRecovered)]
    public static partial void BlipRecovered(ILogger logger, double milliseconds, long skippedOperations);

    [LoggerMessage(LogLevel.Debug, "A Redis {Operation} failed ({Reason}); checking on a fresh connection whether Redis is really unavailable before skipping it.",
        EventName = "FailureSuspected", EventId = IdFailureSuspected)]
    private static partial void FailureSuspectedCore(ILogger logger, Exception? exception, string operation, string reason);

    public static void ConnectFailed(ILogger logger, Exception? exception, string reason)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            ConnectFailedCore(logger, Redaction.ForOutput(exception), Redaction.Redact(reason));
        }
    }

    [LoggerMessage(LogLevel.Warning, "The application's IDistributedCache is {ResolvedType}, not the resilient Redis cache: a registration made after AddResilientStackExchangeRedisCache (e.g. AddStackExchangeRedisCache or AddDistributedMemoryCache) wins, so Redis errors reach the callers and the settings logged at start-up do not apply to it. Remove that registration, or call AddResilientStackExchangeRedisCache after it.",
        EventName = "DistributedCacheNotInUse", EventId = IdDistributedCacheNotInUse)]
    public static partial void DistributedCacheNotInUse(ILogger logger, string resolvedType);

    [LoggerMessage(LogLevel.Warning, "The application's IOutputCacheStore is {ResolvedType}, not the resilient Redis store: a registration made after AddResilientStackExchangeRedisOutputCache (e.g. AddStackExchangeRedisOutputCache) wins, so output caching does not use the unavailable window. Remove that registration, or call AddResilientStackExchangeRedisOutputCache after it.",
        EventName = "OutputCacheStoreNotInUse", EventId = IdOutputCacheStoreNotInUse)]
    public static partial void OutputCacheStoreNotInUse(ILogger logger, string resolvedType);

    [LoggerMessage(LogLevel.Warning, "Redis is unavailable ({Operation} failed: {Reason}); the cache skips Redis for {WindowSeconds} s, then probes it again.",
        EventName = "WindowOpened", EventId = IdWindowOpened)]
    private static partial void WindowOpenedCore(ILogger logger, Exception? exception, string operation, string reason, double windowSeconds);

    [LoggerMessage(LogLevel.Warning, "Redis is still unavailable (probe {Operation} failed: {Reason}); skipping it for another {WindowSeconds} s.",
        EventName = "ProbeFailed", EventId = IdProbeFailed)]
    private static partial void ProbeFailedCore(ILogger logger, Exception? exception, string operation, string reason, double windowSeconds);

    [LoggerMessage(LogLevel.Warning, "Redis shard {ServerAddress} (slots {Slots}) is unavailable ({Operation} failed: {Reason}); the cache skips that shard's keys for {WindowSeconds} s (reads go to its replica where it has one), then probes it again. The other shards stay in use.",
        EventName = "ShardWindowOpened", EventId = IdWindowOpened)]
    private static partial void ShardWindowOpenedCore(ILogger logger, Exception? exception, string serverAddress, string slots, string operation, string reason, double windowSeconds);

    [LoggerMessage(LogLevel.Warning, "Redis shard {ServerAddress} (slots {Slots}) is still unavailable (probe {Operation} failed: {Reason}); skipping its keys for another {WindowSeconds} s.",
        EventName = "ShardProbeFailed", EventId = IdProbeFailed)]
    private static partial void ShardProbeFailedCore(ILogger logger, Exception? exception, string serverAddress, string slots, string operation, string reason, double windowSeconds);

    [LoggerMessage(LogLevel.Debug, "Redis error swallowed while the unavailable window is already open ({Operation}: {Reason}).",
        EventName = "ErrorWhileUnavailable", EventId = IdErrorWhileUnavailable)]
    private static partial void ErrorWhileUnavailableCore(ILogger logger, Exception? exception, string operation, string reason);

    [LoggerMessage(LogLevel.Information, "Resilient Redis cache settings in force: {Settings}",
        EventName = "SettingsInForce", EventId = IdSettingsInForce)]
    private static partial void SettingsInForceCore(ILogger logger, string settings);

    [LoggerMessage(LogLevel.Error, "Redis rejected the credentials ({Operation}: {Reason}); the cache skips Redis for {WindowSeconds} s. Check the password in the Redis configuration.",
        EventName = "AuthenticationFailed", EventId = IdAuthenticationFailed)]
    private static partial void AuthenticationFailedCore(ILogger logger, Exception? exception, string operation, string reason, double windowSeconds);

    [LoggerMessage(LogLevel.Warning, "Could not set socket option {Option} on a Redis socket to {EndPoint}; the connection goes on without it.",
        EventName = "SocketOptionFailed", EventId = IdSocketOptionFailed)]
    private static partial void SocketOptionFailedCore(ILogger logger, Exception exception, string option, string endPoint);

    [LoggerMessage(LogLevel.Debug, "A Redis {Operation} whose caller had already cancelled failed: {Reason}.",
        EventName = "AbandonedOperationFailed", EventId = IdAbandonedOperationFailed)]
    private static partial void AbandonedOperationFailedCore(ILogger logger, Exception? exception, string operation, string reason);

    [LoggerMessage(LogLevel.Warning, "Connecting to Redis failed: {Reason}. The cache keeps working without Redis and tries again after the unavailable window.",
        EventName = "ConnectFailed", EventId = IdConnectFailed)]
    private static partial void ConnectFailedCore(ILogger logger, Exception? exception, string reason);

    [LoggerMessage(LogLevel.Information, "Applied what the outage left pending before using Redis again: {KeysDeleted} keys deleted, {TagsEvicted} tags evicted, {KeysPurged} keys purged, in {Milliseconds:0} ms ({Dropped} writes had not been remembered).",
        EventName = "InvalidationsApplied", EventId = IdInvalidationsApplied)]
    public static partial void InvalidationsApplied(ILogger logger, long keysDeleted, long tagsEvicted, long keysPurged, double milliseconds, long dropped);

    [LoggerMessage(LogLevel.Error, "More than {Capacity} writes could not reach Redis during this outage: the ones past that are not remembered, so their old values may be served after it (instance purge on recovery: {Purge}). Raise MaxPendingInvalidations, or turn PurgeInstanceOnOverflow on.",
        EventName = "InvalidationsDropped", EventId = IdInvalidationsDropped)]
    public static partial void InvalidationsDropped(ILogger logger, int capacity, bool purge);

    [LoggerMessage(LogLevel.Warning, "A handler of CacheAvailability.{Event} threw; the cache carries on.",
        EventName = "EventHandlerFailed", EventId = IdEventHandlerFailed)]
    public static partial void EventHandlerFailed(ILogger logger, Exception? exception, string @event);

    [LoggerMessage(LogLevel.Warning, "On a sign-out of cookie scheme {Scheme}, the application's ticket store failed to remove the signed-out ticket; the sign-out goes on.",
        EventName = "SignOutTicketNotRemoved", EventId = IdSignOutTicketNotRemoved)]
    public static partial void SignOutTicketNotRemoved(ILogger logger, Exception? exception, string scheme);
}

using Microsoft.Extensions.Logging;

namespace Resilient.Caching;

/// <summary>
/// Every log line of the library, with stable event ids that tests and alerts can rely on. An outage logs one
/// Warning (or one Error for a credentials problem) per window, however many requests fail.
/// </summary>
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
    internal const int IdFailureSuspected = 20;
    internal const int IdBlipRecovered = 21;

    [LoggerMessage(LogLevel.Warning, "Redis is unavailable ({Operation} failed: {Reason}); the cache skips Redis for {WindowSeconds} s, then probes it again.",
        EventName = "WindowOpened", EventId = IdWindowOpened)]
    public static partial void WindowOpened(ILogger logger, Exception? exception, string operation, string reason, double windowSeconds);

    [LoggerMessage(LogLevel.Information, "Redis is available again after {OutageSeconds:0.###} s; {SkippedOperations} cache operations skipped Redis meanwhile.",
        EventName = "WindowClosed", EventId = IdWindowClosed)]
    public static partial void WindowClosed(ILogger logger, double outageSeconds, long skippedOperations);

    [LoggerMessage(LogLevel.Warning, "Redis is still unavailable (probe {Operation} failed: {Reason}); skipping it for another {WindowSeconds} s.",
        EventName = "ProbeFailed", EventId = IdProbeFailed)]
    public static partial void ProbeFailed(ILogger logger, Exception? exception, string operation, string reason, double windowSeconds);

    [LoggerMessage(LogLevel.Debug, "Redis error swallowed while the unavailable window is already open ({Operation}: {Reason}).",
        EventName = "ErrorWhileUnavailable", EventId = IdErrorWhileUnavailable)]
    public static partial void ErrorWhileUnavailable(ILogger logger, Exception? exception, string operation, string reason);

    [LoggerMessage(LogLevel.Information, "Resilient Redis cache settings in force: {Settings}",
        EventName = "SettingsInForce", EventId = IdSettingsInForce)]
    public static partial void SettingsInForce(ILogger logger, string settings);

    [LoggerMessage(LogLevel.Warning, "ConnectionMultiplexerFactory is set, so the Redis connection is the application's own: SocketKeepAlive, TcpKeepAlive, ConnectTimeout and OperationTimeout are not applied to it. The unavailable window still is.",
        EventName = "SettingsNotApplied", EventId = IdSettingsNotApplied)]
    public static partial void SettingsNotApplied(ILogger logger);

    [LoggerMessage(LogLevel.Error, "Redis rejected the credentials ({Operation}: {Reason}); the cache skips Redis for {WindowSeconds} s. Check the password in the Redis configuration.",
        EventName = "AuthenticationFailed", EventId = IdAuthenticationFailed)]
    public static partial void AuthenticationFailed(ILogger logger, Exception? exception, string operation, string reason, double windowSeconds);

    [LoggerMessage(LogLevel.Warning, "Could not set socket option {Option} on a Redis socket to {EndPoint}; the connection goes on without it.",
        EventName = "SocketOptionFailed", EventId = IdSocketOptionFailed)]
    public static partial void SocketOptionFailed(ILogger logger, Exception exception, string option, string endPoint);

    [LoggerMessage(LogLevel.Debug, "A Redis {Operation} whose caller had already cancelled failed: {Reason}.",
        EventName = "AbandonedOperationFailed", EventId = IdAbandonedOperationFailed)]
    public static partial void AbandonedOperationFailed(ILogger logger, Exception? exception, string operation, string reason);

    [LoggerMessage(LogLevel.Warning, "Output-cache eviction of tag '{Tag}' was skipped because Redis is unavailable; entries with that tag may be served until they expire.",
        EventName = "TagEvictionSkipped", EventId = IdTagEvictionSkipped)]
    public static partial void TagEvictionSkipped(ILogger logger, string tag);

    [LoggerMessage(LogLevel.Debug, "Output-cache eviction of tag '{Tag}' was skipped too (Redis unavailable).",
        EventName = "TagEvictionSkippedAgain", EventId = IdTagEvictionSkipped)]
    public static partial void TagEvictionSkippedAgain(ILogger logger, string tag);

    [LoggerMessage(LogLevel.Debug, "A Redis {Operation} failed ({Reason}); checking on a fresh connection whether Redis is really unavailable before skipping it.",
        EventName = "FailureSuspected", EventId = IdFailureSuspected)]
    public static partial void FailureSuspected(ILogger logger, Exception? exception, string operation, string reason);

    [LoggerMessage(LogLevel.Debug, "Redis answered the check after {Milliseconds:0} ms: it was a blip, not an outage ({SkippedOperations} cache operations skipped Redis meanwhile).",
        EventName = "BlipRecovered", EventId = IdBlipRecovered)]
    public static partial void BlipRecovered(ILogger logger, double milliseconds, long skippedOperations);

    [LoggerMessage(LogLevel.Warning, "Connecting to Redis failed: {Reason}. The cache keeps working without Redis and tries again after the unavailable window.",
        EventName = "ConnectFailed", EventId = IdConnectFailed)]
    public static partial void ConnectFailed(ILogger logger, Exception? exception, string reason);
}

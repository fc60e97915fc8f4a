using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Resilient.Caching.Connection;

/// <summary>The StackExchange.Redis settings of the connections the library makes: the user's, with ours on top.</summary>
internal static class ConnectionSettings
{
    /// <summary>How often StackExchange.Redis looks for timed-out commands on our connections.</summary>
    internal static readonly TimeSpan HeartbeatInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>How often a connection that lost Redis tries to connect again (in the background, nobody waits for it).</summary>
    internal static readonly TimeSpan ReconnectInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Our settings on top of the user's: a clone of <c>ConfigurationOptions</c> (never mutate theirs) or the
    /// parsed <c>Configuration</c> string.
    /// </summary>
    internal static ConfigurationOptions Build(ResilientRedisCacheOptions options, ILogger logger)
    {
        var configuration = Configuration.RedisConnectionString.Build(options);

        // Start even when Redis is down, and keep reconnecting in the background.
        configuration.AbortOnConnectFail = false;

        // Reconnect at a steady pace, not an exponential back-off: the window is the longest Redis goes unchecked, and
        // a connection made again is what starts the check early (a 2 s restart is a short outage).
        configuration.ReconnectRetryPolicy = new LinearRetry((int)ReconnectInterval.TotalMilliseconds);

        // While disconnected, fail a command at once instead of queueing it for the sync timeout: the window
        // turns that failure into a fast miss.
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ConnectTimeout = ToMilliseconds(options.ConnectTimeout);
        configuration.SyncTimeout = ToMilliseconds(options.OperationTimeout);
        configuration.AsyncTimeout = ToMilliseconds(options.OperationTimeout);
        configuration.TcpKeepAlive = options.SocketKeepAlive;

        // StackExchange.Redis checks async timeouts only on its heartbeat (1 s by default): a 5 s timeout would fire
        // anywhere up to 6 s. A 50 ms heartbeat keeps every call within the operation timeout plus 100 ms.
        configuration.HeartbeatInterval = HeartbeatInterval;

        configuration.BeforeSocketConnect = SocketTuning.CreateHook(options, configuration.BeforeSocketConnect, logger);
        return configuration;
    }

    private static int ToMilliseconds(TimeSpan value) => (int)Math.Clamp(value.TotalMilliseconds, 1, int.MaxValue);
}

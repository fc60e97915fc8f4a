using Microsoft.Extensions.Caching.StackExchangeRedis;

namespace Resilient.Caching;

/// <summary>
/// Settings of the resilient Redis cache. Derives from <see cref="RedisCacheOptions"/>, so
/// <see cref="RedisCacheOptions.Configuration"/>, <see cref="RedisCacheOptions.ConfigurationOptions"/>,
/// <see cref="RedisCacheOptions.InstanceName"/> and <see cref="RedisCacheOptions.ConnectionMultiplexerFactory"/>
/// keep their meaning.
/// </summary>
/// <remarks>
/// <para>
/// Precedence, lowest first: the defaults below, the configuration section, the code delegate, and the flat
/// environment variables named on each property (so operators can tune production without a code change).
/// </para>
/// <para>
/// Configuration written for the stock provider applies too, where it was registered, as the stock provider applies
/// it: <c>services.Configure&lt;RedisCacheOptions&gt;(…)</c> (or an <c>IConfigureOptions&lt;RedisCacheOptions&gt;</c>)
/// registered after <c>AddResilientStackExchangeRedisCache(...)</c> overrides its section and delegate, one registered
/// before is overridden by them; named ones configure the keyed cache of that name. <c>PostConfigure&lt;RedisCacheOptions&gt;</c>
/// runs after every configuration and before the flat environment variables. <c>Configure&lt;ResilientRedisCacheOptions&gt;</c>
/// counts where it was registered as well (after a <c>RedisCacheOptions</c> configuration registered between the same two
/// registrations). <c>IOptions&lt;RedisCacheOptions&gt;</c> resolves the settings in force of the unkeyed cache (the same
/// instance), and <c>IOptionsMonitor&lt;RedisCacheOptions&gt;.Get(serviceKey)</c> those of a keyed one.
/// </para>
/// </remarks>
public class ResilientRedisCacheOptions : RedisCacheOptions
{
    /// <summary>The default of <see cref="ConnectTimeout"/>, <see cref="OperationTimeout"/>.</summary>
    internal static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The default of <see cref="UnavailableWindow"/>.</summary>
    internal static readonly TimeSpan DefaultUnavailableWindow = TimeSpan.FromSeconds(30);

    /// <summary>The default of <see cref="MaxPendingInvalidations"/>.</summary>
    internal const int DefaultMaxPendingInvalidations = 100_000;

    /// <summary>
    /// Gets or sets whether every Redis socket gets SO_KEEPALIVE with the <see cref="TcpKeepAlive"/> timings
    /// (and, on Linux, TCP_USER_TIMEOUT), so that idle pooled connections are neither dropped by stateful
    /// firewalls nor left silently dead.
    /// </summary>
    /// <value>The default value is <see langword="true"/>. Environment variable: <c>REDIS_CACHE_SOCKET_KEEPALIVE</c>.</value>
    public bool SocketKeepAlive { get; set; } = true;

    /// <summary>Gets the TCP keepalive timings applied to every Redis socket when <see cref="SocketKeepAlive"/> is on.</summary>
    public TcpKeepAliveOptions TcpKeepAlive { get; } = new();

    /// <summary>
    /// Gets or sets how long one attempt to establish a connection to Redis may take (StackExchange.Redis's
    /// <c>connectTimeout</c>). A caller never waits for a connection longer than <see cref="OperationTimeout"/>:
    /// the connect goes on in the background for the next one.
    /// </summary>
    /// <value>The default value is 5 seconds. Environment variable: <c>REDIS_CACHE_SOCKET_CONNECT_TIMEOUT</c> (seconds).</value>
    public TimeSpan ConnectTimeout { get; set; } = DefaultTimeout;

    /// <summary>Gets or sets how long one Redis command (synchronous or asynchronous) may take.</summary>
    /// <value>The default value is 5 seconds. Environment variable: <c>REDIS_CACHE_SOCKET_TIMEOUT</c> (seconds).</value>
    public TimeSpan OperationTimeout { get; set; } = DefaultTimeout;

    /// <summary>
    /// Gets or sets how long the cache leaves Redis alone after a transport or availability error. Inside the
    /// window reads are misses and writes are skipped at once; when it elapses one caller probes Redis.
    /// </summary>
    /// <value>The default value is 30 seconds. Environment variable: <c>REDIS_CACHE_UNAVAILABLE_WINDOW</c> (seconds).</value>
    public TimeSpan UnavailableWindow { get; set; } = DefaultUnavailableWindow;

    /// <summary>
    /// Gets or sets whether Redis transport and availability errors are swallowed (a read becomes a miss, a
    /// write is skipped). When <see langword="false"/> they propagate, and calls inside the unavailable window
    /// throw <see cref="CacheUnavailableException"/> at once.
    /// </summary>
    /// <value>The default value is <see langword="true"/>. Environment variable: <c>REDIS_CACHE_IGNORE_EXCEPTIONS</c>.</value>
    public bool IgnoreExceptions { get; set; } = true;

    /// <summary>
    /// Gets or sets whether swallowed exceptions are written to the log with their details. The opening and
    /// closing of the unavailable window are logged either way.
    /// </summary>
    /// <value>The default value is <see langword="true"/>. Environment variable: <c>REDIS_CACHE_LOG_IGNORED_EXCEPTIONS</c>.</value>
    public bool LogIgnoredExceptions { get; set; } = true;

    /// <summary>
    /// Gets or sets how many writes that may not have reached Redis during an outage (skipped, failed or timed out
    /// <c>Set</c>, <c>Remove</c>, output-cache stores and tag evictions) are remembered, to be deleted or evicted when
    /// Redis is back, before anyone else uses it. The same bound applies to the keys whose last read was a miss made up
    /// during the outage. About 100 bytes per record besides the key itself; records are lost if the process restarts.
    /// Past the bound the guarantee no longer holds (logged at Error once per outage) unless
    /// <see cref="PurgeInstanceOnOverflow"/> is on.
    /// </summary>
    /// <value>The default value is 100,000. Environment variable: <c>REDIS_CACHE_MAX_PENDING_INVALIDATIONS</c>.</value>
    public int MaxPendingInvalidations { get; set; } = DefaultMaxPendingInvalidations;

    /// <summary>
    /// Gets or sets whether, after an outage that overflowed <see cref="MaxPendingInvalidations"/>, recovery deletes
    /// every key under <see cref="RedisCacheOptions.InstanceName"/> (<c>SCAN</c> + <c>UNLINK</c>, and the output-cache
    /// store's keys under its own prefix) instead of the recorded ones: the cache starts empty, but holds nothing
    /// older than a write the application made during the outage. Requires a non-empty <c>InstanceName</c> that no
    /// other application's keys start with.
    /// </summary>
    /// <value>The default value is <see langword="false"/>. Environment variable: <c>REDIS_CACHE_PURGE_INSTANCE_ON_OVERFLOW</c>.</value>
    public bool PurgeInstanceOnOverflow { get; set; }

    /// <summary>
    /// Gets or sets whether replies are read and commands written on threads the Redis client owns (two per
    /// connection) instead of the application's thread pool, so that an application starving its own pool (sync over
    /// async, blocking I/O) does not make a healthy Redis look dead. It is StackExchange.Redis's process-wide
    /// <c>DedicatedThreads</c> feature flag, turned on when the first connection is made: other multiplexers the
    /// application creates afterwards get it too. It costs two threads per connection, about 180 bytes and, on
    /// loopback, a few tens of microseconds per call (a thread hop). Off by default: a timeout the application's own
    /// starvation explains (its pool starved, or the reply received but not read) opens no window anyway.
    /// </summary>
    /// <value>The default value is <see langword="false"/>. Environment variable: <c>REDIS_CACHE_DEDICATED_THREADS</c>.</value>
    public bool DedicatedThreads { get; set; }

    /// <summary>
    /// Gets or sets whether every key read during an outage (answered with a made-up miss) is deleted when Redis is
    /// back, as if the application had removed it: what the application saw during the outage (nothing) is what it
    /// finds after it. Off (the default), such keys keep their values: nobody is signed out by an outage, and a write
    /// computed from the made-up miss never replaces the stored value. A sign-out during the outage is honoured either
    /// way (cookie authentication with a ticket store over the distributed cache); what this adds is that a
    /// <c>Session.Clear()</c> during the outage, whose read was a made-up miss, is not undone. The price: every session,
    /// ticket and entry read during the outage is gone afterwards. See also <see cref="InvalidateKeyPrefixesReadDuringOutage"/>.
    /// </summary>
    /// <value>The default value is <see langword="false"/>. Environment variable: <c>REDIS_CACHE_INVALIDATE_KEYS_READ_DURING_OUTAGE</c>.</value>
    public bool InvalidateKeysReadDuringOutage { get; set; }

    /// <summary>
    /// Gets or sets the key prefixes (comma-separated, without the <c>InstanceName</c>) whose keys read during an
    /// outage are deleted when Redis is back, as <see cref="InvalidateKeysReadDuringOutage"/> does for every key: for
    /// the keys whose emptiness during the outage must not be undone (a store of your own of revocations, carts
    /// emptied on checkout…).
    /// </summary>
    /// <value>The default value is <see langword="null"/> (none). Environment variable: <c>REDIS_CACHE_INVALIDATE_KEY_PREFIXES_READ_DURING_OUTAGE</c>.</value>
    public string? InvalidateKeyPrefixesReadDuringOutage { get; set; }

    /// <summary>The prefixes of <see cref="InvalidateKeyPrefixesReadDuringOutage"/>, trimmed, empty ones left out.</summary>
    internal static IReadOnlyList<string> SplitPrefixes(string? prefixes) =>
        prefixes is null ? [] : prefixes.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Where each setting got its value (setting path → source), for error messages.</summary>
    internal Dictionary<string, string> Sources { get; } = new(StringComparer.Ordinal);

    /// <summary>Values that could not be parsed at all, reported together at start-up.</summary>
    internal List<string> ParseErrors { get; } = [];
}

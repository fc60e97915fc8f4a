using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.AspNetCore.OutputCaching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Resilient.Caching.Connection;
using Resilient.Caching.Guard;
using Resilient.Caching.Storage;
using StackExchange.Redis;

namespace Resilient.Caching.OutputCaching;

/// <summary>
/// The <see cref="IOutputCacheStore"/> that output caching resolves: Microsoft's Redis store, unchanged, behind the
/// same unavailable window and on the same connection as the distributed cache. Reads that fail or are skipped are
/// misses (the page is produced afresh), writes and tag evictions are skipped.
/// </summary>
internal sealed class ResilientOutputCacheStore : IOutputCacheStore, IOutputCacheBufferStore, IDisposable
{
    private static readonly Func<byte[]?, CacheOutcome> s_valueOutcome = static value => value is null ? CacheOutcome.Miss : CacheOutcome.Hit;
    private static readonly Func<bool, CacheOutcome> s_foundOutcome = static found => found ? CacheOutcome.Hit : CacheOutcome.Miss;
    private static readonly Func<bool, CacheOutcome> s_writeOutcome = static _ => CacheOutcome.Write;

    private static readonly CacheCall<(ResilientOutputCacheStore Store, string Key), byte[]?> s_get = new()
    {
        Operation = CacheOperation.Get,
        InvokeAsync = static (s, ct) => s.Store.Inner.Store.GetAsync(s.Key, ct),
        Outcome = s_valueOutcome,
    };

    private static readonly CacheCall<(ResilientOutputCacheStore Store, string Key, PipeWriter Destination), bool> s_tryGet = new()
    {
        Operation = CacheOperation.Get,
        InvokeAsync = static (s, ct) => s.Store.Inner.BufferStore.TryGetAsync(s.Key, s.Destination, ct),
        Outcome = s_foundOutcome,
        HoldsCallerMemory = true,
    };

    private static readonly CacheCall<(ResilientOutputCacheStore Store, string Key, byte[] Value, string[]? Tags, TimeSpan ValidFor), bool> s_set = new()
    {
        Operation = CacheOperation.Set,
        InvokeAsync = static (s, ct) => CacheCall.Written(s.Store.Inner.Store.SetAsync(s.Key, s.Value, s.Tags, s.ValidFor, ct)),
        Outcome = s_writeOutcome,
    };

    private static readonly CacheCall<(ResilientOutputCacheStore Store, string Key, ReadOnlySequence<byte> Value, ReadOnlyMemory<string> Tags, TimeSpan ValidFor), bool> s_setSequence = new()
    {
        Operation = CacheOperation.Set,
        InvokeAsync = static (s, ct) => CacheCall.Written(s.Store.Inner.BufferStore.SetAsync(s.Key, s.Value, s.Tags, s.ValidFor, ct)),
        Outcome = s_writeOutcome,
        HoldsCallerMemory = true,
    };

    private static readonly CacheCall<(ResilientOutputCacheStore Store, string Tag), bool> s_evictByTag = new()
    {
        Operation = CacheOperation.EvictByTag,
        InvokeAsync = static (s, ct) => CacheCall.Written(s.Store.Inner.Store.EvictByTagAsync(s.Tag, ct)),
        Outcome = s_writeOutcome,
    };

    private readonly CacheGuard _guard;
    private readonly Generational<Generation> _inner;
    private bool _disposed;
    private long _tagWarningOutage = -1;

    /// <summary>Creates the store over the shared connection, window and guard of a registration.</summary>
    /// <param name="services">The registration.</param>
    /// <param name="template">The stock store's options (its key prefix and profiler), from <see cref="OutputCacheSetup"/>.</param>
    internal ResilientOutputCacheStore(ResilientRedisCacheServices services, RedisOutputCacheOptions template)
        : this(services.Guard, services.Connection, generation => CreateStock(services, template, generation))
    {
    }

    internal ResilientOutputCacheStore(CacheGuard guard, IRedisConnection connection, Func<int, Generation> createInner)
    {
        _guard = guard;

        // The stock store's Dispose stops its garbage-collection loop and closes only the multiplexer of its own
        // generation, which the reset already dropped (see ConnectForGeneration).
        _inner = new Generational<Generation>(connection, createInner, static retired => retired.DisposeInBackground());
    }

    private Generation Inner => _inner.Current;

    /// <inheritdoc />
    public ValueTask<byte[]?> GetAsync(string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _guard.RunAsync(s_get, CacheTarget.OutputCacheEntry(key), (this, key), cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<bool> TryGetAsync(string key, PipeWriter destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(destination);
        return _guard.RunAsync(s_tryGet, CacheTarget.OutputCacheEntry(key), (this, key, destination), cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask SetAsync(string key, byte[] value, string[]? tags, TimeSpan validFor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        return CacheCall.Completion(_guard.RunAsync(s_set, CacheTarget.OutputCacheEntry(key), (this, key, value, tags, validFor), cancellationToken));
    }

    /// <inheritdoc />
    public ValueTask SetAsync(string key, ReadOnlySequence<byte> value, ReadOnlyMemory<string> tags, TimeSpan validFor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        return CacheCall.Completion(_guard.RunAsync(s_setSequence, CacheTarget.OutputCacheEntry(key), (this, key, value, tags, validFor), cancellationToken));
    }

    /// <inheritdoc />
    public async ValueTask EvictByTagAsync(string tag, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tag);

        // False when the window skipped the call or a Redis error was swallowed: either way entries with this tag
        // stay in Redis, and whoever evicted them should hear about it.
        var evicted = await _guard.RunAsync(s_evictByTag, CacheTarget.OutputCacheTag(tag), (this, tag), cancellationToken).ConfigureAwait(false);
        if (!evicted)
        {
            // One Warning per outage, however many evictions it skips; the rest at Debug.
            var outage = _guard.Availability.Outages;
            if (Interlocked.Exchange(ref _tagWarningOutage, outage) != outage)
            {
                Log.TagEvictionSkipped(_guard.Logger, tag);
            }
            else
            {
                Log.TagEvictionSkippedAgain(_guard.Logger, tag);
            }
        }
    }

    /// <summary>Evicts a tag through the stock store directly (not through the window): the probe's replay of a skipped eviction.</summary>
    internal ValueTask EvictTagInnerAsync(string tag, CancellationToken cancellationToken) => Inner.Store.EvictByTagAsync(tag, cancellationToken);

    /// <summary>Disposes the stock store (which closes the multiplexer it holds) and stops its garbage-collection loop.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _inner.Latest.DisposeInBackground();
        }
    }

    /// <summary>
    /// Builds Microsoft's store with public API only (its type is internal): a private container with
    /// <c>AddStackExchangeRedisOutputCache</c>, the application's logger factory and our connection.
    /// </summary>
    private static Generation CreateStock(ResilientRedisCacheServices services, RedisOutputCacheOptions template, int generation)
    {
        var collection = new ServiceCollection();
        collection.AddSingleton<ILoggerFactory>(new Diagnostics.RedactingLoggerFactory(services.LoggerFactory));
        collection.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        collection.AddStackExchangeRedisOutputCache(options =>
        {
            options.InstanceName = template.InstanceName;
            options.ProfilingSession = template.ProfilingSession;
            options.ConnectionMultiplexerFactory = () => ConnectForGeneration(services.Connection, generation);
        });

        var provider = collection.BuildServiceProvider();
        try
        {
            return new Generation(generation, provider.GetRequiredService<IOutputCacheStore>(), provider);
        }
        catch
        {
            provider.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The connection factory of one generation's store: it never hands out a newer generation's multiplexer, so
    /// that disposing the old store (which closes the multiplexer it holds) cannot close the one in use.
    /// </summary>
    private static Task<IConnectionMultiplexer> ConnectForGeneration(RedisConnection connection, int generation)
    {
        var connecting = connection.GetMultiplexerAsync();

        // The generation moves on (under the connection's lock) before the next multiplexer exists: read after the
        // multiplexer, an unchanged generation proves the multiplexer is this generation's.
        return connection.Generation == generation
            ? connecting
            : Task.FromException<IConnectionMultiplexer>(new RedisConnectPendingException(
                "The Redis connection was reset while this output-cache call waited for it; the next call uses the new connection."));
    }

    /// <summary>One generation's stock store and the private container that owns it.</summary>
    internal sealed class Generation : IDisposable
    {
        private readonly IDisposable? _owner;

        public Generation(int number, IOutputCacheStore store, IDisposable? owner)
        {
            Number = number;
            Store = store;
            BufferStore = store as IOutputCacheBufferStore ?? throw new ArgumentException("The inner store must implement IOutputCacheBufferStore.", nameof(store));
            _owner = owner;
        }

        public int Number { get; }

        public IOutputCacheStore Store { get; }

        public IOutputCacheBufferStore BufferStore { get; }

        public void Dispose() => _owner?.Dispose();

        /// <summary>
        /// Disposes off the caller's path: the stock store closes the multiplexer it holds letting queued commands
        /// complete first, which against a frozen Redis waits out the operation timeout. The multiplexer is ours, and
        /// our connection closes it without waiting; shutdown and a reset must not wait for Redis.
        /// </summary>
        public void DisposeInBackground() => _ = Task.Run(Dispose);
    }
}

using System.Buffers;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.Connection;
using Resilient.Caching.Recovery;

namespace Resilient.Caching;

/// <summary>
/// The <see cref="IDistributedCache"/> that applications resolve: Microsoft's <c>RedisCache</c>, unchanged,
/// behind the unavailable window. Redis transport and availability errors become misses (reads) and skipped
/// writes; argument errors and the caller's cancellation still propagate.
/// </summary>
public sealed class ResilientDistributedCache : IDistributedCache, IBufferDistributedCache, IDisposable
{
    private static readonly Func<byte[]?, CacheOutcome> s_valueOutcome = static value => value is null ? CacheOutcome.Miss : CacheOutcome.Hit;
    private static readonly Func<bool, CacheOutcome> s_foundOutcome = static found => found ? CacheOutcome.Hit : CacheOutcome.Miss;
    private static readonly Func<bool, CacheOutcome> s_writeOutcome = static _ => CacheOutcome.Write;
    private static readonly Task<byte[]?> s_noValue = Task.FromResult<byte[]?>(null);

    // What a read served by a replica returns: the bytes, or (for the buffer reads) whether they were found, copied.
    private static readonly CacheGuard.ReplicaResult<(ResilientDistributedCache cache, string key), byte[]?> s_replicaValue = static (_, data) => data;
    private static readonly CacheGuard.ReplicaResult<(ResilientDistributedCache cache, string key, IBufferWriter<byte> destination), bool> s_replicaCopy = static (s, data) =>
    {
        if (data is null)
        {
            return false;
        }

        s.destination.Write(data);
        return true;
    };

    private readonly CacheGuard _guard;
    private readonly Generational<IBufferDistributedCache> _inner;
    private readonly bool _disposeInner;

    internal ResilientDistributedCache(CacheGuard guard, IGuardedConnection connection, Func<IBufferDistributedCache> createInner, bool disposeInner)
    {
        _guard = guard;
        _inner = new Generational<IBufferDistributedCache>(connection, _ => createInner());
        _disposeInner = disposeInner;
    }

    /// <summary>Gets the state of the unavailable window this cache uses.</summary>
    public CacheAvailability Availability => _guard.Availability;

    internal WindowController Controller => _guard.Controller;

    private IBufferDistributedCache Inner => _inner.Current;

    /// <inheritdoc />
    public byte[]? Get(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _guard.Run(CacheOperation.Get, new(InvalidationKind.CacheKey, key), (cache: this, key), static s => s.cache.Inner.Get(s.key), s_valueOutcome, null, s_replicaValue);
    }

    /// <inheritdoc />
    public Task<byte[]?> GetAsync(string key, CancellationToken token = default)
    {
        if (key is null)
        {
            return Task.FromException<byte[]?>(new ArgumentNullException(nameof(key)));
        }

        return AsTask(_guard.RunAsync(CacheOperation.Get, new(InvalidationKind.CacheKey, key), (cache: this, key),
            static (s, ct) => new ValueTask<byte[]?>(s.cache.Inner.GetAsync(s.key, ct)), s_valueOutcome, null, token, fromReplica: s_replicaValue));
    }

    /// <inheritdoc />
    public bool TryGet(string key, IBufferWriter<byte> destination)
    {
        // The destination is not checked, as by the stock provider: a miss never touches it.
        ArgumentNullException.ThrowIfNull(key);
        return _guard.Run(CacheOperation.Get, new(InvalidationKind.CacheKey, key), (cache: this, key, destination), static s => s.cache.Inner.TryGet(s.key, s.destination), s_foundOutcome, false, s_replicaCopy);
    }

    /// <inheritdoc />
    public ValueTask<bool> TryGetAsync(string key, IBufferWriter<byte> destination, CancellationToken token = default)
    {
        if (key is null)
        {
            return ValueTask.FromException<bool>(new ArgumentNullException(nameof(key)));
        }

        return _guard.RunAsync(CacheOperation.Get, new(InvalidationKind.CacheKey, key), (cache: this, key, destination),
            static (s, ct) => s.cache.Inner.TryGetAsync(s.key, s.destination, ct), s_foundOutcome, false, token, holdsCallerMemory: true, fromReplica: s_replicaCopy);
    }

    /// <inheritdoc />
    public void Set(string key, byte[] value, DistributedCacheEntryOptions options)
    {
        CheckValue(value);
        if (CheckSet(key, options) is { } invalid)
        {
            throw invalid;
        }

        _guard.Run(CacheOperation.Set, new(InvalidationKind.CacheKey, key), (cache: this, key, value, options),
            static s => { s.cache.Inner.Set(s.key, s.value, s.options); return true; }, s_writeOutcome, false);
    }

    // Both SetAsync overloads, optional token included, are the shapes IDistributedCache and IBufferDistributedCache define.
#pragma warning disable RS0026
    /// <inheritdoc />
    public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default)
    {
        CheckValue(value);
        if (CheckSet(key, options) is { } invalid)
        {
            return Task.FromException(invalid);
        }

        return _guard.RunAsync(CacheOperation.Set, new(InvalidationKind.CacheKey, key), (cache: this, key, value, options),
            static (s, ct) => new ValueTask(s.cache.Inner.SetAsync(s.key, s.value, s.options, ct)), token).AsTask();
    }

    /// <inheritdoc />
    public void Set(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options)
    {
        if (CheckSet(key, options) is { } invalid)
        {
            throw invalid;
        }

        _guard.Run(CacheOperation.Set, new(InvalidationKind.CacheKey, key), (cache: this, key, value, options),
            static s => { s.cache.Inner.Set(s.key, s.value, s.options); return true; }, s_writeOutcome, false);
    }

    /// <inheritdoc />
    public ValueTask SetAsync(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options, CancellationToken token = default)
    {
        if (CheckSet(key, options) is { } invalid)
        {
            return ValueTask.FromException(invalid);
        }

        return _guard.RunAsync(CacheOperation.Set, new(InvalidationKind.CacheKey, key), (cache: this, key, value, options),
            static (s, ct) => s.cache.Inner.SetAsync(s.key, s.value, s.options, ct), token, holdsCallerMemory: true);
    }

#pragma warning restore RS0026

    /// <inheritdoc />
    public void Refresh(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        _guard.Run(CacheOperation.Refresh, default, (cache: this, key), static s => { s.cache.Inner.Refresh(s.key); return true; }, s_writeOutcome, false);
    }

    /// <inheritdoc />
    public Task RefreshAsync(string key, CancellationToken token = default)
    {
        if (key is null)
        {
            return Task.FromException(new ArgumentNullException(nameof(key)));
        }

        return _guard.RunAsync(CacheOperation.Refresh, default, (cache: this, key), static (s, ct) => new ValueTask(s.cache.Inner.RefreshAsync(s.key, ct)), token).AsTask();
    }

    /// <inheritdoc />
    public void Remove(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        _guard.Run(CacheOperation.Remove, new(InvalidationKind.CacheKey, key), (cache: this, key), static s => { s.cache.Inner.Remove(s.key); return true; }, s_writeOutcome, false);
    }

    /// <inheritdoc />
    public Task RemoveAsync(string key, CancellationToken token = default)
    {
        if (key is null)
        {
            return Task.FromException(new ArgumentNullException(nameof(key)));
        }

        return _guard.RunAsync(CacheOperation.Remove, new(InvalidationKind.CacheKey, key), (cache: this, key), static (s, ct) => new ValueTask(s.cache.Inner.RemoveAsync(s.key, ct)), token).AsTask();
    }

    /// <summary>Disposes the inner cache when the connection is the application's (as the stock provider would).</summary>
    public void Dispose()
    {
        if (_disposeInner && _inner.Latest is IDisposable disposable)
        {
            disposable.Dispose();
        }
    }

    // A miss (short-circuited or not) completes synchronously with null: hand out one cached task for it rather
    // than a new one per call.
    private static Task<byte[]?> AsTask(ValueTask<byte[]?> result)
    {
        if (!result.IsCompletedSuccessfully)
        {
            return result.AsTask();
        }

        var value = result.Result;
        return value is null ? s_noValue : Task.FromResult<byte[]?>(value);
    }

    // Argument errors are the caller's bugs: they surface even while Redis is skipped, exactly as the stock
    // provider reports them — thrown by the synchronous methods, a faulted task from the asynchronous ones.
    private static Exception? CheckSet(string key, DistributedCacheEntryOptions options)
    {
        if (key is null)
        {
            return new ArgumentNullException(nameof(key));
        }

        if (options is null)
        {
            return new ArgumentNullException(nameof(options));
        }

        // Judged by the clock of the inner stock cache (the system clock), not the application's TimeProvider: the
        // inner cache stores the expiration against that clock, and a test clock must not reject what it accepts.
        if (options.AbsoluteExpiration is { } absolute && absolute <= DateTimeOffset.UtcNow)
        {
#pragma warning disable CA2208 // The stock provider names the property, not the parameter.
            return new ArgumentOutOfRangeException(nameof(DistributedCacheEntryOptions.AbsoluteExpiration), absolute, "The absolute expiration value must be in the future.");
#pragma warning restore CA2208
        }

        return null;
    }

    // The stock provider wraps a byte[] value in a ReadOnlySequence before anything else, so a null value is
    // reported first, synchronously even by SetAsync, under the name of that constructor's parameter.
    private static void CheckValue(byte[] value) => ArgumentNullException.ThrowIfNull(value, "array");

}

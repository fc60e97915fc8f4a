using System.Buffers;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.Connection;
using Resilient.Caching.Guard;
using Resilient.Caching.Storage;

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

    private static readonly CacheCall<(ResilientDistributedCache Cache, string Key), byte[]?> s_get = new()
    {
        Operation = CacheOperation.Get,
        Invoke = static s => s.Cache.Inner.Get(s.Key),
        InvokeAsync = static (s, ct) => new ValueTask<byte[]?>(s.Cache.Inner.GetAsync(s.Key, ct)),
        Outcome = s_valueOutcome,
        FromReplica = static (_, data) => data,
    };

    private static readonly CacheCall<(ResilientDistributedCache Cache, string Key, IBufferWriter<byte> Destination), bool> s_tryGet = new()
    {
        Operation = CacheOperation.Get,
        Invoke = static s => s.Cache.Inner.TryGet(s.Key, s.Destination),
        InvokeAsync = static (s, ct) => s.Cache.Inner.TryGetAsync(s.Key, s.Destination, ct),
        Outcome = s_foundOutcome,
        HoldsCallerMemory = true,
        FromReplica = static (s, data) =>
        {
            if (data is null)
            {
                return false;
            }

            s.Destination.Write(data);
            return true;
        },
    };

    private static readonly CacheCall<(ResilientDistributedCache Cache, string Key, byte[] Value, DistributedCacheEntryOptions Options), bool> s_set = new()
    {
        Operation = CacheOperation.Set,
        Invoke = static s =>
        {
            s.Cache.Inner.Set(s.Key, s.Value, s.Options);
            return true;
        },
        InvokeAsync = static (s, ct) => CacheCall.Written(s.Cache.Inner.SetAsync(s.Key, s.Value, s.Options, ct)),
        Outcome = s_writeOutcome,
    };

    private static readonly CacheCall<(ResilientDistributedCache Cache, string Key, ReadOnlySequence<byte> Value, DistributedCacheEntryOptions Options), bool> s_setSequence = new()
    {
        Operation = CacheOperation.Set,
        Invoke = static s =>
        {
            s.Cache.Inner.Set(s.Key, s.Value, s.Options);
            return true;
        },
        InvokeAsync = static (s, ct) => CacheCall.Written(s.Cache.Inner.SetAsync(s.Key, s.Value, s.Options, ct)),
        Outcome = s_writeOutcome,
        HoldsCallerMemory = true,
    };

    private static readonly CacheCall<(ResilientDistributedCache Cache, string Key), bool> s_refresh = new()
    {
        Operation = CacheOperation.Refresh,
        Invoke = static s =>
        {
            s.Cache.Inner.Refresh(s.Key);
            return true;
        },
        InvokeAsync = static (s, ct) => CacheCall.Written(s.Cache.Inner.RefreshAsync(s.Key, ct)),
        Outcome = s_writeOutcome,
    };

    private static readonly CacheCall<(ResilientDistributedCache Cache, string Key), bool> s_remove = new()
    {
        Operation = CacheOperation.Remove,
        Invoke = static s =>
        {
            s.Cache.Inner.Remove(s.Key);
            return true;
        },
        InvokeAsync = static (s, ct) => CacheCall.Written(s.Cache.Inner.RemoveAsync(s.Key, ct)),
        Outcome = s_writeOutcome,
    };

    private readonly CacheGuard _guard;
    private readonly Generational<IBufferDistributedCache> _inner;
    private readonly bool _disposeInner;

    internal ResilientDistributedCache(CacheGuard guard, IRedisConnection connection, Func<IBufferDistributedCache> createInner, bool disposeInner)
    {
        _guard = guard;
        _inner = new Generational<IBufferDistributedCache>(connection, _ => createInner());
        _disposeInner = disposeInner;
    }

    /// <summary>Gets the state of the unavailable window this cache uses.</summary>
    public CacheAvailability Availability => _guard.Availability;

    private IBufferDistributedCache Inner => _inner.Current;

    /// <inheritdoc />
    public byte[]? Get(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _guard.Run(s_get, CacheTarget.CacheKey(key), (this, key));
    }

    /// <inheritdoc />
    public Task<byte[]?> GetAsync(string key, CancellationToken token = default)
    {
        if (key is null)
        {
            return Task.FromException<byte[]?>(new ArgumentNullException(nameof(key)));
        }

        return AsTask(_guard.RunAsync(s_get, CacheTarget.CacheKey(key), (this, key), token));
    }

    /// <inheritdoc />
    public bool TryGet(string key, IBufferWriter<byte> destination)
    {
        // The destination is not checked, as by the stock provider: a miss never touches it.
        ArgumentNullException.ThrowIfNull(key);
        return _guard.Run(s_tryGet, CacheTarget.CacheKey(key), (this, key, destination));
    }

    /// <inheritdoc />
    public ValueTask<bool> TryGetAsync(string key, IBufferWriter<byte> destination, CancellationToken token = default)
    {
        if (key is null)
        {
            return ValueTask.FromException<bool>(new ArgumentNullException(nameof(key)));
        }

        return _guard.RunAsync(s_tryGet, CacheTarget.CacheKey(key), (this, key, destination), token);
    }

    /// <inheritdoc />
    public void Set(string key, byte[] value, DistributedCacheEntryOptions options)
    {
        CheckValue(value);
        if (CheckSet(key, options) is { } invalid)
        {
            throw invalid;
        }

        _guard.Run(s_set, CacheTarget.CacheKey(key), (this, key, value, options));
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

        return CacheCall.CompletionTask(_guard.RunAsync(s_set, CacheTarget.CacheKey(key), (this, key, value, options), token));
    }

    /// <inheritdoc />
    public void Set(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options)
    {
        if (CheckSet(key, options) is { } invalid)
        {
            throw invalid;
        }

        _guard.Run(s_setSequence, CacheTarget.CacheKey(key), (this, key, value, options));
    }

    /// <inheritdoc />
    public ValueTask SetAsync(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options, CancellationToken token = default)
    {
        if (CheckSet(key, options) is { } invalid)
        {
            return ValueTask.FromException(invalid);
        }

        return CacheCall.Completion(_guard.RunAsync(s_setSequence, CacheTarget.CacheKey(key), (this, key, value, options), token));
    }

#pragma warning restore RS0026

    /// <inheritdoc />
    public void Refresh(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        _guard.Run(s_refresh, CacheTarget.None, (this, key));
    }

    /// <inheritdoc />
    public Task RefreshAsync(string key, CancellationToken token = default)
    {
        if (key is null)
        {
            return Task.FromException(new ArgumentNullException(nameof(key)));
        }

        return CacheCall.CompletionTask(_guard.RunAsync(s_refresh, CacheTarget.None, (this, key), token));
    }

    /// <inheritdoc />
    public void Remove(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        _guard.Run(s_remove, CacheTarget.CacheKey(key), (this, key));
    }

    /// <inheritdoc />
    public Task RemoveAsync(string key, CancellationToken token = default)
    {
        if (key is null)
        {
            return Task.FromException(new ArgumentNullException(nameof(key)));
        }

        return CacheCall.CompletionTask(_guard.RunAsync(s_remove, CacheTarget.CacheKey(key), (this, key), token));
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

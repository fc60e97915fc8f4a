using System.Buffers;
using Microsoft.Extensions.Caching.Distributed;

namespace Resilient.Caching.Tests;

/// <summary>How the inner cache misbehaves (the three ways a dependency fails, plus hanging).</summary>
public enum Fault
{
    None,
    ThrowsSynchronously,
    ReturnsFaultedTask,
    FaultsAfterYielding,
    Hangs,
}

/// <summary>
/// An inner cache whose every call obeys <see cref="Fault"/>: the failure matrix of the decorator without a
/// network. Counts the calls that reached it.
/// </summary>
internal sealed class ChaosCache : IBufferDistributedCache
{
    private readonly Dictionary<string, byte[]> _entries = [];
    private int _calls;

    public Fault Fault { get; set; }

    /// <summary>What a failing call throws; by default a timeout, which opens the window at once (a reset is confirmed first).</summary>
    public Func<Exception> Error { get; set; } = () => new StackExchange.Redis.RedisTimeoutException(StackExchange.Redis.CommandFlags.None, "injected", StackExchange.Redis.CommandStatus.Sent);

    /// <summary>A connection reset, which the cache confirms with a probe before it opens the window.</summary>
    public static Exception Reset() => new StackExchange.Redis.RedisConnectionException(
        StackExchange.Redis.ConnectionFailureType.SocketFailure, StackExchange.Redis.CommandFlags.None, "injected reset", null, StackExchange.Redis.CommandStatus.Sent);

    /// <summary>Completed when a hanging call is released; until then hanging calls never finish.</summary>
    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Calls => Volatile.Read(ref _calls);

    /// <summary>When set, hanging calls fail with <see cref="Error"/> once released instead of completing.</summary>
    public bool FailAfterRelease { get; set; }

    public byte[]? Get(string key) => Sync(() => Lookup(key));

    public Task<byte[]?> GetAsync(string key, CancellationToken token = default) => Async(() => Lookup(key));

    public bool TryGet(string key, IBufferWriter<byte> destination) => Sync(() => Copy(Lookup(key), destination));

    public ValueTask<bool> TryGetAsync(string key, IBufferWriter<byte> destination, CancellationToken token = default) =>
        new(Async(() => Copy(Lookup(key), destination)));

    public void Set(string key, byte[] value, DistributedCacheEntryOptions options) => Sync(() => Store(key, value));

    public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default) =>
        Async(() => Store(key, value));

    public void Set(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options) => Sync(() => Store(key, value.ToArray()));

    public ValueTask SetAsync(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options, CancellationToken token = default) =>
        new(Async(() => Store(key, value.ToArray())));

    public void Refresh(string key) => Sync(() => true);

    public Task RefreshAsync(string key, CancellationToken token = default) => Async(() => true);

    public void Remove(string key) => Sync(() => { lock (_entries) { return _entries.Remove(key); } });

    public Task RemoveAsync(string key, CancellationToken token = default) => Async(() => { lock (_entries) { return _entries.Remove(key); } });

    private byte[]? Lookup(string key)
    {
        lock (_entries)
        {
            return _entries.GetValueOrDefault(key);
        }
    }

    private bool Store(string key, byte[] value)
    {
        lock (_entries)
        {
            _entries[key] = value;
        }

        return true;
    }

    private static bool Copy(byte[]? value, IBufferWriter<byte> destination)
    {
        if (value is null)
        {
            return false;
        }

        destination.Write(value);
        return true;
    }

    private T Sync<T>(Func<T> body)
    {
        Interlocked.Increment(ref _calls);
        return Fault switch
        {
            Fault.None => body(),
            Fault.Hangs => WaitForRelease(body),
            _ => throw Error(),
        };
    }

    private T WaitForRelease<T>(Func<T> body)
    {
        Release.Task.Wait();
        return FailAfterRelease ? throw Error() : body();
    }

    private Task<T> Async<T>(Func<T> body)
    {
        Interlocked.Increment(ref _calls);
        switch (Fault)
        {
            case Fault.None:
                return Task.FromResult(body());
            case Fault.ThrowsSynchronously:
                throw Error();
            case Fault.ReturnsFaultedTask:
                return Task.FromException<T>(Error());
            case Fault.FaultsAfterYielding:
                return FaultAfterYield<T>(Error());
            default:
                return Hang(body);
        }
    }

    private static async Task<T> FaultAfterYield<T>(Exception error)
    {
        await Task.Yield();
        throw error;
    }

    private async Task<T> Hang<T>(Func<T> body)
    {
        await Release.Task;
        return FailAfterRelease ? throw Error() : body();
    }
}

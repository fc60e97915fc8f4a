using System.Buffers;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.Benchmarks.Shared;
using StackExchange.Redis;
using Resilient.Caching.Outages;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// The unavailable window is open: every call returns the fallback (miss / skipped write) without touching
/// Redis. Target: ≤ 100 ns and 0 bytes per call. The window is forced open for a day with the same call the
/// guard makes on a transport error (<see cref="WindowController.RecordFailure"/>), so no Redis is needed here;
/// the configuration points at a closed port and is never contacted. What the stock provider pays for the same
/// call with Redis down is in <see cref="RedisDownStockBenchmarks"/> (seconds, not nanoseconds).
/// </summary>
[MemoryDiagnoser]
public class ShortCircuitBenchmarks
{
    private const string Key = "bench:key";
    private static readonly DistributedCacheEntryOptions Entry = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    private readonly byte[] _value = BenchmarkData.Value1K();
    private readonly ArrayBufferWriter<byte> _writer = new(2048);
    private ReadOnlySequence<byte> _sequence;
    private ResilientProvider _ours = null!;
    private IDistributedCache _cache = null!;
    private IBufferDistributedCache _buffer = null!;

    [GlobalSetup]
    public void Setup()
    {
        _sequence = new ReadOnlySequence<byte>(_value);
        _ours = CacheProviders.CreateResilient(ClosedPort.Configuration, o => o.UnavailableWindow = TimeSpan.FromDays(1));
        _cache = _ours.Cache;
        _buffer = _ours.BufferCache;
        ClosedPort.OpenWindow(_ours);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        var available = _ours.Availability.IsAvailable;
        _ours.Dispose();
        if (available)
        {
            throw new InvalidOperationException("The window closed during the run: the figures are not short-circuit figures.");
        }
    }

    [Benchmark]
    public byte[]? Get() => _cache.Get(Key);

    [Benchmark]
    public Task<byte[]?> GetAsync() => _cache.GetAsync(Key);

    [Benchmark]
    public bool TryGet() => _buffer.TryGet(Key, _writer);

    [Benchmark]
    public ValueTask<bool> TryGetAsync() => _buffer.TryGetAsync(Key, _writer);

    [Benchmark]
    public void Set() => _cache.Set(Key, _value, Entry);

    [Benchmark]
    public Task SetAsync() => _cache.SetAsync(Key, _value, Entry);

    [Benchmark]
    public ValueTask SetSequenceAsync() => _buffer.SetAsync(Key, _sequence, Entry);

    [Benchmark]
    public void Refresh() => _cache.Refresh(Key);

    [Benchmark]
    public Task RefreshAsync() => _cache.RefreshAsync(Key);

    [Benchmark]
    public void Remove() => _cache.Remove(Key);

    [Benchmark]
    public Task RemoveAsync() => _cache.RemoveAsync(Key);
}

/// <summary>A configuration nobody listens on, and the way the benchmarks open the window on it.</summary>
internal static class ClosedPort
{
    // Port 1 (tcpmux) is privileged and unused here; nothing connects anyway since no call reaches Redis.
    public const string Configuration = "127.0.0.1:1";

    /// <summary>The window controller behind a provider.</summary>
    public static WindowController ControllerOf(ResilientProvider cache) => ((ResilientDistributedCache)cache.Cache).Availability.Deployment;

    public static void OpenWindow(ResilientProvider cache)
    {
        ControllerOf(cache).RecordFailure(
            new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, "benchmark: window forced open", null, CommandStatus.Unknown), confirmed: true, fromProbe: false);
        if (cache.Availability.IsAvailable)
        {
            throw new InvalidOperationException("The window did not open.");
        }
    }
}

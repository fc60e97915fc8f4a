using System.Buffers;
using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging.Abstractions;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Outages;
using Resilient.Caching.Guard;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// The decorator's own cost, without Redis noise: <see cref="ResilientDistributedCache"/> around an in-memory
/// inner cache that answers synchronously, against calling that inner cache directly. A Redis round trip on
/// loopback is ~50 µs with a few µs of jitter, which hides a cost of tens of nanoseconds; this isolates it.
/// <c>Resilient</c> runs with no metrics listener (the meter's instruments are disabled); <c>ResilientMetered</c>
/// with a <see cref="MeterListener"/> enabled on the <c>Resilient.Caching</c> meter, as OpenTelemetry would.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class DecoratorOverheadBenchmarks
{
    private const string Key = "bench:key";
    private static readonly DistributedCacheEntryOptions Entry = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    private readonly byte[] _value = BenchmarkData.Value1K();
    private readonly ArrayBufferWriter<byte> _writer = new(2048);
    private InMemoryInnerCache _inner = null!;
    private ResilientDistributedCache _resilient = null!;
    private ResilientDistributedCache _metered = null!;
    private ResilientCacheMetrics _metrics = null!;
    private ResilientCacheMetrics _meteredMetrics = null!;
    private MeterListener? _listener;
    private long _measurements;

    [GlobalSetup]
    public void Setup()
    {
        _inner = new InMemoryInnerCache(_value);
        (_resilient, _metrics) = Create(_inner);
        (_metered, _meteredMetrics) = Create(_inner);

        // Enabled for the metered instance's instruments only (each instance has its own Meter object).
        var meteredMeter = MeterOf(_meteredMetrics);
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (ReferenceEquals(instrument.Meter, meteredMeter))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        _listener.SetMeasurementEventCallback<long>((_, value, _, _) => _measurements += value);
        _listener.SetMeasurementEventCallback<double>((_, _, _, _) => _measurements++);
        _listener.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _listener?.Dispose();
        _metrics.Dispose();
        _meteredMetrics.Dispose();
        if (_resilient.Availability.Outages != 0 || _metered.Availability.Outages != 0)
        {
            throw new InvalidOperationException("The unavailable window opened: the figures are not valid.");
        }
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Get")]
    public byte[]? Get_Direct() => _inner.Get(Key);

    [Benchmark, BenchmarkCategory("Get")]
    public byte[]? Get_Resilient() => _resilient.Get(Key);

    [Benchmark, BenchmarkCategory("Get")]
    public byte[]? Get_ResilientMetered() => _metered.Get(Key);

    [Benchmark(Baseline = true), BenchmarkCategory("GetAsync")]
    public Task<byte[]?> GetAsync_Direct() => _inner.GetAsync(Key);

    [Benchmark, BenchmarkCategory("GetAsync")]
    public Task<byte[]?> GetAsync_Resilient() => _resilient.GetAsync(Key);

    [Benchmark, BenchmarkCategory("GetAsync")]
    public Task<byte[]?> GetAsync_ResilientMetered() => _metered.GetAsync(Key);

    [Benchmark(Baseline = true), BenchmarkCategory("TryGetAsync")]
    public ValueTask<bool> TryGetAsync_Direct()
    {
        _writer.ResetWrittenCount();
        return _inner.TryGetAsync(Key, _writer);
    }

    [Benchmark, BenchmarkCategory("TryGetAsync")]
    public ValueTask<bool> TryGetAsync_Resilient()
    {
        _writer.ResetWrittenCount();
        return _resilient.TryGetAsync(Key, _writer);
    }

    [Benchmark, BenchmarkCategory("TryGetAsync")]
    public ValueTask<bool> TryGetAsync_ResilientMetered()
    {
        _writer.ResetWrittenCount();
        return _metered.TryGetAsync(Key, _writer);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("SetAsync")]
    public Task SetAsync_Direct() => _inner.SetAsync(Key, _value, Entry);

    [Benchmark, BenchmarkCategory("SetAsync")]
    public Task SetAsync_Resilient() => _resilient.SetAsync(Key, _value, Entry);

    [Benchmark, BenchmarkCategory("SetAsync")]
    public Task SetAsync_ResilientMetered() => _metered.SetAsync(Key, _value, Entry);

    private static (ResilientDistributedCache Cache, ResilientCacheMetrics Metrics) Create(IBufferDistributedCache inner)
    {
        var connection = new FixedConnection();
        var core = new CacheCore(CacheAvailability.DefaultName, new ResilientRedisCacheOptions(), new StoredKeys(null), connection, TimeProvider.System, NullLogger.Instance);
        return (new ResilientDistributedCache(core.Guard, connection, () => inner, disposeInner: false), core.Metrics);
    }

    private static Meter MeterOf(ResilientCacheMetrics metrics) =>
        (Meter)typeof(ResilientCacheMetrics).GetField("_meter", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic)!.GetValue(metrics)!;

    private sealed class FixedConnection : IRedisConnection
    {
        public int Generation => 0;

        public bool IsReady => true;

        public Exception? ConnectFailure => null;

        public StackExchange.Redis.IDatabase? Database => null;

        public ValueTask<bool> WaitReadyAsync(TimeSpan timeout, CancellationToken released) => new(true);

        public bool WaitReady(TimeSpan timeout, CancellationToken released) => true;

        public Task ProbeAsync(TimeSpan budget, StackExchange.Redis.RedisKey key) => Task.CompletedTask;

        public Task<bool> TakenOverAsync(TimeSpan budget, IReadOnlyList<System.Net.EndPoint> replicas) => Task.FromResult(false);

        

        public void Reset(bool connectAgain = false)
        {
        }
    }

    /// <summary>Answers at once with preallocated results, so the only cost measured beside it is the decorator's.</summary>
    private sealed class InMemoryInnerCache(byte[] value) : IBufferDistributedCache
    {
        private readonly Task<byte[]?> _valueTask = Task.FromResult<byte[]?>(value);

        public byte[]? Get(string key) => value;

        public Task<byte[]?> GetAsync(string key, CancellationToken token = default) => _valueTask;

        public void Set(string key, byte[] value, DistributedCacheEntryOptions options)
        {
        }

        public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default) => Task.CompletedTask;

        public void Refresh(string key)
        {
        }

        public Task RefreshAsync(string key, CancellationToken token = default) => Task.CompletedTask;

        public void Remove(string key)
        {
        }

        public Task RemoveAsync(string key, CancellationToken token = default) => Task.CompletedTask;

        public bool TryGet(string key, IBufferWriter<byte> destination)
        {
            destination.Write(value);
            return true;
        }

        public ValueTask<bool> TryGetAsync(string key, IBufferWriter<byte> destination, CancellationToken token = default) =>
            new(TryGet(key, destination));

        public void Set(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options)
        {
        }

        public ValueTask SetAsync(string key, ReadOnlySequence<byte> value, DistributedCacheEntryOptions options, CancellationToken token = default) => default;
    }
}

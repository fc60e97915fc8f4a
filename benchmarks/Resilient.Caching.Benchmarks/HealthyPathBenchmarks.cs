using System.Buffers;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Resilient.Caching.Benchmarks.Shared;
using Resilient.Caching.IntegrationTests.Infrastructure;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// Redis is up: every call goes to a real redis-server on a free loopback port (one per benchmark process).
/// Each category pairs the stock <see cref="RedisCache"/> (baseline) with ours over the same server, the same
/// StackExchange.Redis and the same 1 KB value; the Ratio column is ours / stock.
/// </summary>
/// <remarks>
/// Connection settings: the stock cache gets <c>"127.0.0.1:PORT"</c> (StackExchange.Redis defaults: 5 s connect,
/// sync and async timeouts); ours gets the same string with its defaults, which are the same timeouts (5 s) plus
/// fail-fast backlog and per-socket keepalive — neither does anything while the connection is healthy.
/// Entries use a 20-minute sliding expiration, as sessions do, so a hit is HMGET + EXPIRE for both providers.
/// </remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class HealthyPathBenchmarks
{
    private const string HitKey = "bench:hit";
    private const string MissKey = "bench:missing";
    private const string WriteKey = "bench:write";
    private const string RemoveKey = "bench:removed";

    private static readonly DistributedCacheEntryOptions Entry = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    private readonly byte[] _value = BenchmarkData.Value1K();
    private readonly ArrayBufferWriter<byte> _writer = new(2048);
    private readonly CancellationTokenSource _requestAborted = new();
    private ReadOnlySequence<byte> _sequence;
    private RedisServer _redis = null!;
    private RedisCache _stock = null!;
    private IBufferDistributedCache _stockBuffer = null!;
    private ResilientProvider _ours = null!;
    private IDistributedCache _resilient = null!;
    private IBufferDistributedCache _resilientBuffer = null!;

    [GlobalSetup]
    public void Setup()
    {
        _sequence = new ReadOnlySequence<byte>(_value);
        _redis = RedisServer.StartNewAsync().GetAwaiter().GetResult();
        _stock = CacheProviders.CreateStock(_redis.ConnectionString);
        _stockBuffer = _stock;
        _ours = CacheProviders.CreateResilient(_redis.ConnectionString);
        _resilient = _ours.Cache;
        _resilientBuffer = _ours.BufferCache;

        // Both connect before the first measured call, and the hit key exists.
        _stock.Set(HitKey, _value, Entry);
        _resilient.Set(HitKey, _value, Entry);
        if (_stock.Get(HitKey)?.Length != _value.Length || _resilient.Get(HitKey)?.Length != _value.Length)
        {
            throw new InvalidOperationException("The hit key could not be read back from Redis.");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        // A window opened during the run would make ours look fast for the wrong reason: fail the benchmark.
        var outages = _ours.Availability.Outages;
        _ours.Dispose();
        _stock.Dispose();
        _redis.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _requestAborted.Dispose();
        if (outages != 0)
        {
            throw new InvalidOperationException($"The unavailable window opened {outages} time(s) during a healthy-path run: the figures for ours are not valid.");
        }
    }

    // ---- synchronous IDistributedCache ----

    [Benchmark(Baseline = true), BenchmarkCategory("GetHit")]
    public byte[]? GetHit_Stock() => _stock.Get(HitKey);

    [Benchmark, BenchmarkCategory("GetHit")]
    public byte[]? GetHit_Resilient() => _resilient.Get(HitKey);

    [Benchmark(Baseline = true), BenchmarkCategory("GetMiss")]
    public byte[]? GetMiss_Stock() => _stock.Get(MissKey);

    [Benchmark, BenchmarkCategory("GetMiss")]
    public byte[]? GetMiss_Resilient() => _resilient.Get(MissKey);

    [Benchmark(Baseline = true), BenchmarkCategory("Set")]
    public void Set_Stock() => _stock.Set(WriteKey, _value, Entry);

    [Benchmark, BenchmarkCategory("Set")]
    public void Set_Resilient() => _resilient.Set(WriteKey, _value, Entry);

    [Benchmark(Baseline = true), BenchmarkCategory("Refresh")]
    public void Refresh_Stock() => _stock.Refresh(HitKey);

    [Benchmark, BenchmarkCategory("Refresh")]
    public void Refresh_Resilient() => _resilient.Refresh(HitKey);

    [Benchmark(Baseline = true), BenchmarkCategory("Remove")]
    public void Remove_Stock() => _stock.Remove(RemoveKey);

    [Benchmark, BenchmarkCategory("Remove")]
    public void Remove_Resilient() => _resilient.Remove(RemoveKey);

    // ---- asynchronous IDistributedCache ----

    [Benchmark(Baseline = true), BenchmarkCategory("GetHitAsync")]
    public Task<byte[]?> GetHitAsync_Stock() => _stock.GetAsync(HitKey);

    [Benchmark, BenchmarkCategory("GetHitAsync")]
    public Task<byte[]?> GetHitAsync_Resilient() => _resilient.GetAsync(HitKey);

    // Session middleware and output caching pass a token that can be cancelled (IOTimeout, RequestAborted).
    [Benchmark(Baseline = true), BenchmarkCategory("GetHitAsyncToken")]
    public Task<byte[]?> GetHitAsyncToken_Stock() => _stock.GetAsync(HitKey, _requestAborted.Token);

    [Benchmark, BenchmarkCategory("GetHitAsyncToken")]
    public Task<byte[]?> GetHitAsyncToken_Resilient() => _resilient.GetAsync(HitKey, _requestAborted.Token);

    [Benchmark(Baseline = true), BenchmarkCategory("GetMissAsync")]
    public Task<byte[]?> GetMissAsync_Stock() => _stock.GetAsync(MissKey);

    [Benchmark, BenchmarkCategory("GetMissAsync")]
    public Task<byte[]?> GetMissAsync_Resilient() => _resilient.GetAsync(MissKey);

    [Benchmark(Baseline = true), BenchmarkCategory("SetAsync")]
    public Task SetAsync_Stock() => _stock.SetAsync(WriteKey, _value, Entry);

    [Benchmark, BenchmarkCategory("SetAsync")]
    public Task SetAsync_Resilient() => _resilient.SetAsync(WriteKey, _value, Entry);

    [Benchmark(Baseline = true), BenchmarkCategory("RefreshAsync")]
    public Task RefreshAsync_Stock() => _stock.RefreshAsync(HitKey);

    [Benchmark, BenchmarkCategory("RefreshAsync")]
    public Task RefreshAsync_Resilient() => _resilient.RefreshAsync(HitKey);

    [Benchmark(Baseline = true), BenchmarkCategory("RemoveAsync")]
    public Task RemoveAsync_Stock() => _stock.RemoveAsync(RemoveKey);

    [Benchmark, BenchmarkCategory("RemoveAsync")]
    public Task RemoveAsync_Resilient() => _resilient.RemoveAsync(RemoveKey);

    // ---- IBufferDistributedCache (HybridCache's L2 path) ----

    [Benchmark(Baseline = true), BenchmarkCategory("TryGetHit")]
    public bool TryGetHit_Stock()
    {
        _writer.ResetWrittenCount();
        return _stockBuffer.TryGet(HitKey, _writer);
    }

    [Benchmark, BenchmarkCategory("TryGetHit")]
    public bool TryGetHit_Resilient()
    {
        _writer.ResetWrittenCount();
        return _resilientBuffer.TryGet(HitKey, _writer);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("TryGetHitAsync")]
    public ValueTask<bool> TryGetHitAsync_Stock()
    {
        _writer.ResetWrittenCount();
        return _stockBuffer.TryGetAsync(HitKey, _writer);
    }

    [Benchmark, BenchmarkCategory("TryGetHitAsync")]
    public ValueTask<bool> TryGetHitAsync_Resilient()
    {
        _writer.ResetWrittenCount();
        return _resilientBuffer.TryGetAsync(HitKey, _writer);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("SetSequence")]
    public void SetSequence_Stock() => _stockBuffer.Set(WriteKey, _sequence, Entry);

    [Benchmark, BenchmarkCategory("SetSequence")]
    public void SetSequence_Resilient() => _resilientBuffer.Set(WriteKey, _sequence, Entry);

    [Benchmark(Baseline = true), BenchmarkCategory("SetSequenceAsync")]
    public ValueTask SetSequenceAsync_Stock() => _stockBuffer.SetAsync(WriteKey, _sequence, Entry);

    [Benchmark, BenchmarkCategory("SetSequenceAsync")]
    public ValueTask SetSequenceAsync_Resilient() => _resilientBuffer.SetAsync(WriteKey, _sequence, Entry);
}

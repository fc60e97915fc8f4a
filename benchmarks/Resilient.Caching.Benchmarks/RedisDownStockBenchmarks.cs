using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Resilient.Caching.Benchmarks.Shared;
using Resilient.Caching.IntegrationTests.Infrastructure;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// The stock provider's cost for the call that <see cref="ShortCircuitBenchmarks"/> short-circuits: Redis was up,
/// the stock cache connected, then redis-server was killed (SIGKILL). Each call waits for StackExchange.Redis'
/// backlog/timeout (5 s by default) and throws. A tiny job (1 warm-up and 3 measured single-call iterations)
/// keeps this at well under a minute; the exceptions are caught, their cost is part of what callers pay.
/// </summary>
// Mutators, so that they also override the run mode's job (--quick or the default one).
[WarmupCount(1)]
[IterationCount(3)]
[InvocationCount(1, unrollFactor: 1)]
public class RedisDownStockBenchmarks
{
    private RedisServer _redis = null!;
    private RedisCache _stock = null!;

    [GlobalSetup]
    public void Setup()
    {
        _redis = RedisServer.StartNewAsync().GetAwaiter().GetResult();
        _stock = CacheProviders.CreateStock(_redis.ConnectionString);
        _ = _stock.Get("bench:key");
        _redis.Kill();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stock.Dispose();
        _redis.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark]
    public Exception? Get_Stock_RedisDown()
    {
        try
        {
            _ = _stock.Get("bench:key");
            return null;
        }
        catch (Exception exception)
        {
            return exception;
        }
    }

    [Benchmark]
    public async Task<Exception?> GetAsync_Stock_RedisDown()
    {
        try
        {
            _ = await _stock.GetAsync("bench:key");
            return null;
        }
        catch (Exception exception)
        {
            return exception;
        }
    }
}

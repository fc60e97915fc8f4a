using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.Infrastructure;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// The BenchmarkDotNet half of <c>--processes</c>: the same four calls for whichever provider
/// <see cref="ProcessProviders.ProviderVariable"/> names. <see cref="ProcessHealthyPath"/> runs it with one job per
/// provider, and BenchmarkDotNet runs every job in a process of its own, so a process-wide switch set by one provider
/// (StackExchange.Redis's <c>DedicatedThreads</c> feature flag) reaches only that provider's figures. Not part of the
/// ordinary suite (Program leaves it out): without the jobs it would measure one provider only.
/// </summary>
/// <remarks>
/// The redis-server is the one <see cref="ProcessProviders.RedisVariable"/> names (shared by every job); run alone,
/// the class starts its own. 1 KB values with a 20-minute sliding expiration: a hit is HMGET + EXPIRE.
/// </remarks>
public class ProcessHealthyPathBenchmarks
{
    private const string HitKey = "bench:process:hit";
    private const string WriteKey = "bench:process:write";

    private static readonly DistributedCacheEntryOptions Entry = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    private readonly byte[] _value = BenchmarkData.Value1K();
    private RedisServer? _ownRedis;
    private OpenedProvider _provider = null!;
    private IDistributedCache _cache = null!;

    [GlobalSetup]
    public void Setup()
    {
        var configuration = Environment.GetEnvironmentVariable(ProcessProviders.RedisVariable);
        if (string.IsNullOrEmpty(configuration))
        {
            _ownRedis = RedisServer.StartNewAsync().GetAwaiter().GetResult();
            configuration = _ownRedis.ConnectionString;
        }

        _provider = ProcessProviders.Open(Environment.GetEnvironmentVariable(ProcessProviders.ProviderVariable) ?? ProcessProviders.Stock, configuration);
        _cache = _provider.Cache;
        _cache.Set(HitKey, _value, Entry);
        if (_cache.Get(HitKey)?.Length != _value.Length)
        {
            throw new InvalidOperationException("The hit key could not be read back from Redis.");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        var outages = _provider.Availability?.Outages ?? 0;
        _provider.Dispose();
        _ownRedis?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        if (outages != 0)
        {
            throw new InvalidOperationException($"The unavailable window opened {outages} time(s) during a healthy-path run: the figures are not valid.");
        }
    }

    [Benchmark]
    public byte[]? Get() => _cache.Get(HitKey);

    [Benchmark]
    public Task<byte[]?> GetAsync() => _cache.GetAsync(HitKey);

    [Benchmark]
    public void Set() => _cache.Set(WriteKey, _value, Entry);

    [Benchmark]
    public Task SetAsync() => _cache.SetAsync(WriteKey, _value, Entry);
}

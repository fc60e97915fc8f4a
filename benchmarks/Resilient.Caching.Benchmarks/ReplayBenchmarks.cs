using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Options;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;
using StackExchange.Redis;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// Applying the invalidations recorded during an outage (target: 100,000 in ≤ 1 s) against a real redis-server on
/// loopback. Before each iteration the stock <see cref="RedisCache"/> writes the keys (1 KB values, InstanceName
/// <c>app:</c>) and they are recorded; after it, the database must be empty. The baseline deletes one key per round
/// trip, as a replay without pipelining would; the middle row sends one <c>DEL</c> per key, all at once, leaving the
/// pipelining to StackExchange.Redis.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 7, invocationCount: 1)]
[MemoryDiagnoser]
public class ReplayBenchmarks
{
    private const string InstanceName = "app:";
    private static readonly DistributedCacheEntryOptions Entry = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    private readonly byte[] _value = BenchmarkData.Value1K();
    private RedisServer _redis = null!;
    private RedisCache _stock = null!;
    private ConnectionMultiplexer _connection = null!;
    private IDatabase _database = null!;
    private string[] _keys = null!;
    private PendingInvalidations _pending = null!;

    [Params(20_000, 100_000)]
    public int Records { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _redis = RedisServer.StartNewAsync().GetAwaiter().GetResult();
        _stock = new RedisCache(Options.Create(new RedisCacheOptions { Configuration = _redis.ConnectionString, InstanceName = InstanceName }));
        _connection = ConnectionMultiplexer.Connect(_redis.ConnectionString);
        _database = _connection.GetDatabase();
        _keys = Enumerable.Range(0, Records).Select(i => "session:" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
    }

    [IterationSetup]
    public void WriteAndRecord()
    {
        foreach (var chunk in _keys.Chunk(2_000))
        {
            Task.WhenAll(chunk.Select(k => _stock.SetAsync(k, _value, Entry))).GetAwaiter().GetResult();
        }

        _pending = new PendingInvalidations(Records, new StoredKeys(InstanceName), purgeOnOverflow: false, TimeSpan.FromMinutes(5), TimeProvider.System);
        foreach (var key in _keys)
        {
            _pending.Record(KeyKind.CacheKey, key);
        }

        Check(Records);
    }

    [IterationCleanup]
    public void Verify() => Check(0);

    [GlobalCleanup]
    public void Cleanup()
    {
        _connection.Dispose();
        _stock.Dispose();
        _redis.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true)]
    public async Task OneRoundTripPerKey()
    {
        foreach (var key in _keys)
        {
            await _database.KeyDeleteAsync(InstanceName + key);
        }
    }

    [Benchmark]
    public Task OneDelPerKey_AllInFlight() =>
        Task.WhenAll(_keys.Select(k => _database.KeyDeleteAsync(InstanceName + k)));

    [Benchmark]
    public Task Replay() => _pending.ReplayAsync(_database, evictTag: null);

    private void Check(long expected)
    {
        var size = (long)_database.Execute("DBSIZE");
        if (size != expected)
        {
            throw new InvalidOperationException($"The database holds {size} keys; expected {expected}.");
        }
    }
}

using System.Globalization;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;
using StackExchange.Redis;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Recovery;

/// <summary>
/// Replaying recorded invalidations against a real redis-server: the keys the stock providers wrote are the ones
/// deleted, a real fault part-way keeps what was not applied, and the overflow purge stays inside its prefixes.
/// </summary>
public sealed class ReplayTests : IAsyncLifetime
{
    private const string InstanceName = "app:";
    private static readonly DistributedCacheEntryOptions Entry = new() { SlidingExpiration = TimeSpan.FromMinutes(10) };
    private static readonly byte[] Value = new byte[64];

    private RedisServer _redis = null!;
    private ConnectionMultiplexer _connection = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private IDatabase Database => _connection.GetDatabase();

    public async ValueTask InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync(cancellationToken: Ct);

        // The probe's connection: short timeouts, as the library configures them from OperationTimeout.
        _connection = await ConnectionMultiplexer.ConnectAsync($"{_redis.ConnectionString},syncTimeout=1000,asyncTimeout=1000,connectTimeout=2000,abortConnect=false");
    }

    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Theory]
    [InlineData(20_000)]
    [InlineData(100_000)]
    public async Task Replay_DeletesExactlyTheRecordedKeys_ThatTheStockCacheWrote(int count)
    {
        using var stock = StockCache(InstanceName);
        var recorded = Keys("k", count);
        var kept = Keys("keep", 1_000);
        await WriteAsync(stock, recorded.Concat(kept));
        using var otherApp = StockCache("other:");
        await WriteAsync(otherApp, recorded.Take(1_000)); // same keys, another application's prefix
        Assert.Equal(count + 2_000, await DbSizeAsync());

        var pending = new PendingInvalidations(100_000, new StoredKeys(InstanceName), purgeOnOverflow: false, TimeSpan.FromMinutes(5), TimeProvider.System);
        recorded.ForEach(k => Assert.Equal(RecordOutcome.Recorded, pending.Record(KeyKind.CacheKey, k)));

        // A single server puts every key in the same slot: batches stay full.
        Assert.Single(recorded.Take(5_000).Select(k => _connection.HashSlot(InstanceName + k)).Distinct());

        var result = await pending.ReplayAsync(Database, evictTag: null, cancellationToken: Ct);

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"replayed {count} records in {result.Duration.TotalMilliseconds:0} ms ({result.Duration.TotalMicroseconds / count:0.0} µs per key)");
        Assert.Equal(count, result.KeysDeleted);
        Assert.Equal(0, pending.Count);
        Assert.Equal(0, await ExistingAsync(recorded.Select(k => (RedisKey)(InstanceName + k))));
        Assert.Equal(kept.Count, await ExistingAsync(kept.Select(k => (RedisKey)(InstanceName + k))));
        Assert.Equal(2_000, await DbSizeAsync());
        Assert.NotNull(await stock.GetAsync(kept[0], Ct));
        Assert.NotNull(await otherApp.GetAsync(recorded[0], Ct));

        // Generous for a loaded 2-core machine; the published figure is in benchmarks/results/RecoveryBenchmarks.md.
        Assert.True(result.Duration < TimeSpan.FromSeconds(count / 10_000.0), $"replay took {result.Duration}");
    }

    [Fact]
    public async Task Replay_DeletesOutputCacheEntries_AndEvictsTags_ThroughTheStockStore()
    {
        using var services = StockOutputCache("pages:");
        var store = services.GetRequiredService<IOutputCacheStore>();
        await store.SetAsync("/tagged-1", Value, ["products"], TimeSpan.FromMinutes(10), Ct);
        await store.SetAsync("/tagged-2", Value, ["products"], TimeSpan.FromMinutes(10), Ct);
        await store.SetAsync("/entry", Value, null, TimeSpan.FromMinutes(10), Ct);
        await store.SetAsync("/untouched", Value, ["other"], TimeSpan.FromMinutes(10), Ct);
        var pending = new PendingInvalidations(100, new StoredKeys(InstanceName, "pages:"), purgeOnOverflow: false, TimeSpan.FromMinutes(5), TimeProvider.System);
        pending.Record(KeyKind.OutputCacheEntry, "/entry");
        pending.Record(KeyKind.OutputCacheTag, "products");

        var result = await pending.ReplayAsync(Database, store.EvictByTagAsync, cancellationToken: Ct);

        Assert.Equal(1, result.KeysDeleted);
        Assert.Equal(1, result.TagsEvicted);
        Assert.Null(await store.GetAsync("/tagged-1", Ct));
        Assert.Null(await store.GetAsync("/tagged-2", Ct));
        Assert.Null(await store.GetAsync("/entry", Ct));
        Assert.NotNull(await store.GetAsync("/untouched", Ct));
    }

    [Fact]
    public async Task OnAServerWithoutUnlink_TheReplayDeletesWithDel()
    {
        // Redis before 4.0 has no UNLINK; a renamed-away command answers the same "unknown command".
        await using var old = await RedisServer.StartNewAsync(new RedisServerOptions { ExtraArgs = ["--rename-command", "UNLINK", ""] }, Ct);
        Assert.StartsWith("-ERR unknown command", await old.ExecuteAsync("UNLINK", "x"), StringComparison.Ordinal);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(old.ConnectionString);
        using var stock = new RedisCache(Options.Create(new RedisCacheOptions { Configuration = old.ConnectionString, InstanceName = InstanceName }));
        var recorded = Keys("k", 3_000);
        await WriteAsync(stock, recorded.Append("kept"));
        var pending = new PendingInvalidations(10_000, new StoredKeys(InstanceName), purgeOnOverflow: false, TimeSpan.FromMinutes(5), TimeProvider.System);
        recorded.ForEach(k => pending.Record(KeyKind.CacheKey, k));

        var result = await pending.ReplayAsync(connection.GetDatabase(), evictTag: null, cancellationToken: Ct);

        Assert.Equal(3_000, result.KeysDeleted);
        Assert.Equal(0, pending.Count);
        Assert.Equal(1L, (long)await connection.GetDatabase().ExecuteAsync("DBSIZE"));
        Assert.NotNull(await stock.GetAsync("kept", Ct));
        Assert.InRange((await old.GetCommandCallsAsync()).GetValueOrDefault("del"), 3, 3 + PendingInvalidations.BatchesInFlight);
    }

    [Fact]
    public async Task AReplayInterruptedByAFrozenServer_Throws_AndKeepsEveryRecordItHadNotApplied()
    {
        const int count = 100_000;
        using var stock = StockCache(InstanceName);
        var recorded = Keys("k", count);
        await WriteAsync(stock, recorded);
        var pending = new PendingInvalidations(count, new StoredKeys(InstanceName), purgeOnOverflow: false, TimeSpan.FromMinutes(5), TimeProvider.System);
        recorded.ForEach(k => pending.Record(KeyKind.CacheKey, k));

        var replay = pending.ReplayAsync(Database, evictTag: null, cancellationToken: Ct);

        // Freeze Redis as soon as the first batch is acknowledged (watched on a thread of its own: a timer would be
        // too coarse on a loaded machine), so the batches still out time out.
        await Task.Factory.StartNew(() =>
        {
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (pending.Count == count && !replay.IsCompleted && waited.Elapsed < TimeSpan.FromSeconds(30))
            {
                Thread.SpinWait(50);
            }

            _redis.Pause();
        }, Ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            var error = await Assert.ThrowsAnyAsync<Exception>(() => replay).WaitAsync(TimeSpan.FromSeconds(30), Ct);
            Assert.True(error is RedisTimeoutException or RedisConnectionException, error.ToString());
        }
        finally
        {
            _redis.Resume();
        }

        var left = pending.Count;
        TestContext.Current.TestOutputHelper?.WriteLine($"interrupted: {count - left} records applied, {left} kept");
        Assert.InRange(left, 1, count - 1);

        // Nothing forgotten that Redis did not delete (a batch that ran but whose reply timed out stays: deleting twice is harmless).
        var forgotten = recorded.Where(k => !pending.Contains(KeyKind.CacheKey, k)).Select(k => (RedisKey)(InstanceName + k)).ToList();
        Assert.Equal(0, await ExistingAsync(forgotten));

        // The next probe finishes the job.
        var result = await WithRetriesAsync(() => pending.ReplayAsync(Database, evictTag: null, cancellationToken: Ct));
        Assert.Equal(left, result.KeysDeleted);
        Assert.Equal(0, pending.Count);
        Assert.Equal(0, await DbSizeAsync());
    }

    [Fact]
    public async Task AfterAnOverflow_ThePurgeDeletesEveryKeyUnderThePrefixes_AndNothingElse()
    {
        using var stock = StockCache(InstanceName);
        using var similar = StockCache("app"); // "app" + "le:…": starts like the prefix, is not under it
        using var other = StockCache("other:");
        using var outputServices = StockOutputCache("pages:");
        using var otherOutputServices = StockOutputCache("otherpages:");
        var output = outputServices.GetRequiredService<IOutputCacheStore>();
        var otherOutput = otherOutputServices.GetRequiredService<IOutputCacheStore>();
        await WriteAsync(stock, Keys("k", 5_000).Append("glob*[?]\\"));
        await WriteAsync(similar, Keys("le:", 300));
        await WriteAsync(other, Keys("k", 700));
        await output.SetAsync("/page", Value, ["products"], TimeSpan.FromMinutes(10), Ct);
        await otherOutput.SetAsync("/page", Value, ["products"], TimeSpan.FromMinutes(10), Ct);

        // The stores write tags fire-and-forget: a read on the same connection comes back after they have landed.
        Assert.NotNull(await output.GetAsync("/page", Ct));
        Assert.NotNull(await otherOutput.GetAsync("/page", Ct));
        var before = await DbSizeAsync();

        var pending = new PendingInvalidations(10, new StoredKeys(InstanceName, "pages:"), purgeOnOverflow: true, TimeSpan.FromMinutes(5), TimeProvider.System);
        foreach (var key in Keys("k", 10))
        {
            pending.Record(KeyKind.CacheKey, key);
        }

        Assert.Equal(RecordOutcome.OverflowStarted, pending.Record(KeyKind.CacheKey, "k10"));
        var result = await pending.ReplayAsync(Database, output.EvictByTagAsync, cancellationToken: Ct);

        Assert.True(result.Purged);
        Assert.Equal(1, result.Dropped);
        Assert.Equal(0, pending.Count);
        Assert.False(pending.Overflow.Overflowed);
        var left = await AllKeysAsync();
        Assert.DoesNotContain(left, k => k.StartsWith(InstanceName, StringComparison.Ordinal) || k.StartsWith("pages:", StringComparison.Ordinal));
        Assert.Equal(300, left.Count(k => k.StartsWith("apple:", StringComparison.Ordinal)));
        Assert.Equal(700, left.Count(k => k.StartsWith("other:", StringComparison.Ordinal)));
        Assert.Contains(left, k => k.StartsWith("otherpages:", StringComparison.Ordinal));
        Assert.Equal(before - left.Count, result.KeysPurged);
        Assert.Null(await output.GetAsync("/page", Ct));
        Assert.NotNull(await otherOutput.GetAsync("/page", Ct));
    }

    private static List<string> Keys(string prefix, int count) =>
        Enumerable.Range(0, count).Select(i => prefix + i.ToString(CultureInfo.InvariantCulture)).ToList();

    private RedisCache StockCache(string instanceName) =>
        new(Options.Create(new RedisCacheOptions { Configuration = _redis.ConnectionString, InstanceName = instanceName }));

    private ServiceProvider StockOutputCache(string instanceName)
    {
        var services = new ServiceCollection();
        services.AddStackExchangeRedisOutputCache(o =>
        {
            o.Configuration = _redis.ConnectionString;
            o.InstanceName = instanceName;
        });
        return services.BuildServiceProvider();
    }

    private static async Task WriteAsync(RedisCache cache, IEnumerable<string> keys)
    {
        // Many writes in flight at once: StackExchange.Redis pipelines them on its one connection.
        foreach (var chunk in keys.Chunk(2_000))
        {
            await Task.WhenAll(chunk.Select(k => cache.SetAsync(k, Value, Entry, Ct)));
        }
    }

    private async Task<long> DbSizeAsync() => (long)await Database.ExecuteAsync("DBSIZE");

    private async Task<long> ExistingAsync(IEnumerable<RedisKey> keys)
    {
        long existing = 0;
        foreach (var chunk in keys.Chunk(5_000))
        {
            existing += await Database.KeyExistsAsync(chunk);
        }

        return existing;
    }

    private async Task<List<string>> AllKeysAsync()
    {
        var keys = new List<string>();
        await foreach (var key in _connection.GetServers().Single().KeysAsync(pageSize: 1_000).WithCancellation(Ct))
        {
            keys.Add(key.ToString());
        }

        return keys;
    }

    /// <summary>Right after a SIGCONT the old connection may still be reconnecting; the probe would simply try again.</summary>
    private static async Task<T> WithRetriesAsync<T>(Func<Task<T>> action)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await action();
            }
            catch (Exception exception) when (exception is RedisException or TimeoutException && attempt < 10)
            {
                await Task.Delay(500, Ct);
            }
        }
    }
}

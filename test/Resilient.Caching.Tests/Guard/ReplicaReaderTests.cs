using System.Buffers;
using Moq;
using StackExchange.Redis;
using Resilient.Caching.Guard;
using Resilient.Caching.Outages;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;
using Resilient.Caching.Topology;

namespace Resilient.Caching.Tests.Guard;

/// <summary>
/// Reads while Redis's primary is out, with a replica in the deployment: served by the replica through the stock
/// cache's hash field, never for a key whose write is pending, out for the window when the replica fails too.
/// </summary>
public sealed class ReplicaReaderTests : IDisposable
{
    private static readonly byte[] Value = [1, 2, 3];
    private readonly Harness _h = new(invalidateKeysReadDuringOutage: true);
    private readonly Mock<IDatabase> _database = new();
    private int _replicaReads;

    public ReplicaReaderTests()
    {
        _database.Setup(d => d.HashGet(It.IsAny<RedisKey>(), It.IsAny<RedisValue>(), It.IsAny<CommandFlags>()))
            .Callback(() => _replicaReads++).Returns(Value);
        _database.Setup(d => d.HashGetAsync(It.IsAny<RedisKey>(), It.IsAny<RedisValue>(), It.IsAny<CommandFlags>()))
            .Callback(() => _replicaReads++).ReturnsAsync(Value);
    }

    [Fact]
    public async Task InsideTheWindow_ReadsAreServedByAReplica()
    {
        _h.OpenWindow();
        UseReplicatedDeployment();

        Assert.Equal(Value, _h.Cache.Get("k"));
        Assert.Equal(Value, await _h.Cache.GetAsync("k", TestContext.Current.CancellationToken));
        var buffer = new ArrayBufferWriter<byte>();
        Assert.True(_h.Cache.TryGet("k", buffer));
        Assert.Equal(Value, buffer.WrittenSpan.ToArray());

        Assert.Equal(3, _replicaReads);
        _database.Verify(d => d.HashGet((RedisKey)"app:k", (RedisValue)"data", CommandFlags.PreferReplica), Times.Exactly(2));
        Assert.False(_h.Pending.Contains(KeyKind.CacheKey, "k"));
        Assert.False(_h.Availability.IsAvailable);
    }

    [Fact]
    public void KeyWhoseWriteIsPending_IsAMiss_NotTheReplicasOldValue()
    {
        _h.OpenWindow();
        UseReplicatedDeployment();

        _h.Cache.Remove("signed-out");

        Assert.Null(_h.Cache.Get("signed-out"));
        Assert.Equal(0, _replicaReads);
    }

    [Fact]
    public void ReplicaConnectionBeingMadeAgain_IsWaitedFor()
    {
        _h.OpenWindow();
        UseReplicatedDeployment();
        _database.SetupSequence(d => d.HashGet(It.IsAny<RedisKey>(), It.IsAny<RedisValue>(), It.IsAny<CommandFlags>()))
            .Throws(ChaosCache.Reset())
            .Returns(Value);

        Assert.Equal(Value, _h.Cache.Get("k"));
        _database.Verify(d => d.HashGet(It.IsAny<RedisKey>(), It.IsAny<RedisValue>(), It.IsAny<CommandFlags>()), Times.Exactly(2));
        Assert.False(_h.Pending.Contains(KeyKind.CacheKey, "k"));
    }

    [Fact]
    public void ReplicaFailing_IsAMiss_AndReplicaReadsPauseForTheWindow()
    {
        _h.OpenWindow();
        UseReplicatedDeployment();
        _database.Setup(d => d.HashGet(It.IsAny<RedisKey>(), It.IsAny<RedisValue>(), It.IsAny<CommandFlags>()))
            .Callback(() => _replicaReads++).Throws(new RedisTimeoutException(CommandFlags.None, "replica frozen too", CommandStatus.Sent));

        Assert.Null(_h.Cache.Get("a"));
        Assert.Null(_h.Cache.Get("b"));
        Assert.Equal(1, _replicaReads);

        // A made-up miss: remembered like any read that skipped Redis.
        Assert.True(_h.Pending.Contains(KeyKind.CacheKey, "a"));

        _h.Time.Advance(TimeSpan.FromSeconds(20));
        Assert.Null(_h.Cache.Get("c"));
        Assert.Equal(1, _replicaReads);
    }

    [Fact]
    public void ReplicaNotReconnecting_IsGivenUpOnQuickly_AndThenSkippedAtOnce()
    {
        _h.OpenWindow();
        UseReplicatedDeployment();
        _database.Setup(d => d.HashGet(It.IsAny<RedisKey>(), It.IsAny<RedisValue>(), It.IsAny<CommandFlags>()))
            .Callback(() => _replicaReads++).Throws(ChaosCache.Reset());

        var first = System.Diagnostics.Stopwatch.StartNew();
        Assert.Null(_h.Cache.Get("a"));
        Assert.InRange(first.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(2));
        var tries = _replicaReads;
        Assert.True(tries > 1, "a replica connection being made again is waited for a little");

        // Out for the window: the next read does not try (nor wait for) the replica.
        Assert.Null(_h.Cache.Get("b"));
        Assert.Equal(tries, _replicaReads);
    }

    [Fact]
    public void ReadThatFailsFast_IsRetriedOnAReplica_AndNotRemembered()
    {
        UseReplicatedDeployment();
        _h.Inner.Error = ChaosCache.Reset;
        _h.Inner.Fault = Fault.ThrowsSynchronously;

        Assert.Equal(Value, _h.Cache.Get("k"));

        Assert.Equal(1, _replicaReads);
        Assert.False(_h.Pending.Contains(KeyKind.CacheKey, "k"));
        Assert.False(_h.Pending.Misses.IsMarked("k"));
    }

    [Fact]
    public void ReadThatTimedOut_IsNotRetried_ItHadItsWholeTimeout()
    {
        UseReplicatedDeployment();
        _h.Inner.Fault = Fault.ThrowsSynchronously;

        Assert.Null(_h.Cache.Get("k"));

        Assert.Equal(0, _replicaReads);
        Assert.True(_h.Pending.Contains(KeyKind.CacheKey, "k"));
    }

    [Fact]
    public void SingleServer_InsideTheWindow_NoReplicaRead()
    {
        _h.OpenWindow();
        _h.Connection.Database = _database.Object;

        Assert.Null(_h.Cache.Get("k"));
        Assert.Equal(0, _replicaReads);
    }

    [Fact]
    public void CanRead_AGetOfACacheKey_WithAReplica_AConnection_AndNoPendingWrite()
    {
        _h.OpenWindow();
        var reader = Reader();
        var deployment = _h.Core.Shards.Deployment;
        Assert.False(reader.CanRead(CacheOperation.Get, CacheTarget.CacheKey("k"), deployment));

        UseReplicatedDeployment();

        Assert.True(reader.CanRead(CacheOperation.Get, CacheTarget.CacheKey("k"), deployment));
        Assert.False(reader.CanRead(CacheOperation.Set, CacheTarget.CacheKey("k"), deployment));
        Assert.False(reader.CanRead(CacheOperation.Refresh, CacheTarget.CacheKey("k"), deployment));
        Assert.False(reader.CanRead(CacheOperation.Get, CacheTarget.OutputCacheEntry("/home"), deployment));
        Assert.False(reader.CanRead(CacheOperation.Get, CacheTarget.None, deployment));

        _h.Pending.Record(KeyKind.CacheKey, "written");
        Assert.False(reader.CanRead(CacheOperation.Get, CacheTarget.CacheKey("written"), deployment));

        _h.Connection.IsReady = false;
        Assert.False(reader.CanRead(CacheOperation.Get, CacheTarget.CacheKey("k"), deployment));
    }

    [Fact]
    public void CanRead_InACluster_OnlyForAShardWithAReplica()
    {
        UseReplicatedDeployment();
        _h.Core.Shards.Apply(
        [
            new("10.0.0.1:6379", [new SlotRange(0, 8191)], HasReplica: true),
            new("10.0.0.2:6379", [new SlotRange(8192, 16383)], HasReplica: false),
        ]);
        var reader = Reader();

        Assert.Equal([true, false], _h.Core.Shards.Shards.Select(s => reader.CanRead(CacheOperation.Get, CacheTarget.CacheKey("k"), s)));
    }

    [Fact]
    public void TryRead_ReadsTheStockHashFieldFromAReplica_AndTheKeyIsReadForReal()
    {
        _h.OpenWindow();
        UseReplicatedDeployment();
        _h.Pending.Misses.Mark("k");

        Assert.True(Reader().TryRead(CacheTarget.CacheKey("k"), _h.Core.Shards.Deployment, out var data));

        Assert.Equal(Value, data);
        _database.Verify(d => d.HashGet((RedisKey)"app:k", (RedisValue)"data", CommandFlags.PreferReplica), Times.Once());
        Assert.False(_h.Pending.Misses.IsMarked("k"));
    }

    [Fact]
    public async Task ReadAsync_AKeyTheReplicaDoesNotHave_IsARealMiss()
    {
        _h.OpenWindow();
        UseReplicatedDeployment();
        _database.Setup(d => d.HashGetAsync(It.IsAny<RedisKey>(), It.IsAny<RedisValue>(), It.IsAny<CommandFlags>())).ReturnsAsync(RedisValue.Null);

        var read = await Reader().ReadAsync(CacheTarget.CacheKey("absent"), _h.Core.Shards.Deployment, TestContext.Current.CancellationToken);

        Assert.Equal(new ReplicaRead(null), read);
        _database.Verify(d => d.HashGetAsync((RedisKey)"app:absent", (RedisValue)"data", CommandFlags.PreferReplica), Times.Once());
    }

    [Fact]
    public async Task AFailedReplicaRead_PausesReplicaReads_ForTheRestOfTheWindow()
    {
        _h.OpenWindow();
        UseReplicatedDeployment();
        _h.Time.Advance(TimeSpan.FromSeconds(10));
        _database.Setup(d => d.HashGetAsync(It.IsAny<RedisKey>(), It.IsAny<RedisValue>(), It.IsAny<CommandFlags>()))
            .ThrowsAsync(new RedisTimeoutException(CommandFlags.None, "replica frozen too", CommandStatus.Sent));
        var reader = Reader();
        var deployment = _h.Core.Shards.Deployment;

        Assert.Null(await reader.ReadAsync(CacheTarget.CacheKey("k"), deployment, TestContext.Current.CancellationToken));

        Assert.False(reader.CanRead(CacheOperation.Get, CacheTarget.CacheKey("k"), deployment));
        _h.Time.Advance(TimeSpan.FromSeconds(20) - TimeSpan.FromTicks(1));
        Assert.False(reader.CanRead(CacheOperation.Get, CacheTarget.CacheKey("k"), deployment));
        _h.Time.Advance(TimeSpan.FromTicks(1));
        Assert.True(reader.CanRead(CacheOperation.Get, CacheTarget.CacheKey("k"), deployment));
    }

    [Fact]
    public async Task AReplicaReadTimingOutOnAStarvedPool_WhileTheReplicaAnswers_PausesNothing()
    {
        _h.OpenWindow();
        UseReplicatedDeployment();
        var reader = Reader(new FailureJudge(_h.Core.Shards, _h.Connection, static () => true, Harness.OperationTimeout));
        var deployment = _h.Core.Shards.Deployment;
        Assert.NotNull(await reader.ReadAsync(CacheTarget.CacheKey("answered"), deployment, TestContext.Current.CancellationToken));
        _database.Setup(d => d.HashGetAsync(It.IsAny<RedisKey>(), It.IsAny<RedisValue>(), It.IsAny<CommandFlags>()))
            .ThrowsAsync(new RedisTimeoutException(CommandFlags.None, "the reply waited for a pool thread", CommandStatus.Sent));

        Assert.Null(await reader.ReadAsync(CacheTarget.CacheKey("k"), deployment, TestContext.Current.CancellationToken));

        // The application's stall, not the replica's: the next read asks the replica again.
        Assert.True(reader.CanRead(CacheOperation.Get, CacheTarget.CacheKey("k"), deployment));
        Assert.Equal(1, _h.CountLogs(Log.IdApplicationStall));
    }

    public void Dispose() => _h.Dispose();

    /// <summary>A reader over the harness's parts, as the cache's core builds it.</summary>
    private ReplicaReader Reader(FailureJudge? judge = null)
    {
        var notify = new OutageNotifications(_h.Availability, _h.Metrics, _h.Logger, logExceptions: true);
        var ledger = new OutageLedger(_h.Pending, invalidateKeysReadDuringOutage: true, [], new StoredKeys("app:"), _h.Connection, _h.Metrics, _h.Logger);
        judge ??= new FailureJudge(_h.Core.Shards, _h.Connection, static () => false, Harness.OperationTimeout);
        return new ReplicaReader(_h.Core.Shards, new StoredKeys("app:"), _h.Connection, ledger, _h.Metrics, notify, judge, Harness.OperationTimeout);
    }

    /// <summary>A primary and a replica, as the client reports them; the replica answers through <see cref="_database"/>.</summary>
    private void UseReplicatedDeployment()
    {
        var primary = new Mock<IServer>();
        var replica = new Mock<IServer>();
        replica.SetupGet(s => s.IsReplica).Returns(true);
        var multiplexer = new Mock<IConnectionMultiplexer>();
        multiplexer.Setup(m => m.GetServers()).Returns([primary.Object, replica.Object]);
        _h.Core.Shards.Refresh(multiplexer.Object);
        _h.Connection.Database = _database.Object;
        Assert.True(_h.Core.Shards.IsReplicated);
        Assert.False(_h.Core.Shards.IsCluster);
    }
}

using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using Moq;
using Resilient.Caching.Connection;
using Resilient.Caching.Outages;
using Resilient.Caching.Storage;
using Resilient.Caching.Topology;
using StackExchange.Redis;

namespace Resilient.Caching.Tests.Outages;

/// <summary>
/// What a failed call means: Redis's failure or the caller's, an outage at once or a suspicion to check, which window,
/// and whether the connection may be reset. The judge changes no state.
/// </summary>
public sealed class FailureJudgeTests : IDisposable
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(5);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly WindowController _deployment;
    private readonly ShardMap _shards;
    private readonly CountingConnection _connection = new();
    private readonly FailureJudge _judge;
    private bool _starved;

    public FailureJudgeTests()
    {
        _deployment = new WindowController(_time, Window, Budget);
        _shards = new ShardMap(new StoredKeys("app:"), _deployment, changed => new WindowController(_time, Window, Budget, changed));
        _judge = new FailureJudge(_shards, _connection, () => _starved);
    }

    public static TheoryData<string, string, bool, bool> Verdicts => new()
    {
        // What the call threw, its kind, an outage at once (or a suspicion), whether the single server's connection may be reset.
        { "timeout", nameof(RedisFailureKind.Transport), true, true },
        { "plain timeout", nameof(RedisFailureKind.Transport), true, true },
        { "reset", nameof(RedisFailureKind.Transport), false, true },
        { "refused", nameof(RedisFailureKind.Transport), false, true },
        { "socket", nameof(RedisFailureKind.Transport), false, true },
        { "connect waited out", nameof(RedisFailureKind.Transport), true, false },
        { "connect pending", nameof(RedisFailureKind.Transport), false, false },
        { "LOADING", nameof(RedisFailureKind.ServerUnavailable), true, false },
        { "READONLY", nameof(RedisFailureKind.ServerUnavailable), false, false },
        { "READONLY unclassified", nameof(RedisFailureKind.ServerUnavailable), false, false },
        { "MASTERDOWN", nameof(RedisFailureKind.ServerUnavailable), true, false },
        { "NOAUTH", nameof(RedisFailureKind.Authentication), true, false },
        { "refused credentials", nameof(RedisFailureKind.Authentication), true, false },
    };

    private static CacheTarget Key => CacheTarget.CacheKey("k");

    [Theory]
    [MemberData(nameof(Verdicts))]
    public void SingleServer_Verdicts(string error, string kind, bool isOutage, bool mayReset)
    {
        var verdict = _judge.Judge(Error(error), Key, _connection.Generation);

        Assert.Equal(kind, verdict.Kind.ToString());
        Assert.True(verdict.IsRedisFailure);
        Assert.Equal(isOutage, verdict.IsOutage);
        Assert.Equal(mayReset, verdict.MayReset);
        Assert.Same(_shards.Deployment, verdict.Shard);
    }

    [Theory]
    [InlineData("argument")]
    [InlineData("cancelled")]
    [InlineData("WRONGTYPE")]
    [InlineData("disposed")]
    public void NotRedisAvailability_IsNoRedisFailure_AndResetsNothing(string error)
    {
        var verdict = _judge.Judge(Error(error), Key, _connection.Generation);

        Assert.Equal(RedisFailureKind.None, verdict.Kind);
        Assert.False(verdict.IsRedisFailure);
        Assert.False(verdict.MayReset);
    }

    [Fact]
    public void TimeoutWhileThePoolIsStarved_ButRedisHasNotAnsweredForAnOperationTimeoutAndAHalf_IsAnOutage()
    {
        // A frozen Redis starves a pool of synchronous callers itself: that starvation does not hide it.
        _starved = true;
        Assert.True(_judge.Judge(Error("timeout"), Key, _connection.Generation).IsOutage);

        _judge.Answered(System.Diagnostics.Stopwatch.GetTimestamp() - (long)(Budget.TotalSeconds * 1.6 * System.Diagnostics.Stopwatch.Frequency));
        var verdict = _judge.Judge(Error("timeout"), Key, _connection.Generation);
        Assert.True(verdict.IsOutage);
        Assert.False(verdict.IsStall);

        _judge.Answered(System.Diagnostics.Stopwatch.GetTimestamp() - (long)(Budget.TotalSeconds * 1.4 * System.Diagnostics.Stopwatch.Frequency));
        Assert.True(_judge.Judge(Error("timeout"), Key, _connection.Generation).IsStall);
    }

    [Fact]
    public void TimeoutWhileThePoolIsStarved_IsASuspicion_AndKeepsTheConnection()
    {
        _starved = true;
        _judge.Answered(System.Diagnostics.Stopwatch.GetTimestamp());

        var verdict = _judge.Judge(Error("timeout"), Key, _connection.Generation);

        Assert.Equal(RedisFailureKind.Transport, verdict.Kind);
        Assert.False(verdict.IsOutage);
        Assert.False(verdict.MayReset);
        Assert.True(verdict.IsStall);
        Assert.True(_judge.IsStarvation(Error("timeout")));

        // Only a timeout says nothing about the path to Redis while the pool is starved: a reset still does.
        Assert.False(_judge.IsStarvation(Error("reset")));
        Assert.True(_judge.Judge(Error("reset"), Key, _connection.Generation).MayReset);
    }

    [Fact]
    public void FailureOfAnOlderGeneration_NeverResetsTheFreshConnection()
    {
        var generation = _connection.Generation;
        _connection.Reset();

        var timeout = _judge.Judge(Error("timeout"), Key, generation);
        var reset = _judge.Judge(Error("reset"), Key, generation);

        Assert.Equal(RedisFailureKind.Transport, timeout.Kind);
        Assert.True(timeout.IsOutage);
        Assert.False(timeout.MayReset);
        Assert.False(reset.MayReset);
        Assert.True(_judge.Judge(Error("reset"), Key, _connection.Generation).MayReset);
    }

    [Fact]
    public void DisposedObject_IsTheResetsDoing_OnlyForACallOfAnOlderGeneration()
    {
        var generation = _connection.Generation;
        Assert.Equal(RedisFailureKind.None, _judge.Judge(Error("disposed"), Key, generation).Kind);

        _connection.Reset();

        var verdict = _judge.Judge(Error("disposed"), Key, generation);
        Assert.Equal(RedisFailureKind.Transport, verdict.Kind);
        Assert.False(verdict.MayReset);
    }

    [Fact]
    public void ReplicatedDeployment_NeverResets_TheClientFailsOverByItself()
    {
        UseReplicatedDeployment();

        var timeout = _judge.Judge(Error("timeout"), Key, _connection.Generation);
        var reset = _judge.Judge(Error("reset"), Key, _connection.Generation);

        Assert.True(timeout.IsOutage);
        Assert.False(timeout.MayReset);
        Assert.False(reset.IsOutage);
        Assert.False(reset.MayReset);
        Assert.False(_judge.CanReset(_shards.Deployment));
    }

    [Fact]
    public void Timeout_WhoseReportShowsBytesUnread_IsTheApplicationsStall_NotRedis()
    {
        const string Unread = "Timeout awaiting response (outbound=0KiB, inbound=1KiB, 1002ms elapsed, timeout is 1000ms), command=HMGET, inst: 0, qu: 0, qs: 1, in: 1024, in-pipe: 0, last-in: 0, cur-in: 0";
        const string NothingCame = "Timeout awaiting response (outbound=0KiB, inbound=0KiB, 1002ms elapsed, timeout is 1000ms), command=HMGET, inst: 0, qu: 0, qs: 1, in: 0, in-pipe: 0, last-in: 12, cur-in: 3";

        var stalled = _judge.Judge(new RedisTimeoutException(CommandFlags.None, Unread, CommandStatus.Sent), Key, _connection.Generation);
        var dead = _judge.Judge(new RedisTimeoutException(CommandFlags.None, NothingCame, CommandStatus.Sent), Key, _connection.Generation);

        Assert.True(stalled.IsStall);
        Assert.False(stalled.IsOutage);
        Assert.False(stalled.MayReset);
        Assert.False(dead.IsStall);
        Assert.True(dead.IsOutage);
        Assert.True(FailureJudge.RepliesUnread("…, in: 0, in-pipe: 7, …"));
        Assert.False(FailureJudge.RepliesUnread("…, last-in: 9, cur-in: 4, …"));
    }

    [Fact]
    public void Cluster_RefusedCredentials_AreTheDeploymentsProblem_WhicheverShardSawThem()
    {
        UseCluster();

        var verdict = _judge.Judge(Error("NOAUTH"), Key, _connection.Generation);

        Assert.Equal(RedisFailureKind.Authentication, verdict.Kind);
        Assert.True(verdict.Shard.IsDeployment);
    }

    [Fact]
    public void Cluster_AKeysFailure_BelongsToItsShard_AndNeverResets()
    {
        UseCluster();
        var expected = _shards.ShardOf(KeyKind.CacheKey, "k");
        Assert.NotNull(expected);

        var verdict = _judge.Judge(Error("timeout"), Key, _connection.Generation);

        Assert.Same(expected, verdict.Shard);
        Assert.False(verdict.Shard.IsDeployment);
        Assert.True(verdict.IsOutage);
        Assert.False(verdict.MayReset);
        Assert.False(_judge.CanReset(expected));
    }

    [Fact]
    public void Cluster_AnOutputCacheEntry_BelongsToTheShardOfItsStoredKey()
    {
        UseCluster();
        var entry = CacheTarget.OutputCacheEntry("/home");

        Assert.Same(_shards.ShardOf(KeyKind.OutputCacheEntry, "/home"), _judge.ShardOf(entry, Error("timeout")));
        Assert.NotNull(_judge.ShardOf(entry, Error("timeout")));
    }

    [Fact]
    public void Cluster_NoConnectionAtAll_OrNoSingleKey_IsTheDeployments()
    {
        UseCluster();

        Assert.Same(_shards.Deployment, _judge.ShardOf(Key, Error("connect waited out")));
        Assert.Same(_shards.Deployment, _judge.ShardOf(Key, Error("connect pending")));
        Assert.Same(_shards.Deployment, _judge.ShardOf(CacheTarget.OutputCacheTag("products"), Error("timeout")));
        Assert.Same(_shards.Deployment, _judge.ShardOf(CacheTarget.None, Error("timeout")));
        Assert.NotSame(_shards.Deployment, _judge.ShardOf(Key, Error("timeout")));
    }

    [Fact]
    public void SingleServer_EveryKeysFailure_IsTheDeployments()
    {
        Assert.Same(_shards.Deployment, _judge.ShardOf(Key, Error("timeout")));
        Assert.Same(_shards.Deployment, _judge.ShardOf(CacheTarget.OutputCacheEntry("/home"), Error("reset")));
    }

    [Theory]
    [InlineData("reset", true)]
    [InlineData("refused", true)]
    [InlineData("READONLY", true)]
    [InlineData("timeout", false)]
    [InlineData("connect waited out", false)]
    [InlineData("cancelled", false)]
    public void FastFailure_IsOneThatCameBeforeTheTimeout(string error, bool fast) => Assert.Equal(fast, FailureJudge.IsFastFailure(Error(error)));

    [Fact]
    public void TheJudge_ChangesNoState()
    {
        UseCluster();

        foreach (var error in new[] { "timeout", "reset", "connect waited out", "LOADING", "READONLY", "NOAUTH", "argument" })
        {
            _ = _judge.Judge(Error(error), Key, _connection.Generation);
        }

        Assert.True(_deployment.IsAvailable);
        Assert.False(_shards.AnyShardOut);
        Assert.Equal(0, _connection.Resets);
        Assert.Null(_deployment.LastError);
    }

    public void Dispose() => _deployment.Dispose();

    private static Exception Error(string name) => name switch
    {
        "timeout" => new RedisTimeoutException(CommandFlags.None, "Timeout performing HGET", CommandStatus.Sent),
        "plain timeout" => new TimeoutException(),
        "reset" => new RedisConnectionException(ConnectionFailureType.SocketFailure, CommandFlags.None, "reset", null, CommandStatus.Sent),
        "refused" => new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, "refused", null, CommandStatus.Unknown),
        "socket" => new SocketException((int)SocketError.ConnectionReset),
        "connect waited out" => RedisConnectPendingException.WaitedOutFor(Budget),
        "connect pending" => new RedisConnectPendingException("No Redis connection at the moment."),
        "LOADING" => new RedisServerException(RedisErrorKind.Loading, CommandFlags.None, "LOADING Redis is loading the dataset in memory"),
        "READONLY" => new RedisServerException(RedisErrorKind.ReadOnly, CommandFlags.None, "READONLY You can't write against a read only replica."),
        "READONLY unclassified" => new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "READONLY You can't write against a read only replica."),
        "MASTERDOWN" => new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "MASTERDOWN Link with MASTER is down"),
        "NOAUTH" => new RedisServerException(RedisErrorKind.NoAuth, CommandFlags.None, "NOAUTH Authentication required."),
        "refused credentials" => new RedisConnectionException(ConnectionFailureType.AuthenticationFailure, CommandFlags.None, "auth", null, CommandStatus.Unknown),
        "argument" => new ArgumentException("bad key"),
        "cancelled" => new OperationCanceledException(),
        "WRONGTYPE" => new RedisServerException(RedisErrorKind.WrongType, CommandFlags.None, "WRONGTYPE Operation against a key holding the wrong kind of value"),
        "disposed" => new ObjectDisposedException("Connection is being disposed"),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    /// <summary>A primary and a replica, as the client reports them.</summary>
    private void UseReplicatedDeployment()
    {
        var primary = new Mock<IServer>();
        var replica = new Mock<IServer>();
        replica.SetupGet(s => s.IsReplica).Returns(true);
        var multiplexer = new Mock<IConnectionMultiplexer>();
        multiplexer.Setup(m => m.GetServers()).Returns([primary.Object, replica.Object]);
        _shards.Refresh(multiplexer.Object);
        Assert.True(_shards.IsReplicated);
        Assert.False(_shards.IsCluster);
    }

    /// <summary>Three primaries, as a cluster reports them.</summary>
    private void UseCluster()
    {
        _shards.Apply(
        [
            new("10.0.0.1:6379", [new SlotRange(0, 5460)], HasReplica: false),
            new("10.0.0.2:6379", [new SlotRange(5461, 10922)], HasReplica: false),
            new("10.0.0.3:6379", [new SlotRange(10923, 16383)], HasReplica: false),
        ]);
        Assert.True(_shards.IsCluster);
    }
}

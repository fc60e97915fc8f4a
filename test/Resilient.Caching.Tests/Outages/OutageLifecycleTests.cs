using System.Net;
using Moq;
using Resilient.Caching.Outages;
using Resilient.Caching.Storage;
using Resilient.Caching.Tests.Recovery;
using Resilient.Caching.Topology;
using StackExchange.Redis;

namespace Resilient.Caching.Tests.Outages;

/// <summary>
/// An outage from the failure that starts it to the probe that ends it, on the lifecycle alone (built as the library
/// builds it, driven directly): what a failure's transition does to the connection, the probe of a suspicion, a
/// failed probe, the replay before the window closes, and the client's own signs (a topology change, a primary lost).
/// </summary>
public sealed class OutageLifecycleTests : IDisposable
{
    private readonly Harness _h = new();

    public OutageLifecycleTests() => _h.Connection.Probe = static () => Task.CompletedTask;

    private OutageLifecycle Outages => _h.Core.Outages;

    private Shard Deployment => _h.Core.Shards.Deployment;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Opened_ResetsTheConnection_OnlyWhenTheVerdictAllows(bool mayReset)
    {
        Outages.RecordFailure(CacheOperation.Get, Timeout(), new FailureVerdict(RedisFailureKind.Transport, Deployment, IsOutage: true, mayReset));

        Assert.Equal(mayReset ? 1 : 0, _h.Connection.Resets);
        Assert.True(_h.Controller.IsOutage);
        Assert.Equal(1, _h.CountLogs(Log.IdWindowOpened));

        // An outage is probed when its window has elapsed, not now.
        Assert.Equal(0, _h.Connection.Probes);
    }

    [Fact]
    public async Task Suspected_StartsAProbe_AndTheWindowClosesAsABlipWhenItSucceeds()
    {
        var probe = new TaskCompletionSource();
        _h.Connection.Probe = () => probe.Task;

        Outages.RecordFailure(CacheOperation.Get, Reset(), Suspicion(Deployment));

        Assert.Equal(1, _h.Connection.Probes);
        Assert.Equal((RedisKey)"app:__resilient_caching_probe", _h.Connection.ProbeKey);
        Assert.False(_h.Availability.IsAvailable);
        Assert.False(_h.Controller.IsOutage);
        Assert.Equal(0, _h.CountLogs(Log.IdWindowOpened));

        probe.SetResult();

        await Harness.UntilAsync(() => _h.Availability.IsAvailable);
        Assert.Equal(1, _h.CountLogs(Log.IdBlipRecovered));
        Assert.Equal(0, _h.CountLogs(Log.IdWindowClosed));
        Assert.Equal(0, _h.Availability.Outages);
    }

    [Fact]
    public void Suspected_AFailedProbe_OpensTheWindow_AndResetsTheConnectionItProbed()
    {
        var opened = new List<CacheWindowOpenedEventArgs>();
        _h.Availability.WindowOpened += (_, e) => opened.Add(e);
        _h.Connection.Probe = static () => Task.FromException(Timeout());

        Outages.RecordFailure(CacheOperation.Get, Reset(), Suspicion(Deployment));

        Assert.True(_h.Controller.IsOutage);
        Assert.Equal(_h.Availability.Window, _h.Availability.RetryAfter);
        Assert.Equal(1, _h.Connection.Resets);
        Assert.Equal(1, _h.CountLogs(Log.IdWindowOpened));
        Assert.Equal(0, _h.CountLogs(Log.IdProbeFailed));
        var e = Assert.Single(opened);
        Assert.False(e.IsProbeFailure);
        Assert.Equal("Ping", e.Operation);
        Assert.IsType<RedisTimeoutException>(e.Error);
    }

    [Fact]
    public void Suspected_AProbeThatFoundNoConnection_OpensTheWindow_AndLeavesTheConnectionBeingMade()
    {
        // The connection being made keeps trying in the background; its success is what starts the next check early.
        _h.Connection.Probe = static () => Task.FromException(Connection.RedisConnectPendingException.WaitedOutFor(Harness.OperationTimeout));

        Outages.RecordFailure(CacheOperation.Get, Reset(), Suspicion(Deployment));

        Assert.True(_h.Controller.IsOutage);
        Assert.Equal(0, _h.Connection.Resets);
        Assert.Equal(1, _h.CountLogs(Log.IdWindowOpened));
    }

    [Fact]
    public void WindowElapsed_AFailedProbe_ReopensItForAFullWindow()
    {
        var opened = new List<CacheWindowOpenedEventArgs>();
        _h.Availability.WindowOpened += (_, e) => opened.Add(e);
        Outages.RecordFailure(CacheOperation.Get, Timeout(), Outage(Deployment));
        _h.Connection.Probe = static () => Task.FromException(Timeout());
        _h.Time.Advance(_h.Availability.Window);
        Assert.Equal(WindowController.Gate.StartProbe, _h.Controller.TryEnter());

        Outages.StartProbe(Deployment);

        Assert.Equal(1, _h.Connection.Probes);
        Assert.Equal(_h.Availability.Window, _h.Availability.RetryAfter);
        Assert.Equal(1, _h.CountLogs(Log.IdProbeFailed));
        Assert.Equal([false, true], opened.Select(e => e.IsProbeFailure));
        Assert.Equal(1, _h.Availability.Outages);
    }

    [Fact]
    public void WindowElapsed_ASuccessfulProbe_EndsTheOutage()
    {
        var changed = new List<bool>();
        _h.Availability.Changed += changed.Add;
        Outages.RecordFailure(CacheOperation.Get, Timeout(), Outage(Deployment));
        _h.Time.Advance(_h.Availability.Window);

        Outages.StartProbe(Deployment);

        Assert.True(_h.Availability.IsAvailable);
        Assert.Equal(1, _h.CountLogs(Log.IdWindowClosed));
        Assert.Equal(0, _h.CountLogs(Log.IdBlipRecovered));
        Assert.Equal([false, true], changed);
    }

    [Fact]
    public void FailureWhileOut_ChangesNothing_ButADebugLine()
    {
        Outages.RecordFailure(CacheOperation.Get, Timeout(), Outage(Deployment));
        var resets = _h.Connection.Resets;

        Outages.RecordFailure(CacheOperation.Set, Timeout(), new FailureVerdict(RedisFailureKind.Transport, Deployment, IsOutage: true, MayReset: true));

        Assert.Equal(resets, _h.Connection.Resets);
        Assert.Equal(1, _h.CountLogs(Log.IdWindowOpened));
        Assert.Equal(1, _h.CountLogs(Log.IdErrorWhileUnavailable));
        Assert.Equal(0, _h.Connection.Probes);
    }

    [Fact]
    public void Replay_RunsBeforeTheWindowCloses()
    {
        var redis = new FakeRedisDatabase();
        var availableDuringReplay = new List<bool>();
        redis.Reply = (_, keys) =>
        {
            availableDuringReplay.Add(_h.Availability.IsAvailable);
            return Task.FromResult(RedisResult.Create(keys.Length));
        };
        _h.Connection.Database = redis.Database;
        Outages.RecordFailure(CacheOperation.Get, Timeout(), Outage(Deployment));
        _h.Pending.Record(KeyKind.CacheKey, "written-during-the-outage");
        _h.Time.Advance(_h.Availability.Window);

        Outages.StartProbe(Deployment);

        Assert.Equal([false], availableDuringReplay);
        Assert.Equal(["app:written-during-the-outage"], Assert.Single(redis.Commands).Keys);
        Assert.True(_h.Availability.IsAvailable);
        Assert.Equal(0, _h.Pending.Count);
        Assert.Equal(1, _h.CountLogs(Log.IdInvalidationsApplied));
    }

    [Fact]
    public void ReplayFailing_IsAFailedProbe_AndTheRecordsStay()
    {
        var redis = new FakeRedisDatabase { Reply = static (_, _) => Task.FromException<RedisResult>(Timeout()) };
        _h.Connection.Database = redis.Database;
        Outages.RecordFailure(CacheOperation.Get, Timeout(), Outage(Deployment));
        _h.Pending.Record(KeyKind.CacheKey, "k");
        _h.Time.Advance(_h.Availability.Window);

        Outages.StartProbe(Deployment);

        Assert.False(_h.Availability.IsAvailable);
        Assert.Equal(_h.Availability.Window, _h.Availability.RetryAfter);
        Assert.Equal(1, _h.CountLogs(Log.IdProbeFailed));
        Assert.True(_h.Pending.Contains(KeyKind.CacheKey, "k"));
    }

    [Fact]
    public void TopologyChanged_ProbesAnOpenWindowEarly()
    {
        Outages.RecordFailure(CacheOperation.Get, Timeout(), Outage(Deployment));
        _h.Time.Advance(TimeSpan.FromSeconds(10));

        Outages.OnTopologyChanged(SingleServer());

        Assert.Equal(1, _h.Connection.Probes);
        Assert.True(_h.Availability.IsAvailable);
        Assert.Equal(1, _h.CountLogs(Log.IdWindowClosed));
    }

    [Fact]
    public void TopologyChanged_AnEarlyProbesFailure_KeepsTheWindowsEnd()
    {
        var opened = 0;
        _h.Availability.WindowOpened += (_, _) => opened++;
        Outages.RecordFailure(CacheOperation.Get, Timeout(), Outage(Deployment));
        var resets = _h.Connection.Resets;
        _h.Connection.Probe = static () => Task.FromException(Reset());
        _h.Time.Advance(TimeSpan.FromSeconds(10));

        Outages.OnTopologyChanged(SingleServer());

        Assert.Equal(1, _h.Connection.Probes);
        Assert.Equal(TimeSpan.FromSeconds(20), _h.Availability.RetryAfter);
        Assert.Equal(0, _h.CountLogs(Log.IdProbeFailed));
        Assert.Equal(1, opened);
        Assert.Equal(resets, _h.Connection.Resets);

        // The permit is free again: the next change probes again.
        Outages.OnTopologyChanged(SingleServer());
        Assert.Equal(2, _h.Connection.Probes);
    }

    [Fact]
    public void TopologyChanged_LeavesRedisInUse_AndASuspicionUnderCheck_Alone()
    {
        Outages.OnTopologyChanged(SingleServer());
        Assert.Equal(0, _h.Connection.Probes);

        var probe = new TaskCompletionSource();
        _h.Connection.Probe = () => probe.Task;
        Outages.RecordFailure(CacheOperation.Get, Reset(), Suspicion(Deployment));
        Outages.OnTopologyChanged(SingleServer());

        Assert.Equal(1, _h.Connection.Probes);
        probe.SetResult();
    }

    [Fact]
    public void PrimaryConnectionLost_OfASingleServer_DoesNothing()
    {
        Outages.OnPrimaryConnectionLost(SingleServer(), new DnsEndPoint("redis", 6379), Reset());

        Assert.True(_h.Availability.IsAvailable);
        Assert.Equal(0, _h.Connection.Probes);
        Assert.Equal(0, _h.Connection.Resets);
        Assert.Empty(_h.Logger.Collector.GetSnapshot());
    }

    [Fact]
    public async Task PrimaryConnectionLost_WithReplicas_IsCheckedAtOnce_WithoutAReset()
    {
        var probe = new TaskCompletionSource();
        _h.Connection.Probe = () => probe.Task;
        var multiplexer = Servers(2, replicaAt: 1);
        _h.Core.Shards.Refresh(multiplexer);

        Outages.OnPrimaryConnectionLost(multiplexer, new DnsEndPoint("redis", 6379), Reset());

        Assert.False(_h.Availability.IsAvailable);
        Assert.False(_h.Controller.IsOutage);
        Assert.Equal(1, _h.Connection.Probes);
        Assert.Equal(0, _h.Connection.Resets);

        probe.SetResult();
        await Harness.UntilAsync(() => _h.Availability.IsAvailable);
        Assert.Equal(1, _h.CountLogs(Log.IdBlipRecovered));
    }

    [Fact]
    public void PrimaryConnectionLost_InACluster_ChecksThatPrimarysShardOnly()
    {
        var probe = new TaskCompletionSource();
        _h.Connection.Probe = () => probe.Task;
        var multiplexer = Servers(3);
        _h.Core.Shards.Refresh(multiplexer);
        _h.Core.Shards.Apply(
        [
            new("10.0.0.1:6379", [new SlotRange(0, 5460)], HasReplica: true),
            new("10.0.0.2:6379", [new SlotRange(5461, 10922)], HasReplica: true),
            new("10.0.0.3:6379", [new SlotRange(10923, 16383)], HasReplica: true),
        ]);
        var lost = _h.Core.Shards.Shards[1];

        Outages.OnPrimaryConnectionLost(multiplexer, new IPEndPoint(IPAddress.Parse("10.0.0.2"), 6379), Reset());
        Outages.OnPrimaryConnectionLost(multiplexer, new DnsEndPoint("10.0.0.9", 6379), Reset());

        Assert.True(_h.Controller.IsAvailable);
        Assert.Equal([true, false, true], _h.Core.Shards.Shards.Select(s => s.Controller.IsAvailable));
        Assert.Equal(1, _h.Connection.Probes);
        Assert.Equal((RedisKey)lost.ProbeKey, _h.Connection.ProbeKey);
        Assert.Equal(0, _h.Connection.Resets);
        probe.SetResult();
    }

    [Fact]
    public async Task ReadOnlyReply_IsCheckedAtOnce_AndABlipWhenTheProbeSucceeds()
    {
        // A READONLY reply is what a primary answers in the instant a failover demotes it: a suspicion, not an outage.
        using var h = new Harness();
        h.Connection.Probe = static () => Task.CompletedTask;
        h.Inner.Error = static () => new RedisServerException(RedisErrorKind.ReadOnly, CommandFlags.None, "READONLY You can't write against a read only replica.");
        h.Inner.Fault = Fault.ThrowsSynchronously;

        Assert.Null(h.Cache.Get("k"));

        await Harness.UntilAsync(() => h.Availability.IsAvailable);
        Assert.Equal(1, h.Connection.Probes);
        Assert.Equal(0, h.CountLogs(Log.IdWindowOpened));
        Assert.Equal(1, h.CountLogs(Log.IdBlipRecovered));
        Assert.Equal(0, h.Availability.Outages);
    }

    [Fact]
    public async Task RedirectNotFollowed_IsSwallowed_AndABlipWhenTheProbeSucceeds()
    {
        // Two nodes naming each other in the instant of a failover: the client follows one redirect, then gives up.
        using var h = new Harness();
        h.Connection.Probe = static () => Task.CompletedTask;
        h.Inner.Error = static () => new RedisServerException(
            RedisErrorKind.Moved, CommandFlags.None, "Key has MOVED to Endpoint 127.0.0.1:7000 and hashslot 12079 but CommandFlags.NoRedirect was specified - redirect not followed for HMGET app:k.");
        h.Inner.Fault = Fault.ThrowsSynchronously;

        Assert.Null(h.Cache.Get("k"));

        await Harness.UntilAsync(() => h.Availability.IsAvailable);
        Assert.Equal(0, h.CountLogs(Log.IdWindowOpened));
        Assert.Equal(1, h.CountLogs(Log.IdBlipRecovered));
        Assert.Equal(0, h.Availability.Outages);
    }

    public void Dispose() => _h.Dispose();

    private static FailureVerdict Outage(Shard shard) => new(RedisFailureKind.Transport, shard, IsOutage: true, MayReset: false);

    private static FailureVerdict Suspicion(Shard shard) => new(RedisFailureKind.Transport, shard, IsOutage: false, MayReset: false);

    private static RedisTimeoutException Timeout() => new(CommandFlags.None, "injected", CommandStatus.Sent);

    private static RedisConnectionException Reset() => new(ConnectionFailureType.SocketFailure, CommandFlags.None, "injected reset", null, CommandStatus.Sent);

    private static IConnectionMultiplexer SingleServer() => Servers(1);

    /// <summary>A multiplexer whose client sees <paramref name="count"/> servers (none of them a cluster node).</summary>
    private static IConnectionMultiplexer Servers(int count, int replicaAt = -1)
    {
        var multiplexer = new Mock<IConnectionMultiplexer>();
        multiplexer.Setup(m => m.GetServers()).Returns([.. Enumerable.Range(0, count).Select(i =>
        {
            var server = new Mock<IServer>();
            server.SetupGet(s => s.IsReplica).Returns(i == replicaAt);
            return server.Object;
        })]);
        return multiplexer.Object;
    }
}

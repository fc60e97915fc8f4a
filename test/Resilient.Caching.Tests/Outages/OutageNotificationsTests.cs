using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Outages;
using Resilient.Caching.Recovery;
using Resilient.Caching.Topology;
using StackExchange.Redis;

namespace Resilient.Caching.Tests.Outages;

/// <summary>
/// The one channel an outage is told through: for each transition, the log line (which one, at which level), the
/// transitions counted, the public events and the internal availability signal — the deployment's window and a
/// cluster shard's apart.
/// </summary>
public sealed class OutageNotificationsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly Harness _h;
    private readonly MetricCollector<long> _transitions;
    private readonly List<CacheWindowOpenedEventArgs> _opened = [];
    private readonly List<CacheWindowClosedEventArgs> _closed = [];
    private readonly List<bool> _changed = [];

    public OutageNotificationsTests()
    {
        var meterFactory = _services.GetRequiredService<IMeterFactory>();
        _h = new Harness(meterFactory: meterFactory);
        _transitions = new MetricCollector<long>(meterFactory, ResilientCacheMetrics.MeterName, ResilientCacheMetrics.TransitionsName);
        _h.Availability.WindowOpened += (_, e) => _opened.Add(e);
        _h.Availability.WindowClosed += (_, e) => _closed.Add(e);
        _h.Availability.Changed += _changed.Add;
    }

    private Shard Deployment => _h.Core.Shards.Deployment;

    [Fact]
    public void DeploymentWindowOpened_IsLogged_Raised_AndCounted()
    {
        Notify(logExceptions: true).Opened(Deployment, CacheOperation.Get, Timeout(), RedisFailureKind.Transport, WindowController.Transition.Opened);

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdWindowOpened, record.Id.Id);
        Assert.Equal("WindowOpened", record.Id.Name);
        Assert.Equal(LogLevel.Warning, record.Level);
        Assert.Contains("Get failed", record.Message, StringComparison.Ordinal);
        Assert.Contains("30 s", record.Message, StringComparison.Ordinal);
        Assert.IsType<RedisTimeoutException>(record.Exception);

        var opened = Assert.Single(_opened);
        Assert.False(opened.IsProbeFailure);
        Assert.False(opened.IsAuthenticationFailure);
        Assert.Null(opened.ServerAddress);
        Assert.Equal("Get", opened.Operation);
        Assert.Equal([false], _changed);
        Assert.Equal([("opened", (string?)null)], Transitions());
    }

    [Fact]
    public void DeploymentWindowReopened_IsAProbeFailure_AndNoNewChange()
    {
        Notify(logExceptions: true).Opened(Deployment, CacheOperation.Probe, Timeout(), RedisFailureKind.Transport, WindowController.Transition.Reopened);

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdProbeFailed, record.Id.Id);
        Assert.Equal("ProbeFailed", record.Id.Name);
        Assert.Equal(LogLevel.Warning, record.Level);
        var opened = Assert.Single(_opened);
        Assert.True(opened.IsProbeFailure);
        Assert.Equal("Ping", opened.Operation);
        Assert.Empty(_changed);
        Assert.Equal([("reopened", (string?)null)], Transitions());
    }

    [Fact]
    public void ShardWindowOpened_NamesTheShard_AndIsNoChangeOfTheDeployment()
    {
        var shard = UseCluster();

        Notify(logExceptions: true).Opened(shard, CacheOperation.Set, Timeout(), RedisFailureKind.Transport, WindowController.Transition.Opened);

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdWindowOpened, record.Id.Id);
        Assert.Equal("ShardWindowOpened", record.Id.Name);
        Assert.Contains("10.0.0.1:6379", record.Message, StringComparison.Ordinal);
        Assert.Contains("slots 0-5460", record.Message, StringComparison.Ordinal);
        Assert.Equal("10.0.0.1:6379", Assert.Single(_opened).ServerAddress);
        Assert.Empty(_changed);
        Assert.Equal([("opened", "10.0.0.1:6379")], Transitions());
    }

    [Fact]
    public void ShardWindowReopened_IsTheShardsProbeFailure()
    {
        var shard = UseCluster();

        Notify(logExceptions: true).Opened(shard, CacheOperation.Probe, Timeout(), RedisFailureKind.Transport, WindowController.Transition.Reopened);

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdProbeFailed, record.Id.Id);
        Assert.Equal("ShardProbeFailed", record.Id.Name);
        Assert.Contains("10.0.0.1:6379", record.Message, StringComparison.Ordinal);
        Assert.True(Assert.Single(_opened).IsProbeFailure);
        Assert.Empty(_changed);
        Assert.Equal([("reopened", "10.0.0.1:6379")], Transitions());
    }

    [Fact]
    public void RefusedCredentials_AreAnError_OfTheWholeDeployment()
    {
        Notify(logExceptions: true).Opened(Deployment, CacheOperation.Get, NoAuth(), RedisFailureKind.Authentication, WindowController.Transition.Opened);

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdAuthenticationFailed, record.Id.Id);
        Assert.Equal(LogLevel.Error, record.Level);
        var opened = Assert.Single(_opened);
        Assert.True(opened.IsAuthenticationFailure);
        Assert.Null(opened.ServerAddress);
        Assert.Equal([false], _changed);
    }

    [Fact]
    public void RefusedCredentials_OnAShardsWindow_AreReportedAsSuch()
    {
        var shard = UseCluster();

        Notify(logExceptions: true).Opened(shard, CacheOperation.Get, NoAuth(), RedisFailureKind.Authentication, WindowController.Transition.Opened);

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdAuthenticationFailed, record.Id.Id);
        Assert.Equal(LogLevel.Error, record.Level);
        // The judge puts refused credentials on the deployment's window (FailureJudgeTests); told of a shard's, the
        // notifications say which.
        var opened = Assert.Single(_opened);
        Assert.True(opened.IsAuthenticationFailure);
        Assert.Equal("10.0.0.1:6379", opened.ServerAddress);
        Assert.Equal([("opened", "10.0.0.1:6379")], Transitions());
    }

    [Fact]
    public void RefusedCredentials_SeenByAShard_TellTheAvailabilityListenersNothing_OrBothEnds()
    {
        // Changed says the deployment became unavailable (false) and available again (true). A shard's window that
        // closes never says true, so its opening must not say false either; or, if refused credentials make it the
        // deployment's, its closing must say true. Otherwise a listener waits for ever.
        var shard = UseCluster();
        var notify = Notify(logExceptions: true);

        notify.Opened(shard, CacheOperation.Get, NoAuth(), RedisFailureKind.Authentication, WindowController.Transition.Opened);
        notify.Closed(shard, new WindowController.ClosedWindow(TimeSpan.FromSeconds(30), 4, WasOutage: true));

        Assert.True(_changed is [] or [false, true], $"Changed raised [{string.Join(", ", _changed)}]");
    }

    [Fact]
    public void BlipClosed_IsLoggedAtDebug_AndNothingElse()
    {
        Notify(logExceptions: true).Closed(Deployment, new WindowController.ClosedWindow(TimeSpan.FromMilliseconds(40), 3, WasOutage: false));

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdBlipRecovered, record.Id.Id);
        Assert.Equal(LogLevel.Debug, record.Level);
        Assert.Contains("40 ms", record.Message, StringComparison.Ordinal);
        Assert.Empty(_closed);
        Assert.Empty(_changed);
        Assert.Empty(Transitions());
    }

    [Fact]
    public void OutageClosed_IsLogged_Raised_AndCounted()
    {
        Notify(logExceptions: true).Closed(Deployment, new WindowController.ClosedWindow(TimeSpan.FromSeconds(61), 12, WasOutage: true));

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdWindowClosed, record.Id.Id);
        Assert.Equal("WindowClosed", record.Id.Name);
        Assert.Equal(LogLevel.Information, record.Level);
        var closed = Assert.Single(_closed);
        Assert.Equal(TimeSpan.FromSeconds(61), closed.OutageDuration);
        Assert.Equal(12, closed.SkippedOperations);
        Assert.Null(closed.ServerAddress);
        Assert.Equal([true], _changed);
        Assert.Equal([("closed", (string?)null)], Transitions());
    }

    [Fact]
    public void ShardOutageClosed_NamesTheShard_AndIsNoChangeOfTheDeployment()
    {
        var shard = UseCluster();

        Notify(logExceptions: true).Closed(shard, new WindowController.ClosedWindow(TimeSpan.FromSeconds(30), 1, WasOutage: true));

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdWindowClosed, record.Id.Id);
        Assert.Equal("ShardWindowClosed", record.Id.Name);
        Assert.Contains("10.0.0.1:6379", record.Message, StringComparison.Ordinal);
        Assert.Equal("10.0.0.1:6379", Assert.Single(_closed).ServerAddress);
        Assert.Empty(_changed);
        Assert.Equal([("closed", "10.0.0.1:6379")], Transitions());
    }

    [Fact]
    public void EventHandlers_FindTheLogLineWritten_AndTheTransitionCounted()
    {
        var seen = (Logged: false, Counted: false);
        _h.Availability.WindowOpened += (_, _) => seen = (_h.CountLogs(Log.IdWindowOpened) == 1, _transitions.GetMeasurementSnapshot().Count == 1);

        Notify(logExceptions: true).Opened(Deployment, CacheOperation.Get, Timeout(), RedisFailureKind.Transport, WindowController.Transition.Opened);

        Assert.Equal((true, true), seen);
    }

    [Fact]
    public void WithoutLogIgnoredExceptions_LinesCarryNoException_AndDebugDetailIsOff()
    {
        var notify = Notify(logExceptions: false);

        notify.Suspected(Deployment, CacheOperation.Get, Reset());
        notify.FailedWhileOut("Get", Timeout());
        notify.Opened(Deployment, CacheOperation.Get, Timeout(), RedisFailureKind.Transport, WindowController.Transition.Opened);

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdWindowOpened, record.Id.Id);
        Assert.Null(record.Exception);
        Assert.Contains("RedisTimeoutException", record.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WithLogIgnoredExceptions_SuspicionsAndErrorsWhileOut_AreDebugLines()
    {
        var shard = UseCluster();
        var notify = Notify(logExceptions: true);

        notify.Suspected(shard, CacheOperation.Get, Reset());
        notify.FailedWhileOut("replica read", Timeout());

        var records = Records();
        Assert.Equal([Log.IdFailureSuspected, Log.IdErrorWhileUnavailable], records.Select(r => r.Id.Id));
        Assert.All(records, r => Assert.Equal(LogLevel.Debug, r.Level));
        Assert.IsType<RedisConnectionException>(records[0].Exception);
        Assert.Contains("on shard 10.0.0.1:6379", records[0].Message, StringComparison.Ordinal);
        Assert.Contains("replica read", records[1].Message, StringComparison.Ordinal);
        Assert.Empty(_opened);
        Assert.Empty(_changed);
        Assert.Empty(Transitions());
    }

    [Fact]
    public void Replayed_IsTimed_AndLoggedWhenAsked()
    {
        using var replays = new MetricCollector<double>(_services.GetRequiredService<IMeterFactory>(), ResilientCacheMetrics.MeterName, ResilientCacheMetrics.ReplayDurationName);
        var notify = Notify(logExceptions: true);
        var applied = new ReplayResult(KeysDeleted: 3, TagsEvicted: 1, KeysPurged: 0, Purged: false, Dropped: 0, Remaining: 0, Duration: TimeSpan.FromMilliseconds(250));

        notify.Replayed(applied, logged: false);
        Assert.Empty(Records());
        notify.Replayed(applied, logged: true);

        var record = Assert.Single(Records());
        Assert.Equal(Log.IdInvalidationsApplied, record.Id.Id);
        Assert.Contains("3 keys deleted, 1 tags evicted", record.Message, StringComparison.Ordinal);
        Assert.Equal([0.25, 0.25], replays.GetMeasurementSnapshot().Select(m => m.Value));
    }

    public void Dispose()
    {
        _transitions.Dispose();
        _h.Dispose();
        _services.Dispose();
    }

    private static RedisTimeoutException Timeout() => new(CommandFlags.None, "injected", CommandStatus.Sent);

    private static RedisConnectionException Reset() => new(ConnectionFailureType.SocketFailure, CommandFlags.None, "reset", null, CommandStatus.Sent);

    private static RedisServerException NoAuth() => new(RedisErrorKind.NoAuth, CommandFlags.None, "NOAUTH Authentication required.");

    private OutageNotifications Notify(bool logExceptions) => new(_h.Availability, _h.Metrics, _h.Logger, logExceptions);

    private IReadOnlyList<FakeLogRecord> Records() => _h.Logger.Collector.GetSnapshot();

    private (string Transition, string? ServerAddress)[] Transitions() =>
        [.. _transitions.GetMeasurementSnapshot().Select(m => (
            (string)m.Tags[ResilientCacheMetrics.TransitionTag]!,
            m.Tags.TryGetValue(ResilientCacheMetrics.ServerAddressTag, out var address) ? (string?)address : null))];

    /// <summary>Three primaries, as a cluster reports them; the first one's shard.</summary>
    private Shard UseCluster()
    {
        var shards = _h.Core.Shards;
        shards.Apply(
        [
            new("10.0.0.1:6379", [new SlotRange(0, 5460)], HasReplica: false),
            new("10.0.0.2:6379", [new SlotRange(5461, 10922)], HasReplica: false),
            new("10.0.0.3:6379", [new SlotRange(10923, 16383)], HasReplica: false),
        ]);
        return shards.Shards[0];
    }
}

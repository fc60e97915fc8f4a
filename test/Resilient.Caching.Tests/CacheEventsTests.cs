using System.Diagnostics;
using Resilient.Caching.Diagnostics;
using StackExchange.Redis;

namespace Resilient.Caching.Tests;

/// <summary>The public notifications of window transitions (for alerting) and the activities traces see.</summary>
public sealed class CacheEventsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AnOutage_RaisesOneOpened_ProbeFailures_AndOneClosed_WithTheReason()
    {
        using var h = new Harness();
        var opened = new List<CacheWindowOpenedEventArgs>();
        var closed = new TaskCompletionSource<CacheWindowClosedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        h.Availability.WindowOpened += (sender, e) =>
        {
            Assert.Same(h.Availability, sender);
            lock (opened)
            {
                opened.Add(e);
            }
        };
        h.Availability.WindowClosed += (_, e) => closed.TrySetResult(e);

        h.Inner.Fault = Fault.ThrowsSynchronously;
        Assert.Null(h.Cache.Get("k"));
        Assert.Null(h.Cache.Get("k"));
        h.Cache.Set("k", [1], new());

        // One notification for the outage, whatever the number of calls that fail or skip.
        var first = Assert.Single(opened);
        Assert.Equal(CacheAvailability.DefaultName, first.CacheName);
        Assert.False(first.IsProbeFailure);
        Assert.False(first.IsAuthenticationFailure);
        Assert.Equal("Get", first.Operation);
        Assert.StartsWith("RedisTimeoutException: injected", first.Reason, StringComparison.Ordinal);
        Assert.IsType<RedisTimeoutException>(first.Error);
        Assert.Equal(h.Availability.Window, first.Window);
        Assert.Equal(h.Time.GetUtcNow(), first.Timestamp);

        // A failed probe: the outage goes on.
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("k"));
        await WaitUntil(() => { lock (opened) { return opened.Count == 2; } });
        Assert.True(opened[1].IsProbeFailure);
        Assert.Equal("Ping", opened[1].Operation);
        Assert.False(closed.Task.IsCompleted);

        // Redis is back: the probe closes the window, once.
        h.Inner.Fault = Fault.None;
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("k"));
        var end = await closed.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(CacheAvailability.DefaultName, end.CacheName);
        Assert.Equal(h.Availability.Window * 2, end.OutageDuration);
        Assert.True(end.SkippedOperations >= 2, $"skipped {end.SkippedOperations}");
        Assert.Equal(2, opened.Count);
    }

    [Fact]
    public void ABlip_RaisesNothing()
    {
        using var h = new Harness();
        var raised = 0;
        h.Availability.WindowOpened += (_, _) => raised++;
        h.Availability.WindowClosed += (_, _) => raised++;
        h.Inner.Fault = Fault.ThrowsSynchronously;
        h.Inner.Error = ChaosCache.Reset;
        h.Connection.Probe = () => Task.CompletedTask;

        // A single reset that a probe on a fresh connection dismisses.
        Assert.Null(h.Cache.Get("k"));

        Assert.True(h.Availability.IsAvailable);
        Assert.Equal(0, raised);
    }

    [Fact]
    public void AThrowingHandler_IsLogged_AndNeverReachesTheCaller()
    {
        using var h = new Harness();
        var second = false;
        h.Availability.WindowOpened += (_, _) => throw new InvalidOperationException("pager down");
        h.Availability.WindowOpened += (_, _) => second = true;
        h.Inner.Fault = Fault.ThrowsSynchronously;

        Assert.Null(h.Cache.Get("k"));

        Assert.True(second);
        var record = Assert.Single(h.Logger.Collector.GetSnapshot(), r => r.Id.Id == Log.IdEventHandlerFailed);
        Assert.IsType<InvalidOperationException>(record.Exception);
        Assert.Contains("WindowOpened", record.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheReason_NeverCarriesAPassword()
    {
        using var h = new Harness();
        CacheWindowOpenedEventArgs? raised = null;
        h.Availability.WindowOpened += (_, e) => raised = e;
        h.Inner.Fault = Fault.ThrowsSynchronously;
        h.Inner.Error = () => new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, "It was not possible to connect: redis:6379,password=hunter2secret,ssl=False", null, CommandStatus.Unknown);

        Assert.Null(h.Cache.Get("k"));
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("k"));

        Assert.NotNull(raised);
        Assert.DoesNotContain("hunter2secret", raised.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2secret", raised.Error!.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Transitions_AreActivities_TheOpeningOneUnderTheFailingRequest()
    {
        // Other tests' caches run in parallel and send to the same source: this one is told apart by its name.
        using var h = new Harness(name: $"activities-{Guid.NewGuid():N}");
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ResilientCacheActivitySource.Name,
            Sample = static (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                lock (stopped)
                {
                    stopped.Add(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        using var request = new Activity("request").Start();

        h.Inner.Fault = Fault.ThrowsSynchronously;
        Assert.Null(h.Cache.Get("k"));
        h.Inner.Fault = Fault.None;
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("k"));
        await WaitUntil(() => h.Availability.IsAvailable);
        Assert.Same(request, Activity.Current);

        Activity[] seen;
        lock (stopped)
        {
            seen = [.. stopped.Where(a => a.Tags.Any(t => t.Key == ResilientCacheActivitySource.CacheNameTag && t.Value == h.Availability.Name))];
        }

        var open = Assert.Single(seen, a => a.OperationName == ResilientCacheActivitySource.OpenedName);
        Assert.Equal(request.TraceId, open.TraceId);
        Assert.Equal(ActivityStatusCode.Error, open.Status);
        Assert.Equal("Get", open.GetTagItem(ResilientCacheActivitySource.OperationTag));
        var close = Assert.Single(seen, a => a.OperationName == ResilientCacheActivitySource.ClosedName);
        Assert.Null(close.Parent);
        Assert.NotEqual(request.TraceId, close.TraceId);
        Assert.Equal(h.Availability.Window.TotalSeconds, close.GetTagItem(ResilientCacheActivitySource.OutageTag));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 10 s");
            await Task.Delay(10, Ct);
        }
    }
}

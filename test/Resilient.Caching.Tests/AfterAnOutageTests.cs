using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging;
using Resilient.Caching.Tests.Recovery;

namespace Resilient.Caching.Tests;

/// <summary>
/// What could not certainly reach Redis is set right before Redis is used again: the guard records it, and the probe
/// applies it before the window closes. Fake time, a fake database for the replay.
/// </summary>
public sealed class AfterAnOutageTests
{
    private static readonly DistributedCacheEntryOptions Entry = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task WritesSkippedInsideTheWindow_AreDeletedByTheProbe_BeforeTheWindowCloses()
    {
        using var h = new Harness();
        var redis = new FakeRedisDatabase();
        h.Connection.Database = redis.Database;
        h.OpenWindow();

        h.Cache.Set("a", [1], Entry);
        await h.Cache.SetAsync("b", [2], Entry, Ct);
        h.Cache.Remove("c");
        await h.Cache.RemoveAsync("c", Ct);
        h.Cache.Refresh("d");
        Assert.Equal(3, h.Availability.PendingInvalidations);

        var closedWith = -1;
        h.Availability.Changed += available => closedWith = redis.Commands.Count;
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("starts-the-probe"));

        // One pipelined UNLINK of the keys as the stock cache writes them, sent before the window closed.
        var command = Assert.Single(redis.Commands);
        Assert.Equal("UNLINK", command.Command, ignoreCase: true);
        Assert.Equal(["app:a", "app:b", "app:c"], command.Keys.Order());
        Assert.Equal(1, closedWith);
        Assert.True(h.Availability.IsAvailable);
        Assert.Equal(0, h.Availability.PendingInvalidations);
        Assert.Equal(1, h.CountLogs(Log.IdInvalidationsApplied));
    }

    [Fact]
    public async Task WriteThatTimedOut_OnAStarvedPool_IsDeletedAtOnce_WithoutAWindow()
    {
        using var h = new Harness { ThreadPoolStarved = true };
        var redis = new FakeRedisDatabase();
        h.Connection.Database = redis.Database;
        Assert.Null(h.Cache.Get("answered")); // Redis answers other calls meanwhile: the timeout is the application's stall.
        h.Inner.Fault = Fault.ThrowsSynchronously;

        h.Cache.Set("stalled", [1], Entry);

        // Its outcome is unknown: the key is deleted right away, off the caller's path, and no window opens.
        await Harness.UntilAsync(() => !redis.Commands.IsEmpty);
        var command = Assert.Single(redis.Commands);
        Assert.Equal("UNLINK", command.Command, ignoreCase: true);
        Assert.Equal(["app:stalled"], command.Keys);
        Assert.True(h.Availability.IsAvailable);
        Assert.Equal(1, h.CountLogs(Log.IdApplicationStall));
        await Harness.UntilAsync(() => h.Availability.PendingInvalidations == 0);
    }

    [Fact]
    public async Task WriteThatTimedOut_OutcomeUnknown_IsDeletedToo()
    {
        using var h = new Harness();
        var redis = new FakeRedisDatabase();
        h.Connection.Database = redis.Database;
        h.Inner.Fault = Fault.FaultsAfterYielding;

        await h.Cache.SetAsync("maybe-written", [1], Entry, Ct);
        Assert.Equal(1, h.Availability.PendingInvalidations);

        h.Inner.Fault = Fault.None;
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("starts-the-probe"));
        Assert.Equal(["app:maybe-written"], Assert.Single(redis.Commands).Keys);
    }

    [Fact]
    public void FailedReplay_ReopensTheWindow_AndKeepsWhatIsLeft()
    {
        using var h = new Harness();
        var redis = new FakeRedisDatabase { Reply = (_, _) => Task.FromException<StackExchange.Redis.RedisResult>(new TimeoutException("replay lost")) };
        h.Connection.Database = redis.Database;
        h.OpenWindow();
        h.Cache.Remove("a");

        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("starts-the-probe"));

        Assert.False(h.Availability.IsAvailable);
        Assert.Equal(h.Availability.Window, h.Availability.RetryAfter);
        Assert.Equal(1, h.Availability.PendingInvalidations);
        Assert.Equal(1, h.CountLogs(Log.IdProbeFailed));
    }

    [Fact]
    public void ValueComputedFromAMadeUpMiss_DoesNotOverwriteTheRealOne()
    {
        using var h = new Harness();
        h.Cache.Set("session", [7], Entry);
        h.OpenWindow();

        // A slow request reads inside the window (a made-up miss), the window closes, then it writes what it computed.
        Assert.Null(h.Cache.Get("session"));
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("starts-the-probe"));
        Assert.True(h.Availability.IsAvailable);
        h.Cache.Set("session", [1], Entry);

        Assert.Equal([7], h.Cache.Get("session"));

        // Once the key was read for real, writes go through again.
        h.Cache.Set("session", [8], Entry);
        Assert.Equal([8], h.Cache.Get("session"));
    }

    [Fact]
    public void WithInvalidateKeysReadDuringOutage_KeysReadDuringTheOutageAreDeleted()
    {
        using var h = new Harness(invalidateKeysReadDuringOutage: true);
        var redis = new FakeRedisDatabase();
        h.Connection.Database = redis.Database;
        h.OpenWindow();

        Assert.Null(h.Cache.Get("session"));
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("starts-the-probe"));

        Assert.Contains("app:session", Assert.Single(redis.Commands).Keys);
    }

    [Fact]
    public void BeyondTheBound_TheOverflowIsLoud_OncePerOutage()
    {
        using var h = new Harness(maxPending: 3);
        h.OpenWindow();

        for (var i = 0; i < 10; i++)
        {
            h.Cache.Remove($"k{i}");
        }

        Assert.Equal(3, h.Availability.PendingInvalidations);
        Assert.Equal(7, h.Availability.DroppedInvalidations);
        var error = Assert.Single(h.Logger.Collector.GetSnapshot(), r => r.Id.Id == Log.IdInvalidationsDropped);
        Assert.Equal(LogLevel.Error, error.Level);
    }

    [Fact]
    public async Task WhileTheReplayRuns_CallersKeepShortCircuiting_AndTheirWritesAreAppliedToo()
    {
        using var h = new Harness();
        var redis = new FakeRedisDatabase();
        var firstReply = new TaskCompletionSource<StackExchange.Redis.RedisResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        redis.Reply = (call, keys) => call == 0 ? firstReply.Task : Task.FromResult(StackExchange.Redis.RedisResult.Create(keys.Length));
        h.Connection.Database = redis.Database;
        h.OpenWindow();
        h.Cache.Remove("before");
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("starts-the-probe"));

        // The replay waits for Redis: 64 callers meanwhile, half of them writing, none waits and none reaches Redis.
        var calls = h.Inner.Calls;
        var callers = Enumerable.Range(0, 64).Select(i => i % 2 == 0
            ? h.Cache.RemoveAsync($"during:{i}", Ct)
            : h.Cache.GetAsync($"read:{i}", Ct)).ToArray();
        Assert.All(callers, c => Assert.True(c.IsCompletedSuccessfully));
        Assert.Equal(calls, h.Inner.Calls);
        Assert.False(h.Availability.IsAvailable);

        firstReply.SetResult(StackExchange.Redis.RedisResult.Create(1));
        await Harness.UntilAsync(() => h.Availability.IsAvailable && h.Availability.PendingInvalidations == 0);

        // The writes made during the replay were deleted too (in a later round, or right after the window closed).
        var deleted = redis.Commands.SelectMany(c => c.Keys).ToHashSet();
        Assert.Contains("app:before", deleted);
        Assert.All(Enumerable.Range(0, 64).Where(i => i % 2 == 0), i => Assert.Contains($"app:during:{i}", deleted));
    }
}

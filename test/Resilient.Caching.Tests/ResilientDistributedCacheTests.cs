using System.Buffers;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging;
using Moq;
using StackExchange.Redis;

namespace Resilient.Caching.Tests;

public sealed class ResilientDistributedCacheTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Healthy_OperationsReachTheInnerCache()
    {
        using var h = new Harness();
        var options = new DistributedCacheEntryOptions();

        Assert.Null(await h.Cache.GetAsync("a", Ct));
        await h.Cache.SetAsync("a", "hello"u8.ToArray(), options, Ct);
        Assert.Equal("hello", Encoding.UTF8.GetString((await h.Cache.GetAsync("a", Ct))!));
        h.Cache.Set("b", new ReadOnlySequence<byte>("seq"u8.ToArray()), options);
        var writer = new ArrayBufferWriter<byte>();
        Assert.True(h.Cache.TryGet("b", writer));
        Assert.Equal("seq", Encoding.UTF8.GetString(writer.WrittenSpan));
        await h.Cache.RemoveAsync("a", Ct);
        Assert.Null(h.Cache.Get("a"));
        Assert.True(h.Availability.IsAvailable);
        Assert.Equal(0, h.Connection.Resets);
    }

    [Theory]
    [MemberData(nameof(Operations.AsyncFailures), MemberType = typeof(Operations))]
    public async Task AsyncOperation_TransportFailure_IsSwallowedAndOpensTheWindow(string operation, Fault fault)
    {
        using var h = new Harness();
        h.Inner.Fault = fault;

        await Operations.Async[operation](h.Cache, Ct);

        Assert.Equal(1, h.Inner.Calls);
        Assert.False(h.Availability.IsAvailable);
        Assert.Equal(1, h.CountLogs(Log.IdWindowOpened));
        Assert.Equal(1, h.Connection.Resets);
    }

    [Theory]
    [MemberData(nameof(Operations.SyncNames), MemberType = typeof(Operations))]
    public void SyncOperation_TransportFailure_IsSwallowedAndOpensTheWindow(string operation)
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.ThrowsSynchronously;

        Operations.Sync[operation](h.Cache);

        Assert.Equal(1, h.Inner.Calls);
        Assert.False(h.Availability.IsAvailable);
        Assert.Equal(1, h.CountLogs(Log.IdWindowOpened));
    }

    [Theory]
    [MemberData(nameof(Operations.CallerMemoryAsyncNames), MemberType = typeof(Operations))]
    public async Task AsyncBufferOperation_IsNotAbandonedWhenTheTokenFires_BecauseItHoldsTheCallersBuffers(string operation)
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.Hangs;
        using var cts = new CancellationTokenSource();

        var call = Operations.Async[operation](h.Cache, cts.Token);
        await cts.CancelAsync();

        // Returning now would let the caller recycle a buffer the inner call still reads or writes.
        Assert.False(call.IsCompleted);
        h.Inner.Release.SetResult();
        await call.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.True(h.Availability.IsAvailable);
    }

    [Theory]
    [MemberData(nameof(Operations.AbandonableAsyncNames), MemberType = typeof(Operations))]
    public async Task AsyncOperation_HangingPastTheCallersToken_ThrowsOperationCanceledPromptly(string operation)
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.Hangs;
        using var cts = new CancellationTokenSource();

        var call = Operations.Async[operation](h.Cache, cts.Token);
        Assert.False(call.IsCompleted);
        await cts.CancelAsync();

        // Generous bound: "promptly" means the caller does not wait for Redis at all.
        var completed = await Task.WhenAny(call, Task.Delay(TimeSpan.FromSeconds(10), Ct));
        Assert.Same(call, completed);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        Assert.True(h.Availability.IsAvailable);
    }

    [Fact]
    public async Task AbandonedOperation_ThatLaterFails_StillOpensTheWindow()
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.Hangs;
        h.Inner.FailAfterRelease = true;
        using var cts = new CancellationTokenSource();
        var closed = new TaskCompletionSource<bool>();
        h.Availability.Changed += available => closed.TrySetResult(available);

        var call = h.Cache.GetAsync("k", cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        h.Inner.Release.SetResult();

        Assert.False(await closed.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.False(h.Availability.IsAvailable);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Probe_RunsOffTheCallersPath_AndRedisDecides(bool redisAnswers)
    {
        using var h = new Harness();
        h.OpenWindow();
        h.Time.Advance(h.Availability.Window);
        h.Inner.Fault = Fault.Hangs;
        h.Inner.FailAfterRelease = !redisAnswers;
        var changed = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);

        // The caller that starts the probe takes its fallback at once, like everyone else.
        var first = h.Cache.GetAsync("k", Ct);
        Assert.True(first.IsCompletedSuccessfully);
        Assert.Null(await first);
        Assert.Equal(1, h.Connection.Probes);

        // Redis has not answered the probe: the others keep short-circuiting rather than pay the same wait.
        var calls = h.Inner.Calls;
        Assert.Null(await h.Cache.GetAsync("k", Ct));
        Assert.Null(h.Cache.Get("k"));
        Assert.Equal(calls, h.Inner.Calls);
        Assert.Equal(1, h.Connection.Probes);

        h.Availability.Changed += available => changed.TrySetResult(available);
        h.Inner.Release.SetResult();
        if (redisAnswers)
        {
            Assert.True(await changed.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct));
            Assert.Equal(1, h.CountLogs(Log.IdWindowClosed));
        }
        else
        {
            await Harness.UntilAsync(() => h.CountLogs(Log.IdProbeFailed) == 1);
            Assert.False(h.Availability.IsAvailable);
            Assert.Equal(h.Availability.Window, h.Availability.RetryAfter);
            Assert.Equal(2, h.Connection.Resets);
        }
    }

    [Fact]
    public async Task ProbeThatOutlivedItsPermit_FailingAfterAnotherProbeClosedTheWindow_OpensNoWindow()
    {
        using var h = new Harness();
        h.OpenWindow();
        h.Time.Advance(h.Availability.Window);
        var late = new TaskCompletionSource();
        h.Connection.Probe = () => late.Task;
        Assert.Null(await h.Cache.GetAsync("k", Ct));
        h.Time.Advance(Harness.OperationTimeout + Harness.OperationTimeout + TimeSpan.FromSeconds(1));
        h.Connection.Probe = () => Task.CompletedTask;
        Assert.Null(h.Cache.Get("k"));
        await Harness.UntilAsync(() => h.Availability.IsAvailable);
        var resets = h.Connection.Resets;

        // The first probe reports only now (its continuation runs on this thread, before SetException returns).
        late.SetException(new RedisTimeoutException(CommandFlags.None, "late", CommandStatus.Sent));

        Assert.Equal(2, h.Connection.Probes);
        Assert.True(h.Availability.IsAvailable, "a stale probe reopened the window");
        Assert.Equal(1, h.Availability.Outages);
        Assert.Equal(resets, h.Connection.Resets);
        Assert.Equal(0, h.CountLogs(Log.IdProbeFailed));
    }

    [Fact]
    public async Task ProbeThatOutlivedItsPermit_FailingWhileANewerProbeRuns_LeavesTheVerdictToTheNewerOne()
    {
        using var h = new Harness();
        h.OpenWindow();
        h.Time.Advance(h.Availability.Window);
        var first = new TaskCompletionSource();
        var second = new TaskCompletionSource();
        h.Connection.Probe = () => first.Task;
        Assert.Null(await h.Cache.GetAsync("k", Ct));
        h.Time.Advance(Harness.OperationTimeout + Harness.OperationTimeout + TimeSpan.FromSeconds(1));
        h.Connection.Probe = () => second.Task;
        Assert.Null(h.Cache.Get("k"));
        Assert.Equal(2, h.Connection.Probes);
        var resets = h.Connection.Resets;

        // The first probe fails late: no Warning, no reset of the connection the second one uses, no third probe
        // beside it, and the second one's success closes the window.
        first.SetException(new RedisTimeoutException(CommandFlags.None, "late", CommandStatus.Sent));
        Assert.Equal(0, h.CountLogs(Log.IdProbeFailed));
        Assert.Equal(resets, h.Connection.Resets);
        Assert.Null(h.Cache.Get("k"));
        Assert.Equal(2, h.Connection.Probes);

        second.SetResult();
        await Harness.UntilAsync(() => h.Availability.IsAvailable);
        Assert.Equal(1, h.Availability.Outages);
        Assert.Equal(1, h.CountLogs(Log.IdWindowClosed));
    }

    [Fact]
    public async Task ProbeThatNeverReports_LosesItsPermitWithTime()
    {
        using var h = new Harness();
        h.OpenWindow();
        h.Time.Advance(h.Availability.Window);
        var never = new TaskCompletionSource();
        h.Connection.Probe = () => never.Task;

        Assert.Null(await h.Cache.GetAsync("k", Ct));
        Assert.Equal(1, h.Connection.Probes);
        h.Time.Advance(Harness.OperationTimeout);
        Assert.Null(h.Cache.Get("k"));
        Assert.Equal(1, h.Connection.Probes);

        // Well past any probe's budget: another caller may probe.
        h.Time.Advance(Harness.OperationTimeout + TimeSpan.FromSeconds(2));
        h.Connection.Probe = () => Task.CompletedTask;
        Assert.Null(h.Cache.Get("k"));
        Assert.Equal(2, h.Connection.Probes);
        Assert.True(h.Availability.IsAvailable);
    }

    [Fact]
    public async Task Reset_OnAHealthyRedis_IsABlip_ConfirmedAtOnce_WithoutAWarning()
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.FaultsAfterYielding;
        h.Inner.Error = ChaosCache.Reset;
        var probed = new TaskCompletionSource();
        h.Connection.Probe = () =>
        {
            probed.TrySetResult();
            return Task.CompletedTask;
        };

        Assert.Null(await h.Cache.GetAsync("other", Ct));
        await probed.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        h.Inner.Fault = Fault.None;

        // No time has passed: the check ran at once, on a fresh connection, and Redis is in use again.
        await Harness.UntilAsync(() => h.CountLogs(Log.IdBlipRecovered) == 1);
        await h.Cache.SetAsync("k", [7], new DistributedCacheEntryOptions(), Ct);
        Assert.Equal([7], await h.Cache.GetAsync("k", Ct));
        Assert.True(h.Availability.IsAvailable);
        Assert.Equal(0, h.Availability.Outages);
        Assert.Equal(1, h.Connection.Resets);
        Assert.DoesNotContain(h.Logger.Collector.GetSnapshot(), r => r.Level >= LogLevel.Warning);
    }

    [Fact]
    public void Reset_ThatTheProbeConfirms_OpensTheWindow()
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.ThrowsSynchronously;
        h.Inner.Error = ChaosCache.Reset;

        // The probe meets the same dead Redis (synchronously here): the outage is confirmed.
        Assert.Null(h.Cache.Get("k"));

        Assert.False(h.Availability.IsAvailable);
        Assert.Equal(1, h.Availability.Outages);
        Assert.Equal(1, h.CountLogs(Log.IdWindowOpened));
        Assert.Equal(h.Availability.Window, h.Availability.RetryAfter);
    }

    [Fact]
    public void Timeout_WhileTheThreadPoolIsStarved_SaysNothingAboutRedis()
    {
        using var h = new Harness { ThreadPoolStarved = true };
        Assert.Null(h.Cache.Get("answered")); // Redis answers other calls meanwhile.
        h.Inner.Fault = Fault.ThrowsSynchronously;
        h.Connection.Probe = () => Task.CompletedTask;

        Assert.Null(h.Cache.Get("other"));

        // The application's own starvation is not an outage: no window, no reset, and no probe judged on a starved pool.
        // The error is still the last one (the health check shows it).
        Assert.True(h.Availability.IsAvailable);
        Assert.NotNull(h.Availability.LastError);
        Assert.Equal(0, h.Availability.Outages);
        Assert.Equal(0, h.Connection.Resets);
        Assert.Equal(0, h.Connection.Probes);
        h.Inner.Fault = Fault.None;
        h.Cache.Set("k", [1], new DistributedCacheEntryOptions());
        Assert.Equal([1], h.Cache.Get("k"));
    }

    [Fact]
    public async Task NoConnection_CallerWaitsWithinTheOperationTimeout_ThenTakesItsFallback()
    {
        using var h = new Harness();
        h.Connection.IsReady = false;

        Assert.Null(await h.Cache.GetAsync("k", Ct));
        h.Cache.Set("k", [1], new DistributedCacheEntryOptions());

        // A whole operation timeout without a connection is an outage: the window opens, the inner cache is never called.
        Assert.Equal(0, h.Inner.Calls);
        Assert.False(h.Availability.IsAvailable);
        Assert.Equal(1, h.CountLogs(Log.IdWindowOpened));
    }

    [Fact]
    public async Task InsideTheWindow_NoOperationReachesRedis_AndReadsAreMisses()
    {
        using var h = new Harness();
        await h.Cache.SetAsync("k", [1], new DistributedCacheEntryOptions(), Ct);
        h.OpenWindow();
        var calls = h.Inner.Calls;

        foreach (var operation in Operations.Sync.Values)
        {
            operation(h.Cache);
        }

        foreach (var operation in Operations.Async.Values)
        {
            var task = operation(h.Cache, Ct);
            Assert.True(task.IsCompletedSuccessfully);
            await task;
        }

        Assert.Equal(calls, h.Inner.Calls);
        Assert.Equal(12, h.Availability.SkippedOperations);
    }

    [Fact]
    public void InsideTheWindow_MockedInner_IsNeverCalled()
    {
        using var h = new Harness();
        h.OpenWindow();
        var inner = new Mock<IBufferDistributedCache>(MockBehavior.Strict);
        var cache = new ResilientDistributedCache(h.Guard, h.Connection, () => inner.Object, disposeInner: false);

        Assert.Null(cache.Get("k"));
        cache.Set("k", [1], new DistributedCacheEntryOptions());
        cache.Remove("k");

        inner.VerifyNoOtherCalls();
    }

    [Fact]
    public async Task WindowElapsed_ExactlyOneOf64ConcurrentCallersProbes_AndNoneWaits()
    {
        using var h = new Harness();
        h.OpenWindow();
        h.Time.Advance(h.Availability.Window);
        h.Inner.Fault = Fault.Hangs;
        var callsBefore = h.Inner.Calls;
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Released together onto the thread pool; half of them synchronous callers.
        var callers = Enumerable.Range(0, 64).Select(async i =>
        {
            await go.Task;
            return i % 2 == 0 ? await h.Cache.GetAsync("k", Ct) : h.Cache.Get("k");
        }).ToArray();
        go.SetResult();

        // Every caller takes its miss at once; the one probe hangs until Redis answers.
        Assert.All(await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(10), Ct), Assert.Null);
        Assert.Equal(1, h.Connection.Probes);
        Assert.Equal(callsBefore + 1, h.Inner.Calls);
        Assert.False(h.Availability.IsAvailable);

        var closed = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        h.Availability.Changed += available => closed.TrySetResult(available);
        h.Inner.Release.SetResult();
        Assert.True(await closed.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal(1, h.CountLogs(Log.IdWindowClosed));
    }

    [Fact]
    public void FailedProbe_ReopensTheWindowForAFullWindow()
    {
        using var h = new Harness();
        h.OpenWindow();
        h.Time.Advance(h.Availability.Window);
        h.Inner.Fault = Fault.ThrowsSynchronously;

        Assert.Null(h.Cache.Get("k"));
        Assert.Equal(h.Availability.Window, h.Availability.RetryAfter);
        Assert.Equal(1, h.CountLogs(Log.IdProbeFailed));

        var calls = h.Inner.Calls;
        h.Time.Advance(h.Availability.Window - TimeSpan.FromMilliseconds(1));
        Assert.Null(h.Cache.Get("k"));
        Assert.Equal(calls, h.Inner.Calls);

        // The caller that starts the next probe takes its miss; the probe (here synchronous) closes the window.
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        h.Inner.Fault = Fault.None;
        Assert.Null(h.Cache.Get("k"));
        Assert.Equal(calls + 1, h.Inner.Calls);
        Assert.True(h.Availability.IsAvailable);
    }

    [Fact]
    public void WindowClosed_LogsOutageLengthAndSkippedCount()
    {
        using var h = new Harness();
        h.OpenWindow();
        for (var i = 0; i < 5; i++)
        {
            h.Cache.Get("k");
        }

        h.Time.Advance(TimeSpan.FromSeconds(31));
        h.Cache.Get("k");

        var closed = Assert.Single(h.Logger.Collector.GetSnapshot(), r => r.Id.Id == Log.IdWindowClosed);
        Assert.Equal(LogLevel.Information, closed.Level);
        Assert.Contains("after 31 s", closed.Message, StringComparison.Ordinal);
        // The five, and the one that started the probe.
        Assert.Contains("6 cache operations", closed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CachingIsNeverDisabledForGood_EveryOutageRecovers()
    {
        using var h = new Harness();
        for (var outage = 1; outage <= 20; outage++)
        {
            h.OpenWindow();
            h.Time.Advance(h.Availability.Window);
            Assert.Null(h.Cache.Get("starts-the-probe"));
            Assert.True(h.Availability.IsAvailable);
            h.Cache.Set("k", [(byte)outage], new DistributedCacheEntryOptions());
            Assert.Equal([(byte)outage], h.Cache.Get("k")!);
            Assert.Equal(outage, h.Availability.Outages);
        }
    }

    [Fact]
    public async Task TransportFailure_ProbeRunsOnAFreshInnerCache()
    {
        using var h = new Harness();
        Assert.Equal(1, h.InnerCreated);
        h.OpenWindow();
        Assert.Equal(1, h.Connection.Resets);

        h.Time.Advance(h.Availability.Window);
        Assert.Null(await h.Cache.GetAsync("k", Ct));
        Assert.True(h.Availability.IsAvailable);
        await h.Cache.GetAsync("k", Ct);

        Assert.Equal(2, h.InnerCreated);
    }

    [Theory]
    [InlineData("LOADING Redis is loading the dataset in memory")]
    [InlineData("READONLY You can't write against a read only replica.")]
    [InlineData("OOM command not allowed when used memory > 'maxmemory'.")]
    [InlineData("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.")]
    public void ServerUnavailableReply_IsSwallowed_ButKeepsTheConnection(string reply)
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.ThrowsSynchronously;
        h.Inner.Error = () => new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, reply);

        h.Cache.Set("k", [1], new DistributedCacheEntryOptions());

        Assert.False(h.Availability.IsAvailable);
        Assert.Equal(0, h.Connection.Resets);
        Assert.Equal(1, h.CountLogs(Log.IdWindowOpened));
    }

    [Fact]
    public void AuthenticationFailure_IsSwallowed_AndLoggedAtErrorEveryWindow()
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.ThrowsSynchronously;
        h.Inner.Error = () => new RedisServerException(RedisErrorKind.NoAuth, CommandFlags.None, "NOAUTH Authentication required.");

        Assert.Null(h.Cache.Get("k"));
        h.Time.Advance(h.Availability.Window);
        Assert.Null(h.Cache.Get("k"));

        var records = h.Logger.Collector.GetSnapshot();
        Assert.Equal(2, records.Count(r => r.Id.Id == Log.IdAuthenticationFailed && r.Level == LogLevel.Error));
        Assert.DoesNotContain(records, r => r.Level == LogLevel.Warning);
    }

    [Fact]
    public async Task ManyFailuresInOneOutage_LogOneWarning()
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.Hangs;
        h.Inner.FailAfterRelease = true;

        // 50 calls are in flight when Redis fails: all of them fail, one warning is written.
        var calls = Enumerable.Range(0, 50).Select(_ => h.Cache.GetAsync("k", Ct)).ToArray();
        h.Inner.Release.SetResult();
        await Task.WhenAll(calls);

        var records = h.Logger.Collector.GetSnapshot();
        Assert.Equal(1, records.Count(r => r.Level >= LogLevel.Warning));
        Assert.Equal(49, records.Count(r => r.Id.Id == Log.IdErrorWhileUnavailable && r.Level == LogLevel.Debug));
        Assert.Equal(1, h.Connection.Resets);
    }

    [Fact]
    public void LogIgnoredExceptionsOff_StillLogsTheWindow_WithoutTheException()
    {
        using var h = new Harness(logIgnoredExceptions: false);
        h.OpenWindow();

        var opened = Assert.Single(h.Logger.Collector.GetSnapshot());
        Assert.Equal(Log.IdWindowOpened, opened.Id.Id);
        Assert.Null(opened.Exception);
    }

    [Theory]
    [MemberData(nameof(Operations.NullKeyNames), MemberType = typeof(Operations))]
    public async Task NullKey_Throws_InsideTheWindowToo(string operation)
    {
        using var h = new Harness();
        await Assert.ThrowsAsync<ArgumentNullException>(() => Operations.NullKey[operation](h.Cache));
        h.OpenWindow();
        await Assert.ThrowsAsync<ArgumentNullException>(() => Operations.NullKey[operation](h.Cache));
    }

    [Fact]
    public async Task PastAbsoluteExpiration_Throws_InsideTheWindowToo()
    {
        using var h = new Harness();
        var past = new DistributedCacheEntryOptions { AbsoluteExpiration = DateTimeOffset.UtcNow.AddSeconds(-1) };
        h.OpenWindow();

        Assert.Equal("AbsoluteExpiration", Assert.Throws<ArgumentOutOfRangeException>(() => h.Cache.Set("k", [1], past)).ParamName);
        Assert.Equal("AbsoluteExpiration", (await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => h.Cache.SetAsync("k", [1], past, Ct))).ParamName);
    }

    [Fact]
    public async Task ProgrammingErrorFromTheInnerCache_PropagatesAndLeavesTheWindowClosed()
    {
        using var h = new Harness();
        h.Inner.Fault = Fault.ReturnsFaultedTask;
        h.Inner.Error = () => new RedisServerException(RedisErrorKind.WrongType, CommandFlags.None, "WRONGTYPE Operation against a key holding the wrong kind of value");

        await Assert.ThrowsAsync<RedisServerException>(() => h.Cache.GetAsync("k", Ct));
        Assert.True(h.Availability.IsAvailable);
        Assert.Equal(0, h.CountLogs(Log.IdWindowOpened));
    }

    [Fact]
    public async Task IgnoreExceptionsOff_ErrorsPropagate_AndTheWindowThrowsCacheUnavailableAtOnce()
    {
        using var h = new Harness(ignoreExceptions: false);
        h.Inner.Fault = Fault.FaultsAfterYielding;

        await Assert.ThrowsAsync<RedisTimeoutException>(() => h.Cache.GetAsync("k", Ct));
        Assert.False(h.Availability.IsAvailable);
        var calls = h.Inner.Calls;

        var unavailable = Assert.Throws<CacheUnavailableException>(() => h.Cache.Get("k"));
        Assert.IsType<RedisTimeoutException>(unavailable.InnerException);
        Assert.Equal(h.Availability.Window, unavailable.RetryAfter);
        await Assert.ThrowsAsync<CacheUnavailableException>(() => h.Cache.SetAsync("k", [1], new DistributedCacheEntryOptions(), Ct));
        Assert.Equal(calls, h.Inner.Calls);
    }

    [Fact]
    public async Task ShortCircuitedAsyncCalls_CompleteSynchronously()
    {
        using var h = new Harness();
        h.OpenWindow();

        var get = h.Cache.GetAsync("k", Ct);
        var set = h.Cache.SetAsync("k", [1], new DistributedCacheEntryOptions(), Ct);
        var tryGet = h.Cache.TryGetAsync("k", new ArrayBufferWriter<byte>(), Ct);

        Assert.True(get.IsCompletedSuccessfully);
        Assert.True(set.IsCompletedSuccessfully);
        Assert.True(tryGet.IsCompletedSuccessfully);
        Assert.Null(await get);
        Assert.False(await tryGet);
    }
}

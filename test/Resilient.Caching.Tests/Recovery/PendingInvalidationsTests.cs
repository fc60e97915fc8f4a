using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Time.Testing;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;
using StackExchange.Redis;

namespace Resilient.Caching.Tests.Recovery;

public sealed class PendingInvalidationsTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void RecordingAKeyAgain_KeepsOneRecord_PerKind()
    {
        var pending = Create();

        Assert.Equal(RecordOutcome.Recorded, pending.Record(KeyKind.CacheKey, "a"));
        Assert.Equal(RecordOutcome.Recorded, pending.Record(KeyKind.CacheKey, "a"));
        pending.Record(KeyKind.OutputCacheEntry, "a");
        pending.Record(KeyKind.OutputCacheTag, "a");

        Assert.Equal(3, pending.Count);
        Assert.True(pending.Contains(KeyKind.CacheKey, "a"));
        Assert.False(pending.Contains(KeyKind.CacheKey, "b"));
    }

    [Fact]
    public void RecordingAnExistingKey_AllocatesNothing()
    {
        var pending = Create();
        var key = "session:" + Guid.NewGuid();
        pending.Record(KeyKind.CacheKey, key);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            pending.Record(KeyKind.CacheKey, key);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void PastCapacity_RecordsAreDropped_CountedOnce_AndTheNoticeComesBackAfterAReplay()
    {
        var pending = Create(capacity: 3);
        foreach (var key in new[] { "a", "b", "c" })
        {
            Assert.Equal(RecordOutcome.Recorded, pending.Record(KeyKind.CacheKey, key));
        }

        Assert.Equal(RecordOutcome.Recorded, pending.Record(KeyKind.CacheKey, "a")); // already there: needs no room
        Assert.Equal(RecordOutcome.OverflowStarted, pending.Record(KeyKind.CacheKey, "d"));
        Assert.Equal(RecordOutcome.Dropped, pending.Record(KeyKind.OutputCacheTag, "e"));

        Assert.Equal(3, pending.Count);
        Assert.Equal(2, pending.Overflow.Dropped);
        Assert.True(pending.Overflow.Overflowed);
        Assert.False(pending.Contains(KeyKind.CacheKey, "d"));
    }

    [Fact]
    public async Task Overflow_IsReportedOncePerOutage_AndTheReplaySaysHowManyWritesWereNotCovered()
    {
        var pending = Create(capacity: 2);
        var redis = new FakeRedisDatabase();
        pending.Record(KeyKind.CacheKey, "a");
        pending.Record(KeyKind.CacheKey, "b");
        Assert.Equal(RecordOutcome.OverflowStarted, pending.Record(KeyKind.CacheKey, "c"));
        Assert.Equal(RecordOutcome.Dropped, pending.Record(KeyKind.CacheKey, "d"));

        var result = await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct);

        Assert.Equal(2, result.Dropped);
        Assert.False(result.Purged);
        Assert.Equal(2, result.KeysDeleted);
        Assert.False(pending.Overflow.Overflowed);
        Assert.Equal(2, pending.Overflow.Dropped);

        // The next outage that overflows is reported again.
        pending.Record(KeyKind.CacheKey, "e");
        pending.Record(KeyKind.CacheKey, "f");
        Assert.Equal(RecordOutcome.OverflowStarted, pending.Record(KeyKind.CacheKey, "g"));
    }

    [Fact]
    public async Task WithNothingRecorded_TheReplaySendsNothing()
    {
        var pending = Create();
        var redis = new FakeRedisDatabase();

        var result = await pending.ReplayAsync(redis.Database, (_, _) => throw new InvalidOperationException("no tag was recorded"), cancellationToken: Ct);

        Assert.Empty(redis.Commands);
        Assert.Equal(0, result.KeysDeleted);
        Assert.Equal(TimeSpan.Zero, result.Duration);
    }

    [Fact]
    public async Task Replay_UnlinksEveryKeyUnderItsPrefix_InPipelinedBatches_AndEvictsTags()
    {
        var pending = Create(instanceName: "app:", outputInstanceName: "pages:");
        var keys = Enumerable.Range(0, 2500).Select(i => "k" + i.ToString(CultureInfo.InvariantCulture)).ToList();
        keys.ForEach(k => pending.Record(KeyKind.CacheKey, k));
        pending.Record(KeyKind.OutputCacheEntry, "/home");
        pending.Record(KeyKind.OutputCacheTag, "products");
        var evicted = new List<string>();
        var redis = new FakeRedisDatabase();

        // Replies complete later, so the replay has to send ahead to go fast.
        redis.Reply = async (_, keys) =>
        {
            await Task.Yield();
            return RedisResult.Create(keys.Length);
        };
        var result = await pending.ReplayAsync(redis.Database, (tag, _) => { evicted.Add(tag); return ValueTask.CompletedTask; }, cancellationToken: Ct);

        var commands = redis.Commands.ToList();
        Assert.All(commands, c => Assert.Equal("UNLINK", c.Command));
        Assert.All(commands, c => Assert.InRange(c.Keys.Length, 1, PendingInvalidations.BatchSize));
        Assert.Equal(4, commands.Count); // 1000 + 1000 + 500 cache keys, 1 entry
        var unlinked = commands.SelectMany(c => c.Keys).ToList();
        Assert.Equal(keys.Select(k => "app:" + k).Append("pages:__MSOCV_/home").Order(), unlinked.Order());
        Assert.Equal(["products"], evicted);
        Assert.Equal(0, pending.Count);
        Assert.Equal(2501, result.KeysDeleted);
        Assert.Equal(1, result.TagsEvicted);
        Assert.Equal(0, result.Remaining);
        Assert.Same(result, pending.LastReplay);
    }

    [Fact]
    public async Task Replay_KeepsSeveralBatchesInFlight()
    {
        var pending = Create();
        for (var i = 0; i < 10 * PendingInvalidations.BatchSize; i++)
        {
            pending.Record(KeyKind.CacheKey, i.ToString(CultureInfo.InvariantCulture));
        }

        var redis = new FakeRedisDatabase();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sentBeforeFirstReply = 0;
        redis.Reply = async (call, keys) =>
        {
            // The first reply comes only once as many commands are out as the pipeline allows: a replay that waited
            // for each reply before sending the next would never finish.
            if (call == 0)
            {
                await gate.Task;
                sentBeforeFirstReply = redis.Commands.Count;
            }

            if (call == PendingInvalidations.BatchesInFlight - 1)
            {
                gate.SetResult();
            }

            return RedisResult.Create(keys.Length);
        };

        await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);

        Assert.Equal(PendingInvalidations.BatchesInFlight, sentBeforeFirstReply);
        Assert.Equal(10, redis.Commands.Count);
        Assert.Equal(0, pending.Count);
    }

    [Fact]
    public async Task AFailedReplay_ThrowsTheRedisError_AndKeepsExactlyWhatWasNotApplied()
    {
        var pending = Create(instanceName: "app:");
        var keys = Enumerable.Range(0, 8000).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
        keys.ForEach(k => pending.Record(KeyKind.CacheKey, k));
        pending.Record(KeyKind.OutputCacheTag, "never-reached");
        var redis = new FakeRedisDatabase();
        redis.Reply = async (call, keys) =>
        {
            await Task.Yield();
            return call == 1
                ? throw new RedisConnectionException(ConnectionFailureType.SocketFailure, CommandFlags.None, "test: connection lost mid-replay", null, CommandStatus.Sent)
                : RedisResult.Create(keys.Length);
        };

        var error = await Assert.ThrowsAsync<RedisConnectionException>(() => pending.ReplayAsync(redis.Database, (_, _) => ValueTask.CompletedTask, cancellationToken: Ct));

        Assert.Contains("mid-replay", error.Message, StringComparison.Ordinal);
        var failed = redis.Commands.Single(c => c.Call == 1).Keys;
        var applied = redis.Acknowledged.ToHashSet();
        Assert.DoesNotContain(failed[0], applied);
        Assert.NotEmpty(applied);
        foreach (var key in keys)
        {
            // Applied batches are forgotten; the failed batch and the ones never sent stay.
            Assert.Equal(!applied.Contains("app:" + key), pending.Contains(KeyKind.CacheKey, key));
        }

        Assert.True(pending.Contains(KeyKind.OutputCacheTag, "never-reached"));
        Assert.Null(pending.LastReplay);

        // The next probe applies the rest.
        redis.Reply = (_, keys) => Task.FromResult(RedisResult.Create(keys.Length));
        var result = await pending.ReplayAsync(redis.Database, (_, _) => ValueTask.CompletedTask, cancellationToken: Ct);
        Assert.Equal(8000 - applied.Count, result.KeysDeleted);
        Assert.Equal(0, pending.Count);
    }

    [Fact]
    public async Task AFailedTagEviction_KeepsThatTagAndTheOnesAfterIt()
    {
        var pending = Create();
        pending.Record(KeyKind.OutputCacheTag, "a");
        pending.Record(KeyKind.OutputCacheTag, "b");
        var evicted = new List<string>();
        var calls = 0;

        await Assert.ThrowsAsync<RedisTimeoutException>(() => pending.ReplayAsync(new FakeRedisDatabase().Database, (tag, _) =>
        {
            if (calls++ == 1)
            {
                throw new RedisTimeoutException(CommandFlags.None, "test: timeout", CommandStatus.Sent);
            }

            evicted.Add(tag);
            return ValueTask.CompletedTask;
        }, cancellationToken: Ct));

        Assert.Single(evicted);
        Assert.Equal(1, pending.Count);
        Assert.False(pending.Contains(KeyKind.OutputCacheTag, evicted[0]));
    }

    [Fact]
    public async Task AKeyRecordedAgainWhileItsBatchIsOut_IsAppliedAgainByTheNextRound()
    {
        var pending = Create(instanceName: "app:");
        pending.Record(KeyKind.CacheKey, "a");
        pending.Record(KeyKind.CacheKey, "b");
        var redis = new FakeRedisDatabase();
        redis.Reply = (call, keys) =>
        {
            if (call == 0)
            {
                // Another caller's write of "a" is skipped while the first UNLINK is on its way, and "c" is new.
                pending.Record(KeyKind.CacheKey, "a");
                pending.Record(KeyKind.CacheKey, "c");
            }

            return Task.FromResult(RedisResult.Create(keys.Length));
        };

        var result = await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct);

        var commands = redis.Commands.ToList();
        Assert.Equal(2, commands.Count);
        Assert.Equal(["app:a", "app:b"], commands[0].Keys.Order());
        Assert.Equal(["app:a", "app:c"], commands[1].Keys.Order());
        Assert.Equal(0, pending.Count);
        Assert.Equal(0, result.Remaining);
    }

    [Fact]
    public async Task ARecordMadeDuringAReplayThatThenFails_IsKept()
    {
        var pending = Create();
        pending.Record(KeyKind.CacheKey, "a");
        var redis = new FakeRedisDatabase();
        redis.Reply = (call, keys) =>
        {
            pending.Record(KeyKind.CacheKey, "a");
            return call == 0
                ? Task.FromResult(RedisResult.Create(keys.Length))
                : Task.FromException<RedisResult>(new RedisConnectionException(ConnectionFailureType.SocketFailure, CommandFlags.None, "test", null, CommandStatus.Sent));
        };

        await Assert.ThrowsAsync<RedisConnectionException>(() => pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct));

        Assert.True(pending.Contains(KeyKind.CacheKey, "a"));
        Assert.Equal(1, pending.Count);
    }

    [Fact]
    public async Task RecordsKeepArriving_TheReplayStopsAfterItsRounds_AndReportsWhatRemains()
    {
        var pending = Create();
        pending.Record(KeyKind.CacheKey, "first");
        var redis = new FakeRedisDatabase();
        redis.Reply = (call, keys) =>
        {
            pending.Record(KeyKind.CacheKey, "late" + call.ToString(CultureInfo.InvariantCulture));
            return Task.FromResult(RedisResult.Create(keys.Length));
        };

        var result = await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct);

        Assert.Equal(PendingInvalidations.MaxRounds, redis.Commands.Count);
        Assert.Equal(1, result.Remaining);
        Assert.Equal(1, pending.Count);
    }

    [Fact]
    public async Task SixtyFourCallersRecording_WhileReplaysRun_LoseNoRecord()
    {
        const int callers = 64;
        const int keysPerCaller = 400;
        var pending = Create(capacity: callers * keysPerCaller);
        var clock = 0L;

        // For every key: when its latest record began, and when each UNLINK carrying it was sent.
        var recordedAt = new ConcurrentDictionary<string, long>();
        var unlinkedAt = new ConcurrentDictionary<string, ConcurrentBag<long>>();
        var redis = new FakeRedisDatabase();
        redis.Reply = async (_, keys) =>
        {
            var sentAt = Interlocked.Increment(ref clock);
            foreach (var key in keys)
            {
                unlinkedAt.GetOrAdd(key, _ => []).Add(sentAt);
            }

            await Task.Yield();
            return RedisResult.Create(keys.Length);
        };

        using var start = new Barrier(callers + 1);
        var recorders = Enumerable.Range(0, callers).Select(caller => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait(Ct);
            for (var i = 0; i < keysPerCaller; i++)
            {
                // Half the keys are shared by all callers, so records of the same key race with each other and with the replay.
                var key = i % 2 == 0 ? "shared" + i.ToString(CultureInfo.InvariantCulture) : $"own{caller}-{i}";
                recordedAt[key] = Interlocked.Increment(ref clock);
                Assert.Equal(RecordOutcome.Recorded, pending.Record(KeyKind.CacheKey, key));
            }
        }, Ct, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();

        start.SignalAndWait(Ct);
        var replays = 0;
        while (!recorders.All(r => r.IsCompleted) && replays < 10_000)
        {
            await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct);
            replays++;
        }

        await Task.WhenAll(recorders).WaitAsync(TimeSpan.FromSeconds(60), Ct);
        Assert.True(replays > 0);

        // A key no longer recorded was unlinked by a command sent after its latest record began.
        foreach (var (key, at) in recordedAt)
        {
            if (!pending.Contains(KeyKind.CacheKey, key))
            {
                Assert.True(unlinkedAt.TryGetValue(key, out var sent) && sent.Any(s => s > at), $"the record of {key} was lost");
            }
        }

        await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct);
        Assert.Equal(0, pending.Count);
        Assert.Equal(recordedAt.Keys.Order(), unlinkedAt.Keys.Order());
    }

    [Fact]
    public async Task Replay_MeasuresItsDuration_WithTheTimeProvider()
    {
        var pending = Create();
        pending.Record(KeyKind.CacheKey, "a");
        var redis = new FakeRedisDatabase();
        redis.Reply = (_, keys) =>
        {
            _time.Advance(TimeSpan.FromMilliseconds(250));
            return Task.FromResult(RedisResult.Create(keys.Length));
        };

        var result = await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct);

        Assert.Equal(TimeSpan.FromMilliseconds(250), result.Duration);
    }

    [Fact]
    public async Task UnlinkUnknown_FallsBackToDel()
    {
        var pending = Create();
        for (var i = 0; i < 3 * PendingInvalidations.BatchSize; i++)
        {
            pending.Record(KeyKind.CacheKey, i.ToString(CultureInfo.InvariantCulture));
        }

        var redis = new FakeRedisDatabase();
        redis.Reply = (call, keys) => redis.Commands.Single(c => c.Call == call).Command == "UNLINK"
            ? Task.FromException<RedisResult>(new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "ERR unknown command `UNLINK`, with args beginning with: "))
            : Task.FromResult(RedisResult.Create(keys.Length));

        var result = await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct);

        Assert.Equal(3 * PendingInvalidations.BatchSize, result.KeysDeleted);
        Assert.Equal(0, pending.Count);
        Assert.Equal(3 * PendingInvalidations.BatchSize, redis.Commands.Where(c => c.Command == "DEL").Sum(c => c.Keys.Length));
    }

    [Fact]
    public async Task OnACluster_EachCommandStaysWithinOneHashSlot()
    {
        var pending = Create(instanceName: "app:");
        var keys = Enumerable.Range(0, 3000).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
        keys.ForEach(k => pending.Record(KeyKind.CacheKey, k));
        var redis = new FakeRedisDatabase { Slot = key => key.Length + (key[^1] % 3) };

        var result = await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct);

        var commands = redis.Commands.ToList();
        Assert.All(commands, c => Assert.Single(c.Keys.Select(redis.Slot).Distinct()));
        Assert.All(commands, c => Assert.InRange(c.Keys.Length, 1, PendingInvalidations.BatchSize));
        Assert.Equal(keys.Select(k => "app:" + k).Order(), commands.SelectMany(c => c.Keys).Order());
        Assert.Equal(3000, result.KeysDeleted);
        Assert.Equal(0, pending.Count);
    }

    [Fact]
    public async Task Overflow_WithThePurge_ScansAndUnlinksThePrefixes_InsteadOfTheRecords()
    {
        var pending = Create(capacity: 2, instanceName: "app:", purge: true, outputInstanceName: "pages:");
        pending.Record(KeyKind.CacheKey, "a");
        pending.Record(KeyKind.OutputCacheTag, "t");
        pending.Record(KeyKind.CacheKey, "dropped");
        var redis = new FakeRedisDatabase();
        redis.ScanYields(("app:*", ["app:a", "app:x", "app:y"]), ("pages:__MSOC*", ["pages:__MSOCV_/", "pages:__MSOCT_t"]));
        var evicted = 0;

        var result = await pending.ReplayAsync(redis.Database, (_, _) => { evicted++; return ValueTask.CompletedTask; }, cancellationToken: Ct);

        Assert.True(result.Purged);
        Assert.Equal(5, result.KeysPurged);
        Assert.Equal(1, result.Dropped);
        Assert.Equal(0, result.KeysDeleted);
        Assert.Equal(0, evicted); // the purge took the tag sets and their entries too
        Assert.Equal(["app:a", "app:x", "app:y", "pages:__MSOCT_t", "pages:__MSOCV_/"], redis.Commands.SelectMany(c => c.Keys).Order());
        Assert.Equal(0, pending.Count);
        Assert.False(pending.Overflow.Overflowed);
    }

    [Fact]
    public async Task WithoutAnOverflow_ThePurgeDoesNotRun()
    {
        var pending = Create(instanceName: "app:", purge: true);
        pending.Record(KeyKind.CacheKey, "a");
        var redis = new FakeRedisDatabase();

        var result = await pending.ReplayAsync(redis.Database, evictTag: null, cancellationToken: Ct);

        Assert.False(result.Purged);
        Assert.Equal(["app:a"], redis.Commands.Single().Keys);
    }

    [Theory]
    [InlineData("app:", null, new[] { "app:*" })]
    [InlineData("app:", "app:pages:", new[] { "app:*" })]
    [InlineData("app:", "pages:", new[] { "app:*", "pages:__MSOC*" })]
    [InlineData("a*b?[c]\\:", "", new[] { "a\\*b\\?\\[c\\]\\\\:*", "__MSOC*" })]
    public void PurgePatterns_CoverThePrefixes_AndMatchThemLiterally(string instanceName, string? outputInstanceName, string[] expected)
    {
        var pending = Create(instanceName: instanceName, purge: true, outputInstanceName: outputInstanceName);

        Assert.Equal(expected, pending.PurgePatterns());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void ThePurge_NeedsAnInstanceName(string? instanceName)
    {
        Assert.Throws<ArgumentException>(() => Create(instanceName: instanceName, purge: true));
    }

    private PendingInvalidations Create(int capacity = 100_000, string? instanceName = null, bool purge = false, string? outputInstanceName = null) =>
        new(capacity, new StoredKeys(instanceName, outputInstanceName), purge, TimeSpan.FromMinutes(5), _time);
}

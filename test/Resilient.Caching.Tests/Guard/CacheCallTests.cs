using Resilient.Caching.Guard;

namespace Resilient.Caching.Tests.Guard;

/// <summary>
/// The helpers that carry a write through the guard's one asynchronous path: a write that completed synchronously
/// (a skip, a short-circuit) costs no allocation and hands back completed tasks; one still under way is awaited, and
/// its fault or cancellation reaches the caller.
/// </summary>
public sealed class CacheCallTests
{
    [Fact]
    public void WrittenSynchronously_IsTrueAtOnce()
    {
        Assert.Equal(true, AtOnce(CacheCall.Written(ValueTask.CompletedTask)));
        Assert.Equal(true, AtOnce(CacheCall.Written(Task.CompletedTask)));
    }

    [Fact]
    public void CompletedSynchronously_IsCompletedAtOnce_TheTaskFormTheSharedCompletedTask()
    {
        Assert.True(AtOnce(CacheCall.Completion(new ValueTask<bool>(true))));
        Assert.Same(Task.CompletedTask, CacheCall.CompletionTask(new ValueTask<bool>(true)));

        // A write the guard skipped returns its fallback (false): completed all the same.
        Assert.True(AtOnce(CacheCall.Completion(new ValueTask<bool>(false))));
        Assert.Same(Task.CompletedTask, CacheCall.CompletionTask(new ValueTask<bool>(false)));
    }

    [Fact]
    public void SynchronousPath_AllocatesNothing()
    {
        var done = Task.CompletedTask;
        var completed = Exercise(done);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            completed &= Exercise(done);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(completed);

        static bool Exercise(Task done) =>
            AtOnce(CacheCall.Completion(CacheCall.Written(ValueTask.CompletedTask)))
            && CacheCall.CompletionTask(CacheCall.Written(done)).IsCompletedSuccessfully;
    }

    [Fact]
    public async Task WrittenAsynchronously_CompletesWhenTheWriteDoes()
    {
        var write = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var written = AsTask(CacheCall.Written(new ValueTask(write.Task)));
        var fromTask = AsTask(CacheCall.Written(write.Task));
        Assert.False(written.IsCompleted);
        Assert.False(fromTask.IsCompleted);

        write.SetResult();

        Assert.True(await written);
        Assert.True(await fromTask);
    }

    [Fact]
    public async Task CompletionAsynchronously_CompletesWhenTheWriteDoes()
    {
        var write = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var completion = AsTask(CacheCall.Completion(new ValueTask<bool>(write.Task)));
        var completionTask = CacheCall.CompletionTask(new ValueTask<bool>(write.Task));
        Assert.False(completion.IsCompleted);
        Assert.False(completionTask.IsCompleted);
        Assert.NotSame(Task.CompletedTask, completionTask);

        write.SetResult(true);

        await completion;
        await completionTask;
        Assert.True(completion.IsCompletedSuccessfully);
        Assert.True(completionTask.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Faults_ReachTheCaller_AsThemselves()
    {
        var error = new InvalidOperationException("not Redis's");

        Assert.Same(error, await Assert.ThrowsAsync<InvalidOperationException>(async () => await CacheCall.Written(Task.FromException(error))));
        Assert.Same(error, await Assert.ThrowsAsync<InvalidOperationException>(async () => await CacheCall.Written(ValueTask.FromException(error))));
        Assert.Same(error, await Assert.ThrowsAsync<InvalidOperationException>(async () => await CacheCall.Completion(ValueTask.FromException<bool>(error))));
        Assert.Same(error, await Assert.ThrowsAsync<InvalidOperationException>(() => CacheCall.CompletionTask(ValueTask.FromException<bool>(error))));
    }

    [Fact]
    public async Task FaultsAfterYielding_ReachTheCaller()
    {
        var write = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var written = AsTask(CacheCall.Written(write.Task));
        var completion = CacheCall.CompletionTask(CacheCall.Written(write.Task));

        write.SetException(new IOException("broken pipe"));

        await Assert.ThrowsAsync<IOException>(() => written);
        await Assert.ThrowsAsync<IOException>(() => completion);
    }

    [Fact]
    public async Task Cancellation_ReachesTheCaller()
    {
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await CacheCall.Written(Task.FromCanceled(cts.Token)));
        var completion = CacheCall.CompletionTask(ValueTask.FromCanceled<bool>(cts.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => completion);
        Assert.True(completion.IsCanceled);
    }

    [Fact]
    public void Descriptor_ByDefault_FallsBackToNothing_AndHoldsNoCallerMemory()
    {
        var get = new CacheCall<string, byte[]?> { Operation = CacheOperation.Get, Outcome = static r => r is null ? CacheOutcome.Miss : CacheOutcome.Hit };
        var set = new CacheCall<string, bool> { Operation = CacheOperation.Set, Outcome = static _ => CacheOutcome.Write };

        Assert.Null(get.Fallback);
        Assert.False(set.Fallback);
        Assert.False(get.HoldsCallerMemory);
        Assert.Null(get.FromReplica);
    }

    /// <summary>The result of a write that completed synchronously; null when it had not.</summary>
    private static bool? AtOnce(ValueTask<bool> written) => written.IsCompletedSuccessfully ? written.Result : null;

    private static bool AtOnce(ValueTask completion) => completion.IsCompletedSuccessfully;

    private static Task<bool> AsTask(ValueTask<bool> written) => written.AsTask();

    private static Task AsTask(ValueTask completion) => completion.AsTask();
}

using Resilient.Caching.Storage;
namespace Resilient.Caching.Guard;

/// <summary>
/// What the guard needs to know about one kind of call, apart from its key and arguments: the operation, how to make
/// the inner call, how its result counts, what the caller gets when Redis is skipped, and whether a replica may answer
/// instead. One static instance per operation of a decorator, so that a call site reads as
/// <c>_guard.Run(s_get, CacheTarget.CacheKey(key), state)</c>.
/// </summary>
/// <typeparam name="TState">The arguments the inner call needs (a value tuple: nothing is captured).</typeparam>
/// <typeparam name="TResult">What the caller gets.</typeparam>
internal sealed class CacheCall<TState, TResult>
{
    /// <summary>Gets the operation, for metrics, logs and what an outage leaves behind.</summary>
    public required CacheOperation Operation { get; init; }

    /// <summary>Gets the synchronous inner call (for synchronous callers).</summary>
    public Func<TState, TResult>? Invoke { get; init; }

    /// <summary>Gets the asynchronous inner call.</summary>
    public Func<TState, CancellationToken, ValueTask<TResult>>? InvokeAsync { get; init; }

    /// <summary>Gets how a result counts in metrics (hit, miss, write).</summary>
    public required Func<TResult, CacheOutcome> Outcome { get; init; }

    /// <summary>Gets what the caller gets when Redis is skipped or fails: a miss, or nothing written.</summary>
    public TResult Fallback { get; init; } = default!;

    /// <summary>
    /// Gets a value indicating whether the call holds the caller's buffers (a <c>ReadOnlySequence</c>, an
    /// <c>IBufferWriter</c>, a <c>PipeWriter</c>): such a call is never abandoned while it may still touch them.
    /// </summary>
    public bool HoldsCallerMemory { get; init; }

    /// <summary>
    /// Gets, for a read a replica may serve while the primary is out, how the caller's result is made from the
    /// entry's bytes (null when the key is not there); null for calls a replica cannot serve.
    /// </summary>
    public Func<TState, byte[]?, TResult>? FromReplica { get; init; }
}

/// <summary>Helpers for the descriptors of write calls, which return nothing: the guard's one asynchronous path takes them as a call that returns <see langword="true"/>.</summary>
internal static class CacheCall
{
    private static readonly ValueTask<bool> s_written = new(true);

    /// <summary>A write that returns nothing, as a call that returns <see langword="true"/> once it completed; no allocation when it completed synchronously.</summary>
    public static ValueTask<bool> Written(ValueTask write) => write.IsCompletedSuccessfully ? s_written : WrittenAsync(write);

    /// <summary>The <see cref="Task"/>-returning form of <see cref="Written(ValueTask)"/>.</summary>
    public static ValueTask<bool> Written(Task write) => write.IsCompletedSuccessfully ? s_written : WrittenAsync(new ValueTask(write));

    /// <summary>A write's completion as the <see cref="ValueTask"/> an interface returns; no allocation when it completed synchronously.</summary>
    public static ValueTask Completion(ValueTask<bool> written) => written.IsCompletedSuccessfully ? ValueTask.CompletedTask : CompletionAsync(written);

    /// <summary>A write's completion as the <see cref="Task"/> an interface returns: one completed task for every write that completed synchronously (a skip, a short-circuit).</summary>
    public static Task CompletionTask(ValueTask<bool> written) => written.IsCompletedSuccessfully ? Task.CompletedTask : written.AsTask();

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask CompletionAsync(ValueTask<bool> written) => await written.ConfigureAwait(false);

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<bool> WrittenAsync(ValueTask write)
    {
        await write.ConfigureAwait(false);
        return true;
    }
}

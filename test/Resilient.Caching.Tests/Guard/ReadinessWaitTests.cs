using Microsoft.Extensions.Time.Testing;
using Resilient.Caching.Connection;
using Resilient.Caching.Guard;
using Resilient.Caching.Outages;
using StackExchange.Redis;

namespace Resilient.Caching.Tests.Guard;

/// <summary>
/// The wait for a connection when there is none: ready at once, ready with what is left of the operation timeout,
/// no connection (a Redis failure: the refused credentials when the client said so), or skip (the window opened
/// meanwhile, or too little time left); the caller's token is honoured.
/// </summary>
/// <remarks>
/// The bounds of a wait run on real time (they are about the network), so the slow connects below take real time;
/// every other step is driven by the test.
/// </remarks>
public sealed class ReadinessWaitTests : IDisposable
{
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan SlowConnect = TimeSpan.FromMilliseconds(200);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly WindowController _deployment;
    private readonly WaitingConnection _connection = new();

    public ReadinessWaitTests() => _deployment = new WindowController(_time, TimeSpan.FromSeconds(30), OperationTimeout);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ConnectionThereAtOnce_IsReady()
    {
        _connection.Wait = static _ => Task.FromResult(true);
        var wait = Create();

        Assert.Equal(new ReadinessResult(ReadinessOutcome.Ready), wait.Wait());
        Assert.Equal(new ReadinessResult(ReadinessOutcome.Ready), await wait.WaitAsync(canAbandon: true, Ct));
        Assert.Equal(new ReadinessResult(ReadinessOutcome.Ready), await wait.WaitAsync(canAbandon: false, CancellationToken.None));
        Assert.Equal(3, _connection.Waits);
        Assert.Equal(OperationTimeout, _connection.LastTimeout);
    }

    [Fact]
    public async Task SlowConnect_ForACallThatMayBeAbandoned_IsReadyWithinWhatIsLeftOfTheTimeout()
    {
        _connection.Wait = static async released =>
        {
            await Task.Delay(SlowConnect, released);
            return true;
        };

        var waited = await Create().WaitAsync(canAbandon: true, Ct);

        Assert.Equal(ReadinessOutcome.ReadyWithin, waited.Outcome);
        // What is left of the timeout after the connect (timers may fire a little early: a few milliseconds of slack).
        Assert.InRange(waited.Deadline, TimeSpan.FromSeconds(1), OperationTimeout - SlowConnect + TimeSpan.FromMilliseconds(20));
        Assert.Null(waited.Failure);
    }

    [Fact]
    public async Task SlowConnect_ForACallThatCannotBeAbandoned_IsASkip()
    {
        // A synchronous call, or one that holds the caller's buffers, would need a whole operation timeout on top of the wait.
        _connection.Wait = static async released =>
        {
            await Task.Delay(SlowConnect, released);
            return true;
        };
        var wait = Create();

        Assert.Equal(ReadinessOutcome.Skip, wait.Wait().Outcome);
        Assert.Equal(ReadinessOutcome.Skip, (await wait.WaitAsync(canAbandon: false, Ct)).Outcome);
        Assert.True(_deployment.IsAvailable);
    }

    [Fact]
    public async Task ConnectTooLateForTheBudget_IsASkip()
    {
        _connection.Wait = static async released =>
        {
            await Task.Delay(TimeSpan.FromMilliseconds(280), released);
            return true;
        };

        // Less than the grace left of a 300 ms operation timeout.
        var waited = await new ReadinessWait(_connection, _deployment, TimeSpan.FromMilliseconds(300)).WaitAsync(canAbandon: true, Ct);

        Assert.Equal(ReadinessOutcome.Skip, waited.Outcome);
    }

    [Fact]
    public async Task NoConnectionWithinTheTimeout_IsAWaitedOutConnect()
    {
        _connection.Wait = static _ => Task.FromResult(false);
        var wait = Create();

        var waited = await wait.WaitAsync(canAbandon: true, Ct);
        var synchronous = wait.Wait();

        Assert.Equal(ReadinessOutcome.NoConnection, waited.Outcome);
        var pending = Assert.IsType<RedisConnectPendingException>(waited.Failure);
        Assert.True(pending.WaitedOut);
        Assert.Contains("5000 ms", pending.Message, StringComparison.Ordinal);
        Assert.Equal(ReadinessOutcome.NoConnection, synchronous.Outcome);
        Assert.True(Assert.IsType<RedisConnectPendingException>(synchronous.Failure).WaitedOut);
    }

    [Fact]
    public async Task RefusedCredentials_AreTheFailure()
    {
        var refused = new RedisConnectionException(ConnectionFailureType.AuthenticationFailure, CommandFlags.None, "WRONGPASS invalid username-password pair", null, CommandStatus.Unknown);
        _connection.ConnectFailure = refused;
        _connection.Wait = static _ => Task.FromResult(false);
        var wait = Create();

        Assert.Same(refused, (await wait.WaitAsync(canAbandon: true, Ct)).Failure);
        Assert.Same(refused, wait.Wait().Failure);
    }

    [Fact]
    public async Task AnyOtherConnectFailure_IsAWaitedOutConnect()
    {
        _connection.ConnectFailure = new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, "refused", null, CommandStatus.Unknown);
        _connection.Wait = static _ => Task.FromResult(false);

        var waited = await Create().WaitAsync(canAbandon: true, Ct);

        Assert.Equal(ReadinessOutcome.NoConnection, waited.Outcome);
        Assert.True(Assert.IsType<RedisConnectPendingException>(waited.Failure).WaitedOut);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WindowOpeningMeanwhile_ReleasesTheWaitingCaller_WithASkip(bool callerHasAToken)
    {
        _connection.Wait = UntilReleased;
        using var caller = new CancellationTokenSource();

        var waiting = Create().WaitAsync(canAbandon: true, callerHasAToken ? caller.Token : CancellationToken.None).AsTask();
        await _connection.Waiting.Task.WaitAsync(Ct);
        Assert.False(waiting.IsCompleted);
        _deployment.RecordFailure(Timeout(), confirmed: true, fromProbe: false);

        var waited = await waiting.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(new ReadinessResult(ReadinessOutcome.Skip), waited);
    }

    [Fact]
    public async Task WindowOpeningMeanwhile_ReleasesASynchronousCaller_WithASkip()
    {
        _connection.Wait = UntilReleased;
        var wait = Create();

        var waiting = Task.Run(wait.Wait, Ct);
        await _connection.Waiting.Task.WaitAsync(Ct);
        _deployment.RecordFailure(Reset(), confirmed: false, fromProbe: false);

        Assert.Equal(ReadinessOutcome.Skip, (await waiting.WaitAsync(TimeSpan.FromSeconds(10), Ct)).Outcome);
    }

    [Fact]
    public async Task WindowAlreadyOpen_IsASkip_NotAFailure()
    {
        _deployment.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        _connection.Wait = UntilReleased;

        Assert.Equal(ReadinessOutcome.Skip, (await Create().WaitAsync(canAbandon: true, Ct)).Outcome);
    }

    [Fact]
    public async Task ReleasedByABlip_ThatClosedBeforeTheCallerResumed_IsASkip_NotAWaitedOutConnect()
    {
        // A suspected failure releases the caller; the probe dismisses it (the window closes, and the released token is
        // replaced) before the caller looks at the window again. The caller waited a few milliseconds, not an operation
        // timeout: reporting "no connection within 5000 ms" would open a full window on a Redis that just answered.
        _connection.Wait = async released =>
        {
            var outcome = await UntilReleased(released);
            Assert.NotNull(_deployment.RecordProbeSuccess());
            return outcome;
        };

        var waiting = Create().WaitAsync(canAbandon: true, CancellationToken.None).AsTask();
        await _connection.Waiting.Task.WaitAsync(Ct);
        _deployment.RecordFailure(Reset(), confirmed: false, fromProbe: false);

        var waited = await waiting.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.True(_deployment.IsAvailable);
        Assert.Equal(ReadinessOutcome.Skip, waited.Outcome);
    }

    [Fact]
    public async Task CallerCancelling_Throws_AndLeavesTheWindowAlone()
    {
        _connection.Wait = UntilReleased;
        using var caller = new CancellationTokenSource();

        var waiting = Create().WaitAsync(canAbandon: true, caller.Token).AsTask();
        await _connection.Waiting.Task.WaitAsync(Ct);
        await caller.CancelAsync();

        var thrown = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal(caller.Token, thrown.CancellationToken);
        Assert.True(_deployment.IsAvailable);
        Assert.False(_deployment.StoppedUsingRedis.IsCancellationRequested);
    }

    public void Dispose() => _deployment.Dispose();

    private static Task<bool> UntilReleased(CancellationToken released)
    {
        var outcome = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        released.Register(() => outcome.TrySetResult(false));
        return outcome.Task;
    }

    private static RedisTimeoutException Timeout() => new(CommandFlags.None, "timeout", CommandStatus.Sent);

    private static RedisConnectionException Reset() => new(ConnectionFailureType.SocketFailure, CommandFlags.None, "reset", null, CommandStatus.Sent);

    private ReadinessWait Create() => new(_connection, _deployment, OperationTimeout);

    /// <summary>A connection that is never there at once: each wait does what <see cref="Wait"/> says.</summary>
    private sealed class WaitingConnection : IRedisConnection
    {
        private int _waits;

        /// <summary>What a wait does with the token that releases it; true when a connection came.</summary>
        public Func<CancellationToken, Task<bool>> Wait { get; set; } = static _ => Task.FromResult(true);

        /// <summary>Completed when the first wait has begun.</summary>
        public TaskCompletionSource Waiting { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Waits => Volatile.Read(ref _waits);

        public TimeSpan LastTimeout { get; private set; }

        public int Generation => 0;

        public Exception? ConnectFailure { get; set; }

        public IDatabase? Database => null;

        public bool IsReady => false;

        public ValueTask<bool> WaitReadyAsync(TimeSpan timeout, CancellationToken released)
        {
            Interlocked.Increment(ref _waits);
            LastTimeout = timeout;
            var waiting = Wait(released);
            Waiting.TrySetResult();
            return new(waiting);
        }

        public bool WaitReady(TimeSpan timeout, CancellationToken released) => WaitReadyAsync(timeout, released).AsTask().GetAwaiter().GetResult();

        public Task ProbeAsync(TimeSpan budget, RedisKey key) => throw new NotSupportedException("a wait never probes");

        public void Reset(bool connectAgain = false) => throw new NotSupportedException("a wait never resets");

        public Task<bool> TakenOverAsync(TimeSpan budget, IReadOnlyList<System.Net.EndPoint> replicas) => throw new NotSupportedException("a wait never asks replicas");
    }
}

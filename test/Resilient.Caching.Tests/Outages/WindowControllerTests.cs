using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using Resilient.Caching.Outages;

namespace Resilient.Caching.Tests;

/// <summary>The window controller on its own: every state change, on fake time.</summary>
public sealed class WindowControllerTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(5);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Closed_EveryCallerProceeds()
    {
        using var controller = new WindowController(_time, Window, Budget);

        Assert.Equal(WindowController.Gate.Proceed, controller.TryEnter());
        Assert.True(controller.IsAvailable);
        Assert.Equal(TimeSpan.Zero, controller.RetryAfter);
        Assert.False(controller.StoppedUsingRedis.IsCancellationRequested);
    }

    [Fact]
    public void ConfirmedFailure_OpensForAFullWindow_ThenOneCallerGetsTheProbePermit()
    {
        using var controller = new WindowController(_time, Window, Budget);
        var released = controller.StoppedUsingRedis;

        Assert.Equal(WindowController.Transition.Opened, controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false));

        Assert.False(controller.IsAvailable);
        Assert.True(released.IsCancellationRequested);
        Assert.Equal(Window, controller.RetryAfter);
        Assert.Equal(WindowController.Gate.ShortCircuit, controller.TryEnter());
        _time.Advance(Window - TimeSpan.FromTicks(1));
        Assert.Equal(WindowController.Gate.ShortCircuit, controller.TryEnter());
        _time.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(WindowController.Gate.StartProbe, controller.TryEnter());
        Assert.Equal(WindowController.Gate.ShortCircuit, controller.TryEnter());
        Assert.Equal(1, controller.Outages);
        Assert.Equal(4, controller.SkippedOperations);
    }

    [Fact]
    public void FailuresInFlight_ExtendTheWindow_WithoutANewOutage()
    {
        using var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        _time.Advance(TimeSpan.FromSeconds(10));

        Assert.Equal(WindowController.Transition.AlreadyOpen, controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false));
        Assert.Equal(WindowController.Transition.AlreadyOpen, controller.RecordFailure(Reset(), confirmed: false, fromProbe: false));

        Assert.Equal(Window, controller.RetryAfter);
        Assert.Equal(1, controller.Outages);
    }

    [Fact]
    public async Task SuspectedFailure_HoldsThePermitAtOnce_AndABlipClosesSilently()
    {
        using var controller = new WindowController(_time, Window, Budget);

        Assert.Equal(WindowController.Transition.Suspected, controller.RecordFailure(Reset(), confirmed: false, fromProbe: false));

        // Nobody calls Redis while the check runs, and nobody else starts one: callers wait for its verdict. It is not
        // an outage (yet).
        Assert.Equal(WindowController.Gate.AwaitVerdict, controller.TryEnter());
        var verdict = controller.Verdict;
        Assert.NotNull(verdict);
        Assert.False(verdict.IsCompleted);
        Assert.False(controller.IsAvailable);
        Assert.False(controller.IsOutage);
        Assert.Equal(0, controller.Outages);

        var closed = controller.RecordProbeSuccess();
        Assert.NotNull(closed);
        Assert.False(closed.Value.WasOutage);
        Assert.True(verdict.IsCompletedSuccessfully);
        Assert.True(await verdict);
        Assert.Null(controller.Verdict);
        Assert.Equal(WindowController.Gate.Proceed, controller.TryEnter());
        Assert.False(controller.StoppedUsingRedis.IsCancellationRequested);
    }

    [Fact]
    public async Task SuspectedFailure_ThatTheProbeConfirms_IsAnOutage()
    {
        using var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Reset(), confirmed: false, fromProbe: false);
        var verdict = controller.Verdict!;

        Assert.Equal(WindowController.Transition.Opened, controller.RecordFailure(Reset(), confirmed: true, fromProbe: true));

        Assert.False(controller.IsAvailable);
        Assert.Equal(Window, controller.RetryAfter);
        Assert.Equal(1, controller.Outages);

        // Whoever waited for the verdict hears "outage", and callers skip Redis as in any window.
        Assert.True(verdict.IsCompletedSuccessfully);
        Assert.False(await verdict);
        Assert.Equal(WindowController.Gate.ShortCircuit, controller.TryEnter());
    }

    [Fact]
    public void SuspectedFailure_ConfirmedByACallInFlight_IsAnOutage()
    {
        using var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Reset(), confirmed: false, fromProbe: false);

        Assert.Equal(WindowController.Transition.Opened, controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false));
        Assert.False(controller.IsAvailable);
        Assert.Equal(1, controller.Outages);
    }

    [Fact]
    public void FailedProbe_ReopensForAFullWindow_AndTheWindowCloses_OnlyOnASuccessfulProbe()
    {
        using var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        _time.Advance(Window);
        Assert.Equal(WindowController.Gate.StartProbe, controller.TryEnter());

        Assert.Equal(WindowController.Transition.Reopened, controller.RecordFailure(Timeout(), confirmed: true, fromProbe: true));
        Assert.Equal(Window, controller.RetryAfter);
        Assert.Equal(1, controller.Outages);

        _time.Advance(Window);
        Assert.Equal(WindowController.Gate.StartProbe, controller.TryEnter());
        _time.Advance(TimeSpan.FromSeconds(1));
        var closed = controller.RecordProbeSuccess();
        Assert.Equal(TimeSpan.FromSeconds(61), closed!.Value.Outage);
        Assert.True(closed.Value.WasOutage);
        Assert.True(controller.IsAvailable);
        Assert.Null(controller.RecordProbeSuccess());
    }

    [Fact]
    public void ProbePermit_ExpiresWithTime()
    {
        using var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        _time.Advance(Window);
        Assert.Equal(WindowController.Gate.StartProbe, controller.TryEnter());

        // The probe never reports: after twice its budget and a second, another caller may probe.
        _time.Advance(Budget + Budget);
        Assert.Equal(WindowController.Gate.ShortCircuit, controller.TryEnter());
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(WindowController.Gate.StartProbe, controller.TryEnter());
    }

    [Fact]
    public void Released_IsRenewedWhenTheWindowCloses_AndFiresOnDisposal()
    {
        var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        controller.RecordProbeSuccess();
        var released = controller.StoppedUsingRedis;
        Assert.False(released.IsCancellationRequested);

        controller.Dispose();
        Assert.True(released.IsCancellationRequested);
    }

    [Fact]
    public async Task ManyCallersAtTheEndOfTheWindow_ExactlyOneGetsThePermit()
    {
        using var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        _time.Advance(Window);
        using var start = new Barrier(8);

        var gates = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            start.SignalAndWait(TestContext.Current.CancellationToken);
            return Enumerable.Range(0, 1000).Select(_ => controller.TryEnter()).ToList();
        })));

        Assert.Equal(1, gates.SelectMany(g => g).Count(g => g == WindowController.Gate.StartProbe));
    }

    [Fact]
    public void EarlyProbe_OnlyForAConfirmedOutage_OnePermitAtATime()
    {
        using var controller = new WindowController(_time, Window, Budget);
        Assert.False(controller.TryStartEarlyProbe());

        // A suspected failure's probe is already under way, holding the permit.
        Assert.Equal(WindowController.Transition.Suspected, controller.RecordFailure(Reset(), confirmed: false, fromProbe: false));
        Assert.False(controller.TryStartEarlyProbe());
        Assert.Equal(WindowController.Transition.Opened, controller.RecordFailure(Reset(), confirmed: true, fromProbe: true));

        Assert.True(controller.TryStartEarlyProbe());
        Assert.False(controller.TryStartEarlyProbe());
    }

    [Fact]
    public void EarlyProbeFailing_LeavesTheWindowsEnd_AndFreesThePermit()
    {
        using var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(controller.TryStartEarlyProbe());

        Assert.Equal(WindowController.Transition.AlreadyOpen, controller.RecordFailure(Timeout(), confirmed: true, fromProbe: true, early: true));

        Assert.Equal(TimeSpan.FromSeconds(20), controller.RetryAfter);
        Assert.True(controller.TryStartEarlyProbe());
    }

    [Fact]
    public void ProbeFailure_AfterTheWindowClosed_IsStale()
    {
        using var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        _time.Advance(Window);
        Assert.Equal(WindowController.Gate.StartProbe, controller.TryEnter());
        var permit = controller.Permit;
        Assert.NotNull(controller.RecordProbeSuccess());

        var reason = controller.LastError;
        Assert.Equal(WindowController.Transition.Stale, controller.RecordFailure(Timeout(), confirmed: true, fromProbe: true, permit: permit));
        Assert.Same(reason, controller.LastError);
        Assert.Equal(WindowController.Transition.Stale, controller.RecordFailure(Timeout(), confirmed: true, fromProbe: true, early: true, permit: permit));
        Assert.True(controller.IsAvailable);
        Assert.Equal(WindowController.Gate.Proceed, controller.TryEnter());
        Assert.Equal(1, controller.Outages);
    }

    [Fact]
    public void ProbeFailure_UnderAnOlderPermit_LeavesTheNewerProbesPermitAndTheWindowsEnd()
    {
        using var controller = new WindowController(_time, Window, Budget);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        _time.Advance(Window);
        Assert.Equal(WindowController.Gate.StartProbe, controller.TryEnter());
        var older = controller.Permit;
        _time.Advance(Budget + Budget + TimeSpan.FromSeconds(1));
        Assert.Equal(WindowController.Gate.StartProbe, controller.TryEnter());
        var newer = controller.Permit;
        Assert.NotEqual(older, newer);

        Assert.Equal(WindowController.Transition.Stale, controller.RecordFailure(Timeout(), confirmed: true, fromProbe: true, permit: older));
        Assert.Equal(WindowController.Gate.ShortCircuit, controller.TryEnter());
        Assert.Equal(TimeSpan.Zero, controller.RetryAfter);

        Assert.Equal(WindowController.Transition.Reopened, controller.RecordFailure(Timeout(), confirmed: true, fromProbe: true, permit: newer));
        Assert.Equal(Window, controller.RetryAfter);
    }

    [Fact]
    public void AvailabilityHook_ToldOncePerStop_AndOncePerRecovery()
    {
        var told = new List<bool>();
        using var controller = new WindowController(_time, Window, Budget, told.Add);

        controller.RecordFailure(Reset(), confirmed: false, fromProbe: false);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: false);
        controller.RecordFailure(Timeout(), confirmed: true, fromProbe: true);
        Assert.Equal([false], told);

        Assert.NotNull(controller.RecordProbeSuccess());
        Assert.Null(controller.RecordProbeSuccess());
        Assert.Equal([false, true], told);
    }

    private static RedisTimeoutException Timeout() => new(CommandFlags.None, "timeout", CommandStatus.Sent);

    private static RedisConnectionException Reset() => new(ConnectionFailureType.SocketFailure, CommandFlags.None, "reset", null, CommandStatus.Sent);
}

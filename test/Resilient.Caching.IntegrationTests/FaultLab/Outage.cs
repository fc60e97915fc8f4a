using System.Text;
using Microsoft.Extensions.Logging;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>A fault: how to inject it and how to heal it.</summary>
internal sealed record Fault(string Name, Func<Task> Inject, Func<Task> Heal);

/// <summary>How one outage scenario is run.</summary>
internal sealed record OutageOptions
{
    /// <summary>How long the fault lasts once the window has opened (long enough for at least one failed probe).</summary>
    public TimeSpan FaultFor { get; init; } = (Lab.Window * 2) + TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Counts the traffic's operations that reached Redis, its reads and writes (<see cref="CacheCommands.ReadsAndWritesAsync"/>);
    /// null when it cannot be read. The traffic removes nothing: the deletes sent meanwhile are the recovery's replay
    /// of what the outage left pending, sent before the window closes, and are not counted.
    /// </summary>
    public Func<Task<long>>? CountCommands { get; init; }

    /// <summary>The server is a new process after the heal (its counters start at zero), as after a kill and restart.</summary>
    public bool CountersRestartOnHeal { get; init; }

    /// <summary>Only writes (Set): for faults that only refuse writes (OOM, READONLY), where a read probe would succeed.</summary>
    public bool WritesOnly { get; init; }

    public int Workers { get; init; } = 2;
}

/// <summary>What one outage scenario measured, on the traffic's clock.</summary>
internal sealed record OutageReport(
    string Name,
    bool Async,
    int Workers,
    TimeSpan FaultAt,
    TimeSpan OpenedAt,
    TimeSpan HealAt,
    TimeSpan ClosedAt,
    TimeSpan? FirstHitAfterHeal,
    IReadOnlyList<Sample> OutageCalls,
    long Skipped,
    long? CacheCommandsDuringOutage,
    int FailedProbes,
    int WindowWarnings,
    int ReopenedByCalls,
    string Logs,
    string Timeline)
{
    public int Errors => OutageCalls.Count(s => s.Outcome == CallOutcome.Error);

    public TimeSpan MaxCall => OutageCalls.Count == 0 ? TimeSpan.Zero : OutageCalls.Max(s => s.Elapsed);

    /// <summary>Calls that waited for Redis (a short-circuited call takes microseconds).</summary>
    public int SlowCalls => OutageCalls.Count(s => s.Elapsed > Lab.SlowCall);

    /// <summary>From the heal to the successful probe that closed the window.</summary>
    public TimeSpan Recovery => ClosedAt - HealAt;

    /// <summary>Calls that may have reached for Redis during the outage: those under way when it began, and one probe per window.</summary>
    public int AllowedRedisCalls => Workers + FailedProbes + 1;

    public string Summary =>
        $"{Name} ({(Async ? "async" : "sync")}): {OutageCalls.Count} calls from fault to recovery, {Errors} errors, max {MaxCall.TotalMilliseconds:0} ms, " +
        $"{SlowCalls} waited > {Lab.SlowCall.TotalMilliseconds:0} ms, {Skipped} skipped Redis, cache reads and writes at Redis {CacheCommandsDuringOutage?.ToString() ?? "n/a"} " +
        $"(failed probes {FailedProbes}), window opened after {(OpenedAt - FaultAt).TotalMilliseconds:0} ms, " +
        (ReopenedByCalls > 0 ? $"opened again by {ReopenedByCalls} call(s) that failed after the recovery, " : string.Empty) +
        $"recovery {Recovery.TotalMilliseconds:0} ms after heal (first hit {(FirstHitAfterHeal is { } hit ? $"{(hit - HealAt).TotalMilliseconds:0} ms" : "n/a")})";

    public override string ToString() => $"{Summary}\n--- log ---\n{Logs}\n--- calls ---\n{Timeline}";
}

/// <summary>
/// The lab's common run: traffic flows, the fault is injected, the window opens, the fault lasts, it heals, the
/// window closes, the cache is used again. Server counters are read while the traffic is held (quiet), just
/// before the fault and just after the window closed, so the difference is exactly what the outage sent to Redis.
/// </summary>
internal static class Outage
{
    public static async Task<OutageReport> RunAsync(LabCache lab, bool async, Fault fault, OutageOptions? options = null)
    {
        options ??= new OutageOptions();
        await lab.WarmUpAsync();
        await using var traffic = Traffic.Start(lab.Cache, async, options.Workers, options.WritesOnly);

        // Healthy first: the cache serves hits (or writes) through Redis.
        var healthy = options.WritesOnly
            ? await Lab.EventuallyAsync(() => traffic.Samples.Count >= 10, TimeSpan.FromSeconds(10))
            : await traffic.WaitForAsync(s => s.Outcome == CallOutcome.Hit, TimeSpan.Zero, TimeSpan.FromSeconds(10)) is not null;
        Assert.True(healthy && lab.Availability.IsAvailable, $"{fault.Name}: no healthy traffic before the fault.\n{lab.DescribeLogs()}\n{traffic.Describe(TimeSpan.Zero, traffic.Now)}");

        await traffic.HoldAndDrainAsync(Lab.CallBound);
        var before = options.CountCommands is null || options.CountersRestartOnHeal ? 0 : await options.CountCommands();
        var faultAt = traffic.Now;
        var mark = lab.LogMark();
        await fault.Inject();
        traffic.Release();

        await lab.WaitForAvailabilityAsync(false, Lab.CallBound + Lab.Slack);
        var openedAt = traffic.Now;
        await Task.Delay(options.FaultFor, Lab.Ct); // The outage lasts this long: part of the scenario, not a synchronisation.

        // Hold the callers the moment the probe succeeds, so the counters read next hold nothing sent after the window.
        var closedAt = TimeSpan.Zero;
        void OnChanged(bool available)
        {
            if (available)
            {
                traffic.Hold();
                closedAt = traffic.Now;
            }
        }

        lab.Availability.Changed += OnChanged;
        var healAt = TimeSpan.Zero;
        try
        {
            Assert.False(lab.Availability.IsAvailable, $"{fault.Name}: the window closed before the fault healed.\n{lab.DescribeLogs()}");

            // The callers also hold themselves the moment they find the window closed: the notification above comes
            // after the close is logged, and calls made meanwhile (a loaded machine can take a hundred ms or more to get
            // there) would count as calls of the outage although the window was closed when they were made.
            traffic.HoldWhen(() => lab.Availability.IsAvailable);

            // Recovery is measured from the moment the heal is complete (a restarted Redis answers, the rules are gone).
            await fault.Heal();
            healAt = traffic.Now;
            try
            {
                await lab.WaitForAvailabilityAsync(true, Lab.RecoveryBound);
            }
            catch (TimeoutException)
            {
                Assert.Fail($"{fault.Name}: the cache did not use Redis again within {Lab.RecoveryBound.TotalSeconds:0.#} s of the heal.\n{lab.DescribeLogs()}\n{traffic.Describe(healAt - Lab.Window, traffic.Now)}");
            }
        }
        finally
        {
            lab.Availability.Changed -= OnChanged;
        }

        await traffic.HoldAndDrainAsync(Lab.CallBound);
        long? commands = options.CountCommands is null ? null : await options.CountCommands() - before;

        // Used again: traffic resumes against Redis, reads hit.
        traffic.HoldWhen(null);
        traffic.Release();
        var firstHit = options.WritesOnly ? null : await traffic.WaitForAsync(s => s.Outcome == CallOutcome.Hit, closedAt, TimeSpan.FromSeconds(5));
        await traffic.StopAsync();
        await lab.UsedAgainAsync(async, within: TimeSpan.Zero);

        var outageCalls = traffic.Samples.Where(s => s.At >= faultAt && s.At <= closedAt).ToList();
        return new OutageReport(
            fault.Name,
            async,
            options.Workers,
            faultAt,
            openedAt,
            healAt,
            closedAt,
            firstHit?.End,
            outageCalls,
            lab.Availability.SkippedOperations,
            commands,
            lab.LogCount(Log.IdProbeFailed, since: mark) + Math.Max(0, lab.LogCount(Log.IdAuthenticationFailed, since: mark) - 1),
            lab.LogCount(Log.IdWindowOpened, LogLevel.Warning, mark) + lab.LogCount(Log.IdProbeFailed, LogLevel.Warning, mark),
            ReopenedByCalls(lab, mark),
            lab.DescribeLogs(),
            Condense(outageCalls));
    }

    /// <summary>The outcomes every outage must have, whatever the fault.</summary>
    public static void AssertSurvived(this OutageReport report, TimeSpan? recoveryBound = null)
    {
        Lab.Report(report.ToString());
        var recovery = recoveryBound ?? ((2 * Lab.Window) + Lab.CallBound);
        Assert.True(report.Errors == 0, $"an exception reached the caller: {report}");
        Assert.True(report.MaxCall <= Lab.CallBound, $"a call took {report.MaxCall.TotalMilliseconds:0} ms (bound {Lab.CallBound.TotalMilliseconds:0} ms): {report}");
        Assert.True(report.SlowCalls <= report.AllowedRedisCalls, $"{report.SlowCalls} calls waited, only {report.AllowedRedisCalls} (under way + one probe per window) may: {report}");
        if (report.CacheCommandsDuringOutage is { } commands)
        {
            // Under way when the fault began, one probe per window, and at most one call per other caller racing the close.
            var allowed = report.AllowedRedisCalls + report.Workers - 1;
            Assert.True(commands <= allowed, $"{commands} cache reads and writes reached Redis during the outage (allowed {allowed}): {report}");
        }

        Assert.True(report.Skipped > 0, $"no call skipped Redis: {report}");
        Assert.True(report.WindowWarnings <= 1 + report.FailedProbes + report.ReopenedByCalls, $"more than one Warning per window: {report}");
        Assert.True(report.Recovery <= recovery, $"recovery took {report.Recovery.TotalMilliseconds:0} ms after the heal (bound {recovery.TotalMilliseconds:0} ms): {report}");
    }

    /// <summary>
    /// Windows opened after the recovery by a call that failed (its own Warning): on a loaded machine a call made once
    /// Redis is used again can time out, and that opens a window of its own, rightly. A window opened after the
    /// recovery by a probe (the operation is then the probe's PING) is not one of these: nothing probes a closed window.
    /// </summary>
    private static int ReopenedByCalls(LabCache lab, int mark)
    {
        var records = lab.Logs.GetSnapshot().Skip(mark).ToList();
        var closed = records.FindIndex(r => r.Id.Id == Log.IdWindowClosed);
        return closed < 0 ? 0 : records.Skip(closed + 1).Count(r =>
            r.Id.Id == Log.IdWindowOpened && r.Level == LogLevel.Warning && r.GetStructuredStateValue("Operation") is { } operation && operation != CacheOperation.Ping.Name());
    }

    /// <summary>The calls, with runs of short-circuited ones folded into one line.</summary>
    private static string Condense(IReadOnlyList<Sample> calls)
    {
        var text = new StringBuilder();
        var folded = 0;
        foreach (var call in calls)
        {
            if (call.Elapsed <= Lab.SlowCall && call.Outcome != CallOutcome.Error)
            {
                folded++;
                continue;
            }

            if (folded > 0)
            {
                text.Append("  … ").Append(folded).AppendLine(" fast calls");
                folded = 0;
            }

            text.AppendLine(call.ToString());
        }

        if (folded > 0)
        {
            text.Append("  … ").Append(folded).AppendLine(" fast calls");
        }

        return text.ToString();
    }
}

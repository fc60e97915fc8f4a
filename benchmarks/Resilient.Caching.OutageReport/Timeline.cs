namespace Resilient.Caching.OutageReport;

/// <summary>The fault timeline every provider goes through, identical for all of them.</summary>
internal sealed class Timeline
{
    private Timeline(double phaseSeconds, double totalSeconds, IReadOnlyList<Phase> phases)
    {
        PhaseSeconds = phaseSeconds;
        TotalSeconds = totalSeconds;
        Phases = phases;
    }

    public double PhaseSeconds { get; }

    public double TotalSeconds { get; }

    public IReadOnlyList<Phase> Phases { get; }

    /// <summary>One server behind the fault proxy: healthy, killed, restarted, blackholed, healed (the last phase twice as long, to see recovery).</summary>
    public static Timeline Single(double phaseSeconds) => new(phaseSeconds, 6 * phaseSeconds,
    [
        new(PhaseKind.Healthy, 0, "healthy"),
        new(PhaseKind.Killed, phaseSeconds, "Redis killed"),
        new(PhaseKind.Restarted, 2 * phaseSeconds, "Redis restarted"),
        new(PhaseKind.Blackholed, 3 * phaseSeconds, "path blackholed"),
        new(PhaseKind.Healed, 4 * phaseSeconds, "healed"),
    ]);

    /// <summary>
    /// A 3-primary cluster: healthy, one primary SIGKILLed (its replica takes over within the phase), the killed
    /// node started again (it rejoins as a replica), steady.
    /// </summary>
    public static Timeline Cluster(double phaseSeconds) => new(phaseSeconds, 4 * phaseSeconds,
    [
        new(PhaseKind.Healthy, 0, "healthy"),
        new(PhaseKind.PrimaryKilled, phaseSeconds, "primary killed"),
        new(PhaseKind.NodeRestarted, 2 * phaseSeconds, "killed node restarted"),
        new(PhaseKind.Steady, 3 * phaseSeconds, "steady"),
    ]);

    public Phase PhaseAt(double second) => Phases.Last(p => p.StartSeconds <= second);

    public double Start(PhaseKind kind) => Phases.Single(p => p.Kind == kind).StartSeconds;

    public double End(PhaseKind kind)
    {
        var index = Phases.ToList().FindIndex(p => p.Kind == kind);
        return index + 1 < Phases.Count ? Phases[index + 1].StartSeconds : TotalSeconds;
    }
}

internal enum PhaseKind
{
    Healthy,
    Killed,
    Restarted,
    Blackholed,
    Healed,
    PrimaryKilled,
    NodeRestarted,
    Steady,
}

internal sealed record Phase(PhaseKind Kind, double StartSeconds, string Name);

/// <summary>Something seen during one provider's run, at seconds since its start (a promotion, a rejoin).</summary>
internal sealed record Mark(double Seconds, string Name);

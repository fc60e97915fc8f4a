namespace Resilient.Caching.OutageReport;

/// <summary>The fault timeline every provider goes through, identical for all three.</summary>
internal sealed record Timeline(double PhaseSeconds)
{
    /// <summary>Healthy, killed, restarted, blackholed, healed (the last phase twice as long, to see recovery).</summary>
    public IReadOnlyList<Phase> Phases { get; } =
    [
        new(PhaseKind.Healthy, 0, "healthy"),
        new(PhaseKind.Killed, PhaseSeconds, "Redis killed"),
        new(PhaseKind.Restarted, 2 * PhaseSeconds, "Redis restarted"),
        new(PhaseKind.Blackholed, 3 * PhaseSeconds, "path blackholed"),
        new(PhaseKind.Healed, 4 * PhaseSeconds, "healed"),
    ];

    public double TotalSeconds => 6 * PhaseSeconds;

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
}

internal sealed record Phase(PhaseKind Kind, double StartSeconds, string Name);

namespace Resilient.Caching.OutageReport;

/// <summary>
/// One second of one provider's run: calls completed in it, errors, reads (a read that threw counts as a read that
/// did not hit), hits, and the latency of those calls.
/// </summary>
internal sealed record SecondStats(int Second, int Calls, int Errors, int Reads, int Hits, double P50, double P99, double Max)
{
    public double HitRatio => Reads == 0 ? 0 : (double)Hits / Reads;
}

/// <summary>Everything measured for one provider, and the figures derived from it.</summary>
internal sealed class ProviderResult
{
    public ProviderResult(string id, string name, string settings, List<Sample> samples, int abandoned, Timeline timeline, IReadOnlyList<Mark> marks, string? notes = null)
    {
        Id = id;
        Name = name;
        Settings = settings;
        Samples = samples;
        Abandoned = abandoned;
        Timeline = timeline;
        Marks = marks;
        Notes = notes;
        LateCalls = samples.Count(s => s.CompletedAt >= (int)timeline.TotalSeconds);
        Seconds = PerSecond(samples, timeline);
        GroupSeconds = [PerSecond([.. samples.Where(s => s.Group == 0)], timeline), PerSecond([.. samples.Where(s => s.Group == 1)], timeline)];
    }

    /// <summary>The provider as <c>--providers</c> names it.</summary>
    public string Id { get; }

    public string Name { get; }

    public string Settings { get; }

    public string? Notes { get; }

    public List<Sample> Samples { get; }

    public int Abandoned { get; }

    /// <summary>Calls that completed after the end of the timeline (blocked past it).</summary>
    public int LateCalls { get; }

    public Timeline Timeline { get; }

    public SecondStats[] Seconds { get; }

    /// <summary>Per second, the calls on the keys of each group (see <see cref="Sample.Group"/>).</summary>
    public SecondStats[][] GroupSeconds { get; }

    /// <summary>What the fault injection saw during this provider's run (promotion, rejoin).</summary>
    public IReadOnlyList<Mark> Marks { get; }

    public double? MarkAt(string name) => Marks.FirstOrDefault(m => m.Name == name)?.Seconds;

    /// <summary>Hit ratio of the reads on the keys of <paramref name="group"/> that completed in [start, end).</summary>
    public double HitRatio(double start, double end, int group)
    {
        var reads = Samples.Where(s => s.Group == group && s.IsRead && s.CompletedAt >= start && s.CompletedAt < end).ToList();
        return reads.Count == 0 ? double.NaN : (double)reads.Count(s => s.Outcome == CallOutcome.Hit) / reads.Count;
    }

    /// <summary>Mean calls per second over [start, end) (may be fractional seconds).</summary>
    public double CallsPerSecond(double start, double end) =>
        end <= start ? double.NaN : Samples.Count(s => s.CompletedAt >= start && s.CompletedAt < end) / (end - start);

    /// <summary>Errors thrown to callers in [start, end).</summary>
    public int ErrorsBetween(double start, double end) =>
        Samples.Count(s => s.IsError && s.CompletedAt >= start && s.CompletedAt < end);

    /// <summary>Latency percentile (ms) of the calls that completed in [start, end).</summary>
    public double LatencyPercentile(double start, double end, double percentile)
    {
        var latencies = Samples.Where(s => s.CompletedAt >= start && s.CompletedAt < end).Select(s => (double)s.LatencyMs).ToList();
        latencies.Sort();
        return Percentile(latencies, percentile);
    }

    /// <summary>Mean calls per second in the healthy phase, leaving out the first 2 s (JIT, thread pool growth).</summary>
    public double HealthyThroughput => MeanCalls(2, Timeline.End(PhaseKind.Healthy));

    public double HealthyHitRatio
    {
        get
        {
            var range = Range(2, Timeline.End(PhaseKind.Healthy));
            var gets = range.Sum(s => s.Reads);
            return gets == 0 ? 0 : (double)range.Sum(s => s.Hits) / gets;
        }
    }

    public double Throughput(PhaseKind phase) => MeanCalls(Timeline.Start(phase), Timeline.End(phase));

    public int Errors(PhaseKind phase) => Range(Timeline.Start(phase), Timeline.End(phase)).Sum(s => s.Errors);

    public int TotalErrors => Seconds.Sum(s => s.Errors);

    /// <summary>Latency percentile (ms) of every call that completed during a phase.</summary>
    public double LatencyPercentile(PhaseKind phase, double percentile) =>
        LatencyPercentile(Timeline.Start(phase), Timeline.End(phase), percentile);

    /// <summary>
    /// Seconds from the event that starts <paramref name="phase"/> to the end of the first whole second whose
    /// throughput is at least 90% of the healthy throughput; null when that never happens within the phase.
    /// </summary>
    public int? ThroughputRecovery(PhaseKind phase) =>
        FirstSecond(phase, s => s.Calls >= 0.9 * HealthyThroughput);

    /// <summary>As <see cref="ThroughputRecovery"/>, for the hit ratio of reads (Redis is really in use again).</summary>
    public int? CacheRecovery(PhaseKind phase) =>
        FirstSecond(phase, s => s.Reads > 0 && s.HitRatio >= 0.9 * HealthyHitRatio);

    /// <summary>
    /// Seconds from <paramref name="from"/> (an event, may be fractional) to the end of the first whole second, not
    /// before the one it falls in, whose reads on the keys of <paramref name="group"/> hit at ≥ 90% of their healthy
    /// hit ratio; null if none before <paramref name="until"/>.
    /// </summary>
    public double? CacheRecovery(double from, double until, int group)
    {
        var healthy = HitRatio(2, Timeline.End(PhaseKind.Healthy), group);
        var seconds = GroupSeconds[group];
        for (var second = (int)from; second < Math.Min(until, seconds.Length); second++)
        {
            if (seconds[second].Reads > 0 && seconds[second].HitRatio >= 0.9 * healthy)
            {
                return second + 1 - from;
            }
        }

        return null;
    }

    private int? FirstSecond(PhaseKind phase, Func<SecondStats, bool> recovered)
    {
        var start = (int)Timeline.Start(phase);
        var end = (int)Timeline.End(phase);
        for (var second = start; second < end; second++)
        {
            if (recovered(Seconds[second]))
            {
                return second - start + 1;
            }
        }

        return null;
    }

    private double MeanCalls(double start, double end)
    {
        var range = Range(start, end);
        return range.Count == 0 ? 0 : range.Average(s => s.Calls);
    }

    private List<SecondStats> Range(double start, double end) =>
        [.. Seconds.Where(s => s.Second >= start && s.Second < end)];

    private static SecondStats[] PerSecond(List<Sample> samples, Timeline timeline)
    {
        var seconds = (int)timeline.TotalSeconds;
        var buckets = new List<Sample>[seconds];
        for (var i = 0; i < seconds; i++)
        {
            buckets[i] = [];
        }

        foreach (var sample in samples.Where(s => s.CompletedAt < seconds))
        {
            buckets[(int)sample.CompletedAt].Add(sample);
        }

        return [.. buckets.Select((b, i) => Aggregate(i, b))];
    }

    private static SecondStats Aggregate(int second, List<Sample> samples)
    {
        var latencies = samples.Select(s => (double)s.LatencyMs).ToList();
        latencies.Sort();
        return new SecondStats(
            second,
            samples.Count,
            samples.Count(s => s.IsError),
            samples.Count(s => s.IsRead),
            samples.Count(s => s.Outcome == CallOutcome.Hit),
            Percentile(latencies, 50),
            Percentile(latencies, 99),
            latencies.Count == 0 ? double.NaN : latencies[^1]);
    }

    /// <summary>Nearest-rank percentile of sorted values; NaN when there are none.</summary>
    private static double Percentile(List<double> sorted, double percentile)
    {
        if (sorted.Count == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(percentile / 100 * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }
}

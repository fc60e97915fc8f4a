namespace Resilient.Caching.OutageReport;

/// <summary>One second of one provider's run: calls completed in it, errors, and the latency of those calls.</summary>
internal sealed record SecondStats(int Second, int Calls, int Errors, int Gets, int Hits, double P50, double P99, double Max)
{
    public double HitRatio => Gets == 0 ? 0 : (double)Hits / Gets;
}

/// <summary>Everything measured for one provider, and the figures derived from it.</summary>
internal sealed class ProviderResult
{
    public ProviderResult(string name, string settings, List<Sample> samples, int abandoned, Timeline timeline, string? notes = null)
    {
        Name = name;
        Settings = settings;
        Samples = samples;
        Abandoned = abandoned;
        Timeline = timeline;
        Notes = notes;
        var seconds = (int)timeline.TotalSeconds;
        var buckets = new List<Sample>[seconds];
        for (var i = 0; i < seconds; i++)
        {
            buckets[i] = [];
        }

        foreach (var sample in samples)
        {
            var second = (int)sample.CompletedAt;
            if (second < seconds)
            {
                buckets[second].Add(sample);
            }
            else
            {
                LateCalls++;
            }
        }

        Seconds = [.. buckets.Select((b, i) => Aggregate(i, b))];
    }

    public string Name { get; }

    public string Settings { get; }

    public string? Notes { get; }

    public List<Sample> Samples { get; }

    public int Abandoned { get; }

    /// <summary>Calls that completed after the end of the timeline (blocked past it).</summary>
    public int LateCalls { get; }

    public Timeline Timeline { get; }

    public SecondStats[] Seconds { get; }

    /// <summary>Mean calls per second in the healthy phase, leaving out the first 2 s (JIT, thread pool growth).</summary>
    public double HealthyThroughput => MeanCalls(2, Timeline.End(PhaseKind.Healthy));

    public double HealthyHitRatio
    {
        get
        {
            var range = Range(2, Timeline.End(PhaseKind.Healthy));
            var gets = range.Sum(s => s.Gets);
            return gets == 0 ? 0 : (double)range.Sum(s => s.Hits) / gets;
        }
    }

    public double Throughput(PhaseKind phase) => MeanCalls(Timeline.Start(phase), Timeline.End(phase));

    public int Errors(PhaseKind phase) => Range(Timeline.Start(phase), Timeline.End(phase)).Sum(s => s.Errors);

    public int TotalErrors => Seconds.Sum(s => s.Errors);

    /// <summary>Latency percentile (ms) of every call that completed during a phase.</summary>
    public double LatencyPercentile(PhaseKind phase, double percentile)
    {
        var start = Timeline.Start(phase);
        var end = Timeline.End(phase);
        var latencies = Samples.Where(s => s.CompletedAt >= start && s.CompletedAt < end).Select(s => (double)s.LatencyMs).ToList();
        latencies.Sort();
        return Percentile(latencies, percentile);
    }

    /// <summary>
    /// Seconds from the event that starts <paramref name="phase"/> to the end of the first whole second whose
    /// throughput is at least 90% of the healthy throughput; null when that never happens within the phase.
    /// </summary>
    public int? ThroughputRecovery(PhaseKind phase) =>
        FirstSecond(phase, s => s.Calls >= 0.9 * HealthyThroughput);

    /// <summary>As <see cref="ThroughputRecovery"/>, for the hit ratio of reads (Redis is really in use again).</summary>
    public int? CacheRecovery(PhaseKind phase) =>
        FirstSecond(phase, s => s.Gets > 0 && s.HitRatio >= 0.9 * HealthyHitRatio);

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

    private static SecondStats Aggregate(int second, List<Sample> samples)
    {
        var latencies = samples.Select(s => (double)s.LatencyMs).ToList();
        latencies.Sort();
        return new SecondStats(
            second,
            samples.Count,
            samples.Count(s => s.Outcome == CallOutcome.Error),
            samples.Count(s => s.Outcome is CallOutcome.Hit or CallOutcome.Miss),
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

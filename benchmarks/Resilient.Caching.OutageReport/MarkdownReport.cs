using System.Globalization;
using System.Text;

namespace Resilient.Caching.OutageReport;

internal static class MarkdownReport
{
    public static string Summary(IReadOnlyList<ProviderResult> results, Timeline timeline)
    {
        var text = new StringBuilder();
        text.AppendLine("| provider | healthy calls/s | calls/s Redis killed | calls/s blackholed | errors seen by callers | p50 / max latency while killed | p50 / max latency while blackholed | throughput ≥ 90% after restart | after heal | reads hit again (≥ 90% of healthy hit ratio) after restart | after heal |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in results)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"| {r.Name} | {r.HealthyThroughput:0} | {r.Throughput(PhaseKind.Killed):0} ({Percent(r.Throughput(PhaseKind.Killed), r.HealthyThroughput)}) | {r.Throughput(PhaseKind.Blackholed):0} ({Percent(r.Throughput(PhaseKind.Blackholed), r.HealthyThroughput)}) | {r.TotalErrors} ");
            text.Append(CultureInfo.InvariantCulture,
                $"| {Ms(r.LatencyPercentile(PhaseKind.Killed, 50))} / {Ms(r.LatencyPercentile(PhaseKind.Killed, 100))} | {Ms(r.LatencyPercentile(PhaseKind.Blackholed, 50))} / {Ms(r.LatencyPercentile(PhaseKind.Blackholed, 100))} ");
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {Recovery(r.ThroughputRecovery(PhaseKind.Restarted), timeline)} | {Recovery(r.ThroughputRecovery(PhaseKind.Healed), timeline)} | {Recovery(r.CacheRecovery(PhaseKind.Restarted), timeline)} | {Recovery(r.CacheRecovery(PhaseKind.Healed), timeline)} |");
        }

        return text.ToString();
    }

    public static string PerSecond(IReadOnlyList<ProviderResult> results, Timeline timeline)
    {
        var text = new StringBuilder();
        text.Append("| s | phase |");
        foreach (var r in results)
        {
            text.Append(CultureInfo.InvariantCulture, $" {Short(r.Name)} calls | errors | p50 | p99 | max |");
        }

        text.AppendLine();
        text.Append("| ---: | --- |");
        foreach (var _ in results)
        {
            text.Append(" ---: | ---: | ---: | ---: | ---: |");
        }

        text.AppendLine();
        for (var second = 0; second < (int)timeline.TotalSeconds; second++)
        {
            var phase = timeline.PhaseAt(second);
            var label = phase.StartSeconds == second ? $"**{phase.Name}**" : phase.Name;
            text.Append(CultureInfo.InvariantCulture, $"| {second} | {label} |");
            foreach (var r in results)
            {
                var s = r.Seconds[second];
                text.Append(CultureInfo.InvariantCulture, $" {s.Calls} | {s.Errors} | {Ms(s.P50)} | {Ms(s.P99)} | {Ms(s.Max)} |");
            }

            text.AppendLine();
        }

        return text.ToString();
    }

    public static string Ms(double ms) => double.IsNaN(ms) ? "–" : ms switch
    {
        >= 1000 => string.Create(CultureInfo.InvariantCulture, $"{ms / 1000:0.00} s"),
        >= 10 => string.Create(CultureInfo.InvariantCulture, $"{ms:0} ms"),
        >= 1 => string.Create(CultureInfo.InvariantCulture, $"{ms:0.0} ms"),
        >= 0.1 => string.Create(CultureInfo.InvariantCulture, $"{ms:0.00} ms"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{ms * 1000:0.0} µs"),
    };

    public static string Percent(double value, double reference) =>
        reference <= 0 ? "–" : string.Create(CultureInfo.InvariantCulture, $"{100 * value / reference:0}%");

    public static string Recovery(int? seconds, Timeline timeline) =>
        seconds is { } s ? string.Create(CultureInfo.InvariantCulture, $"≤ {s} s") : string.Create(CultureInfo.InvariantCulture, $"not within {timeline.PhaseSeconds:0} s");

    private static string Short(string name) => name.Split(' ')[0];
}

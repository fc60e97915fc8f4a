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

    /// <summary>Each provider's figures divided by the stock provider's, measured in the same run.</summary>
    public static string VsStock(IReadOnlyList<ProviderResult> results, IReadOnlyList<(string Name, Func<ProviderResult, double> Figure)> figures)
    {
        if (results.FirstOrDefault(r => r.Id == "stock") is not { } stock)
        {
            return "(stock not in this run: no ratios)";
        }

        var text = new StringBuilder();
        text.Append("| provider |");
        foreach (var (name, _) in figures)
        {
            text.Append(CultureInfo.InvariantCulture, $" {name} |");
        }

        text.AppendLine();
        text.Append("| --- |");
        foreach (var _ in figures)
        {
            text.Append(" ---: |");
        }

        text.AppendLine();
        foreach (var r in results)
        {
            text.Append(CultureInfo.InvariantCulture, $"| {r.Name} |");
            foreach (var (_, figure) in figures)
            {
                var reference = figure(stock);
                var value = figure(r);
                text.Append(reference > 0
                    ? string.Create(CultureInfo.InvariantCulture, $" {value / reference:0.##}× ({value:0}) |")
                    : string.Create(CultureInfo.InvariantCulture, $" – ({value:0}; stock 0) |"));
            }

            text.AppendLine();
        }

        return text.ToString();
    }

    public static string ClusterSummary(IReadOnlyList<ProviderResult> results, Timeline timeline)
    {
        var killed = timeline.Start(PhaseKind.PrimaryKilled);
        var restarted = timeline.Start(PhaseKind.NodeRestarted);
        var text = new StringBuilder();
        text.AppendLine("| provider | healthy calls/s | promotion seen after the kill | calls/s while the shard had no primary | errors then | hit ratio then: keys on healthy shards / on the failed shard | p50 / max latency then | failed-shard reads hit again (≥ 90% of their healthy hit ratio) after the promotion | calls/s promotion → restart | failed-shard hit ratio promotion → restart | errors after the restart | calls/s after the restart | rejoin seen after the restart |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in results)
        {
            var promoted = r.MarkAt(ClusterRun.Promoted) ?? restarted;
            var rejoined = r.MarkAt(ClusterRun.Rejoined);
            var down = r.CallsPerSecond(killed, promoted);
            text.Append(CultureInfo.InvariantCulture,
                $"| {r.Name} | {r.HealthyThroughput:0} | {promoted - killed:0.0} s | {down:0} ({Percent(down, r.HealthyThroughput)}) | {r.ErrorsBetween(killed, promoted)} ");
            text.Append(CultureInfo.InvariantCulture,
                $"| {Ratio(r.HitRatio(killed, promoted, 0))} / {Ratio(r.HitRatio(killed, promoted, 1))} | {Ms(r.LatencyPercentile(killed, promoted, 50))} / {Ms(r.LatencyPercentile(killed, promoted, 100))} ");
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {Seconds(r.CacheRecovery(promoted, timeline.TotalSeconds, 1))} | {r.CallsPerSecond(promoted, restarted):0} | {Ratio(r.HitRatio(promoted, restarted, 1))} | {r.ErrorsBetween(restarted, timeline.TotalSeconds)} | {r.CallsPerSecond(restarted, timeline.TotalSeconds):0} | {(rejoined is { } j ? string.Create(CultureInfo.InvariantCulture, $"{j - restarted:0.0} s") : "–")} |");
        }

        return text.ToString();
    }

    public static string ClusterPerSecond(IReadOnlyList<ProviderResult> results, Timeline timeline) =>
        PerSecondTable(results, timeline, ["calls", "errors", "hit healthy shards", "hit failed shard", "p99"], static (r, second) =>
        {
            var s = r.Seconds[second];
            var marks = string.Concat(r.Marks.Where(m => (int)m.Seconds == second).Select(m => $" ({m.Name})"));
            return [$"{s.Calls}{marks}", $"{s.Errors}", HitRatio(r.GroupSeconds[0][second]), HitRatio(r.GroupSeconds[1][second]), Ms(s.P99)];
        });

    public static string PerSecond(IReadOnlyList<ProviderResult> results, Timeline timeline) =>
        PerSecondTable(results, timeline, ["calls", "errors", "hit", "p50", "p99", "max"], static (r, second) =>
        {
            var s = r.Seconds[second];
            return [$"{s.Calls}", $"{s.Errors}", HitRatio(s), Ms(s.P50), Ms(s.P99), Ms(s.Max)];
        });

    /// <summary>One row per second of the timeline, with the phase, and the given columns for every provider.</summary>
    private static string PerSecondTable(IReadOnlyList<ProviderResult> results, Timeline timeline, string[] columns, Func<ProviderResult, int, string[]> cells)
    {
        var text = new StringBuilder();
        text.Append("| s | phase |");
        foreach (var r in results)
        {
            text.Append(CultureInfo.InvariantCulture, $" {Short(r.Name)} {string.Join(" | ", columns)} |");
        }

        text.AppendLine();
        text.Append("| ---: | --- |");
        foreach (var _ in results)
        {
            text.Append(string.Concat(Enumerable.Repeat(" ---: |", columns.Length)));
        }

        text.AppendLine();
        for (var second = 0; second < (int)timeline.TotalSeconds; second++)
        {
            var phase = timeline.PhaseAt(second);
            var label = phase.StartSeconds == second ? $"**{phase.Name}**" : phase.Name;
            text.Append(CultureInfo.InvariantCulture, $"| {second} | {label} |");
            foreach (var r in results)
            {
                text.Append(' ').Append(string.Join(" | ", cells(r, second))).Append(" |");
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
        seconds is { } s ? string.Create(CultureInfo.InvariantCulture, $"≤ {s} s") : "not within the phase";

    public static string Ratio(double ratio) =>
        double.IsNaN(ratio) ? "–" : string.Create(CultureInfo.InvariantCulture, $"{100 * ratio:0}%");

    private static string HitRatio(SecondStats s) => s.Reads == 0 ? "–" : Ratio(s.HitRatio);

    private static string Seconds(double? seconds) =>
        seconds is { } s ? string.Create(CultureInfo.InvariantCulture, $"≤ {s:0.0} s") : "not before the end";

    private static string Short(string name) => name.Split(' ')[0];
}

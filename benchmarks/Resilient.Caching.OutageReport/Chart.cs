using ScottPlot;

namespace Resilient.Caching.OutageReport;

/// <summary>Throughput and p99 latency per second for every provider, fault phases shaded and labelled.</summary>
internal static class Chart
{
    // Short-circuited calls take well under a microsecond; the axis starts there.
    private const double MinLatencyMs = 0.0001;

    private static readonly Color[] Palette = [Color.FromHex("#d62728"), Color.FromHex("#ff7f0e"), Color.FromHex("#1f77b4")];

    public static void Save(string path, IReadOnlyList<ProviderResult> results, Timeline timeline, string subtitle)
    {
        Fonts.Default = "DejaVu Sans";
        var throughput = new Plot();
        var latency = new Plot();

        for (var i = 0; i < results.Count; i++)
        {
            var result = results[i];
            var color = Palette[i % Palette.Length];

            // Plotted at the middle of the second they describe.
            var xs = result.Seconds.Select(s => s.Second + 0.5).ToArray();
            var calls = throughput.Add.ScatterLine(xs, result.Seconds.Select(s => (double)s.Calls).ToArray(), color);
            calls.LegendText = result.Name;
            calls.LineWidth = 2;

            var withCalls = result.Seconds.Where(s => s.Calls > 0).ToArray();
            var p99 = latency.Add.ScatterLine(
                withCalls.Select(s => s.Second + 0.5).ToArray(),
                withCalls.Select(s => Math.Log10(Math.Max(s.P99, MinLatencyMs))).ToArray(),
                color);
            p99.LegendText = result.Name;
            p99.LineWidth = 2;
        }

        var maxCalls = results.SelectMany(r => r.Seconds).Max(s => s.Calls);
        var maxLatency = Math.Log10(Math.Max(10, results.SelectMany(r => r.Seconds).Where(s => s.Calls > 0).Max(s => s.P99)));
        throughput.Axes.SetLimits(0, timeline.TotalSeconds, 0, maxCalls * 1.25);
        latency.Axes.SetLimits(0, timeline.TotalSeconds, Math.Log10(MinLatencyMs), Math.Ceiling(maxLatency) + 0.3);

        Shade(throughput, timeline, maxCalls * 1.2, labels: true);
        Shade(latency, timeline, 0, labels: false);

        throughput.Title($"Outage report: cache calls completed per second and p99 latency\n{subtitle}", size: 15);
        throughput.YLabel("completed calls / s");
        throughput.ShowLegend(Alignment.LowerLeft);

        latency.YLabel("p99 latency (ms, log scale)");
        latency.XLabel("seconds since start of the run");
        latency.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = y => FormatMilliseconds(Math.Pow(10, y)),
        };
        latency.Axes.Left.MinorTickStyle.Length = 3;
        latency.ShowLegend(Alignment.UpperLeft);

        // The same left margin on both, so that their x axes line up.
        throughput.Layout.Fixed(new PixelPadding(left: 90, right: 25, bottom: 30, top: 70));
        latency.Layout.Fixed(new PixelPadding(left: 90, right: 25, bottom: 55, top: 15));

        var multiplot = new Multiplot(throughput);
        multiplot.AddPlot(latency);
        multiplot.SharedAxes.ShareX([throughput, latency]);
        multiplot.SavePng(path, 1400, 1000);
    }

    private static void Shade(Plot plot, Timeline timeline, double labelY, bool labels)
    {
        foreach (var phase in timeline.Phases)
        {
            var start = phase.StartSeconds;
            var end = timeline.End(phase.Kind);
            Color? fill = phase.Kind switch
            {
                PhaseKind.Killed => Color.FromHex("#d62728").WithAlpha(0.10),
                PhaseKind.Blackholed => Colors.Black.WithAlpha(0.10),
                _ => null,
            };
            if (fill is { } color)
            {
                var span = plot.Add.HorizontalSpan(start, end, color);
                span.LineStyle.Width = 0;
            }

            if (phase.Kind != PhaseKind.Healthy)
            {
                var line = plot.Add.VerticalLine(start, 1, Colors.Gray, LinePattern.Dashed);
                line.LineWidth = 1;
            }

            if (labels)
            {
                var text = plot.Add.Text(phase.Name, start + 0.3, labelY);
                text.LabelFontSize = 13;
                text.LabelBold = true;
                text.LabelFontColor = Colors.DimGray;
                text.LabelAlignment = Alignment.UpperLeft;
            }
        }
    }

    private static string FormatMilliseconds(double ms) => ms switch
    {
        >= 1000 => $"{ms / 1000:0.#} s",
        >= 1 => $"{ms:0} ms",
        >= 0.01 => $"{ms:0.##} ms",
        _ => $"{ms * 1000:0.#} µs",
    };
}

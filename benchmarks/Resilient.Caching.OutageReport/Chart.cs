using ScottPlot;

namespace Resilient.Caching.OutageReport;

/// <summary>One panel of a chart: a value per second of each provider, from its seconds or one group's.</summary>
internal sealed record Panel(string YLabel, Func<ProviderResult, SecondStats[]> Series, Func<SecondStats, double?> Value, PanelScale Scale);

internal enum PanelScale
{
    Count,
    Ratio,
    LatencyLog,
}

/// <summary>Values per second for every provider, one panel under the other, fault phases shaded and labelled.</summary>
internal static class Chart
{
    // Short-circuited calls take well under a microsecond; the latency axis starts there.
    private const double MinLatencyMs = 0.0001;

    /// <summary>The same colour for a provider in every chart, whichever subset runs.</summary>
    private static readonly Dictionary<string, Color> Palette = new(StringComparer.Ordinal)
    {
        ["stock"] = Color.FromHex("#d62728"),
        ["swallow"] = Color.FromHex("#ff7f0e"),
        ["ours"] = Color.FromHex("#1f77b4"),
        ["hybrid"] = Color.FromHex("#2ca02c"),
        ["fusion"] = Color.FromHex("#9467bd"),
    };

    public static readonly Panel Calls = new("completed calls / s", r => r.Seconds, s => s.Calls, PanelScale.Count);

    public static readonly Panel P99 = new("p99 latency (ms, log scale)", r => r.Seconds, s => s.Calls > 0 ? s.P99 : null, PanelScale.LatencyLog);

    public static Panel HitRatio(string label, int? group) =>
        new(label, r => group is { } g ? r.GroupSeconds[g] : r.Seconds, s => s.Reads > 0 ? s.HitRatio : null, PanelScale.Ratio);

    public static void Save(string path, IReadOnlyList<ProviderResult> results, Timeline timeline, string title, IReadOnlyList<Panel> panels)
    {
        Fonts.Default = "DejaVu Sans";
        var plots = new List<Plot>();
        foreach (var panel in panels)
        {
            var plot = new Plot();
            plots.Add(plot);
            foreach (var result in results)
            {
                var color = Palette.GetValueOrDefault(result.Id, Colors.Gray);

                // Plotted at the middle of the second they describe. A second without a value (no call or no read
                // completed in it) breaks the line rather than being bridged by it; lone seconds show as dots.
                var legend = result.Name;
                foreach (var segment in Segments(panel.Series(result), panel))
                {
                    var line = plot.Add.Scatter(segment.Select(p => p.X).ToArray(), segment.Select(p => p.Y).ToArray(), color);
                    line.LineWidth = 2;
                    line.MarkerSize = segment.Count == 1 ? 7 : 0;
                    line.LegendText = legend;
                    legend = string.Empty;
                }

                foreach (var mark in result.Marks)
                {
                    var marker = plot.Add.VerticalLine(mark.Seconds, 1.5f, color, LinePattern.Dotted);
                    marker.LineWidth = 1.5f;
                }
            }

            var top = panel.Scale switch
            {
                PanelScale.Count => Math.Max(1, results.SelectMany(r => panel.Series(r)).Max(s => panel.Value(s) ?? 0)) * 1.25,
                PanelScale.Ratio => 1.3,
                _ => Math.Ceiling(Math.Log10(Math.Max(10, results.SelectMany(r => panel.Series(r)).Max(s => panel.Value(s) ?? 0)))) + 0.3,
            };
            var bottom = panel.Scale == PanelScale.LatencyLog ? Math.Log10(MinLatencyMs) : 0;
            plot.Axes.SetLimits(0, timeline.TotalSeconds, bottom, top);
            plot.YLabel(panel.YLabel);
            if (panel.Scale == PanelScale.LatencyLog)
            {
                plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
                {
                    MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                    IntegerTicksOnly = true,
                    LabelFormatter = y => FormatMilliseconds(Math.Pow(10, y)),
                };
                plot.Axes.Left.MinorTickStyle.Length = 3;
            }
            else if (panel.Scale == PanelScale.Ratio)
            {
                plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericFixedInterval(0.25);
            }

            Shade(plot, timeline, top - ((top - bottom) * 0.04), labels: plots.Count == 1);
            if (plots.Count == 1)
            {
                plot.ShowLegend(Alignment.LowerLeft);
            }
            else
            {
                plot.HideLegend();
            }
        }

        plots[0].Title(title, size: 15);
        plots[^1].XLabel("seconds since start of the run" + (results.Any(r => r.Marks.Count > 0) ? " (dotted: when the provider's run saw " + string.Join(", ", results.SelectMany(r => r.Marks).Select(m => m.Name).Distinct()) + ")" : string.Empty));

        // The same left margin on all, so that their x axes line up.
        for (var i = 0; i < plots.Count; i++)
        {
            plots[i].Layout.Fixed(new PixelPadding(left: 90, right: 25, bottom: i == plots.Count - 1 ? 55 : 30, top: i == 0 ? 70 : 15));
        }

        var multiplot = new Multiplot(plots[0]);
        foreach (var plot in plots.Skip(1))
        {
            multiplot.AddPlot(plot);
        }

        multiplot.SharedAxes.ShareX([.. plots]);
        multiplot.SavePng(path, 1400, 120 + (360 * plots.Count));
    }

    private static List<List<(double X, double Y)>> Segments(SecondStats[] seconds, Panel panel)
    {
        List<List<(double X, double Y)>> segments = [];
        List<(double X, double Y)>? current = null;
        foreach (var second in seconds)
        {
            if (panel.Value(second) is not { } value)
            {
                current = null;
                continue;
            }

            if (current is null)
            {
                current = [];
                segments.Add(current);
            }

            current.Add((second.Second + 0.5, panel.Scale == PanelScale.LatencyLog ? Math.Log10(Math.Max(value, MinLatencyMs)) : value));
        }

        return segments;
    }

    private static void Shade(Plot plot, Timeline timeline, double labelY, bool labels)
    {
        foreach (var phase in timeline.Phases)
        {
            var start = phase.StartSeconds;
            var end = timeline.End(phase.Kind);
            Color? fill = phase.Kind switch
            {
                PhaseKind.Killed or PhaseKind.PrimaryKilled => Color.FromHex("#d62728").WithAlpha(0.10),
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

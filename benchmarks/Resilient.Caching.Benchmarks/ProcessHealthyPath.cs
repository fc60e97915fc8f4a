using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Order;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Perfolizer.Horology;
using Resilient.Caching.Benchmarks.Shared;
using Resilient.Caching.IntegrationTests.Infrastructure;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// <c>--processes</c>: the healthy path with each provider alone in a process of its own, against one shared
/// redis-server on loopback, so that what a provider switches on for its whole process (StackExchange.Redis's
/// <c>DedicatedThreads</c> feature flag, thread-pool behaviour, timers) shows in its own figures only. Two parts:
/// <list type="number">
/// <item>a latency harness: <c>--rounds</c> rounds, each launching one <see cref="ProcessLatencyWorker"/> per provider
/// one after the other (the order rotates every round), each timing every call of Get, GetAsync, Set, SetAsync;
/// per provider, the median over its launches of p50 / p99 / p99.9, and of the ratio to the stock launch of the same
/// round; thread counts after the warm-up;</item>
/// <item>BenchmarkDotNet, one job per provider (each job is its own process): means with confidence intervals,
/// percentiles of the iteration means, allocations, thread-pool work items and lock contentions per call.</item>
/// </list>
/// Writes one markdown report (<c>--out</c>); prints it too.
/// </summary>
internal static class ProcessHealthyPath
{
    public const string Flag = "--processes";

    private static readonly string[] s_operations = ["Get", "GetAsync", "Set", "SetAsync"];

    // No worker may run longer than this (it bounds its own phases; this is the backstop).
    private static readonly TimeSpan s_workerTimeout = TimeSpan.FromSeconds(120);

    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = Option(args, "--rounds", 4);
        var calls = Option(args, "--calls", 20_000);
        var warmupMs = Option(args, "--warmup-ms", 2_000);
        var providers = ProcessProviders.Parse(OptionText(args, "--providers") ?? ProcessProviders.DefaultSelection);
        var runBdn = !args.Contains("--no-bdn", StringComparer.OrdinalIgnoreCase);
        var output = OptionText(args, "--out");
        var command = OptionText(args, "--command") ?? "./benchmarks/run-benchmarks.sh " + string.Join(' ', args);

        // "Defaults" means defaults: settings exported in this shell do not reach the benchmark processes.
        foreach (var variable in Environment.GetEnvironmentVariables().Keys.Cast<string>().Where(ProcessProviders.IsOurSetting))
        {
            Environment.SetEnvironmentVariable(variable, null);
        }

        var started = Stopwatch.GetTimestamp();
        var header = MachineInfo.Summary(command);
        var launches = new List<WorkerResult>();
        var launchLoads = new List<string>();
        Summary? summary = null;
        await using (var redis = await RedisServer.StartNewAsync())
        {
            for (var round = 0; round < rounds; round++)
            {
                for (var i = 0; i < providers.Count; i++)
                {
                    var provider = providers[(i + round) % providers.Count];
                    var result = await LaunchWorkerAsync(provider, redis.ConnectionString, calls, warmupMs);
                    launches.Add(result);
                    launchLoads.Add(result.LoadAverage);
                    var figures = string.Join("  ", result.Operations.Select(o => string.Create(CultureInfo.InvariantCulture, $"{o.Name} p50 {o.P50Us:0.0} p99 {o.P99Us:0.0} µs")));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"round {round + 1}/{rounds} {provider.Name,-12} threads {result.Threads,3}  {figures}  load {result.LoadAverage}"));
                }
            }

            if (runBdn)
            {
                Environment.SetEnvironmentVariable(ProcessProviders.RedisVariable, redis.ConnectionString);
                summary = BenchmarkRunner.Run<ProcessHealthyPathBenchmarks>(CreateBdnConfig(providers, OptionText(args, "--artifacts")));
            }
        }

        var report = new StringBuilder();
        report.AppendLine("# HealthyPathProcesses");
        report.AppendLine();
        report.AppendLine(header);
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"- Load average (1/5/15 min) as each harness process ended: {string.Join("; ", launchLoads)}; at the end: {MachineInfo.LoadAverage}; total time {Stopwatch.GetElapsedTime(started).TotalMinutes:0.0} min"));
        report.AppendLine();
        WriteHarness(report, providers, launches, rounds, calls, warmupMs);
        if (summary is not null)
        {
            WriteBdn(report, providers, summary);
        }

        var text = report.ToString();
        Console.WriteLine();
        Console.WriteLine(text);
        if (output is not null)
        {
            await File.WriteAllTextAsync(output, text);
            Console.WriteLine($"wrote {output}");
        }

        return summary is null || summary.Reports.All(r => r.Success) ? 0 : 1;
    }

    private static async Task<WorkerResult> LaunchWorkerAsync(ProcessProvider provider, string redis, int calls, int warmupMs)
    {
        var start = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("The path of this program is unknown.");
        start.FileName = self;
        if (Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            start.ArgumentList.Add(typeof(ProcessHealthyPath).Assembly.Location);
        }

        foreach (var argument in new[] { ProcessLatencyWorker.Flag, "--calls", calls.ToString(CultureInfo.InvariantCulture), "--warmup-ms", warmupMs.ToString(CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment[ProcessProviders.ProviderVariable] = provider.Name;
        start.Environment[ProcessProviders.RedisVariable] = redis;
        foreach (var (name, value) in provider.Environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("The worker process did not start.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(s_workerTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The {provider.Name} worker (pid {process.Id}) did not finish within {s_workerTimeout.TotalSeconds:0} s.");
        }

        var lines = (await stdout).Split('\n');
        var json = lines.FirstOrDefault(l => l.StartsWith(ProcessLatencyWorker.ResultPrefix, StringComparison.Ordinal));
        if (process.ExitCode != 0 || json is null)
        {
            throw new InvalidOperationException($"The {provider.Name} worker failed (exit code {process.ExitCode}):\n{await stdout}\n{await stderr}");
        }

        return JsonSerializer.Deserialize<WorkerResult>(json[ProcessLatencyWorker.ResultPrefix.Length..])
            ?? throw new InvalidOperationException("The worker's result could not be read.");
    }

    private static void WriteHarness(StringBuilder report, IReadOnlyList<ProcessProvider> providers, List<WorkerResult> launches, int rounds, int calls, int warmupMs)
    {
        var stock = launches.Where(l => l.Provider == ProcessProviders.Stock).ToList();
        report.AppendLine("## Per-call latency, each provider alone in its process");
        report.AppendLine();
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"{rounds} rounds; each round starts one process per provider, one after the other (the order rotates every round), against the one redis-server. A process warms every operation up for {warmupMs / 1000.0:0.#} s, then makes {calls:N0} sequential calls of each operation (1 KB value, 20-minute sliding expiration: a Get hit is HMGET + EXPIRE) and times each call (Stopwatch). Cells: the median over the rounds of ours / stock in the same round, **bold** above 1.05; in brackets the median over the launches, µs. Threads: the process's threads after the warm-up (median; difference to stock in brackets), all of them, and without the thread pool's workers (whose number the pool varies with load)."));
        report.AppendLine();
        report.Append("| provider |");
        foreach (var operation in s_operations)
        {
            report.Append(CultureInfo.InvariantCulture, $" {operation} p50 | {operation} p99 |");
        }

        report.AppendLine(" threads | threads besides the pool's workers |");
        report.Append("| --- |");
        report.Append(string.Concat(Enumerable.Repeat(" ---: | ---: |", s_operations.Length)));
        report.AppendLine(" ---: | ---: |");
        var stockThreads = Median(stock.Select(l => (double)l.Threads));
        var stockOwnThreads = Median(stock.Select(OwnThreads));
        foreach (var provider in providers)
        {
            var mine = launches.Where(l => l.Provider == provider.Name).ToList();
            report.Append(CultureInfo.InvariantCulture, $"| {provider.Name} |");
            foreach (var operation in s_operations)
            {
                report.Append(CultureInfo.InvariantCulture, $" {Cell(mine, stock, operation, o => o.P50Us)} | {Cell(mine, stock, operation, o => o.P99Us)} |");
            }

            var threads = Median(mine.Select(l => (double)l.Threads));
            var own = Median(mine.Select(OwnThreads));
            report.AppendLine(CultureInfo.InvariantCulture, $" {threads:0} ({threads - stockThreads:+0;-0;0}) | {own:0} ({own - stockOwnThreads:+0;-0;0}) |");
        }

        report.AppendLine();
        report.AppendLine("Medians over the launches: µs per call, and per call what the whole process (all threads) spent over the measured calls: CPU time (µs), bytes allocated, thread-pool work items completed, lock contentions, voluntary context switches (a thread blocking and being woken). The counts hardly depend on the machine's load; the times do.");
        report.AppendLine();
        report.AppendLine("| provider | operation | mean | p50 | p90 | p99 | p99.9 | CPU µs | B | work items | lock contentions | context switches |");
        report.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var provider in providers)
        {
            var mine = launches.Where(l => l.Provider == provider.Name).ToList();
            foreach (var operation in s_operations)
            {
                var of = mine.Select(l => l.Operations.Single(o => o.Name == operation)).ToList();
                report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {provider.Name} | {operation} | {Median(of.Select(o => o.MeanUs)):0.0} | {Median(of.Select(o => o.P50Us)):0.0} | {Median(of.Select(o => o.P90Us)):0.0} | {Median(of.Select(o => o.P99Us)):0.0} | {Median(of.Select(o => o.P999Us)):0.0} | {Median(of.Select(o => o.CpuUsPerCall)):0.0} | {Median(of.Select(o => o.BytesPerCall)):0} | {Median(of.Select(o => o.WorkItemsPerCall)):0.00} | {Median(of.Select(o => o.LockContentionsPerCall)):0.00} | {Median(of.Select(o => o.VoluntarySwitchesPerCall)):0.00} |"));
            }
        }

        report.AppendLine();
        report.AppendLine("Threads after the warm-up, by name (first launch of each; `DedicatedThreads` is StackExchange.Redis's process-wide feature flag as read in that process):");
        report.AppendLine();
        report.AppendLine("| provider | what | DedicatedThreads | threads | by name |");
        report.AppendLine("| --- | --- | --- | ---: | --- |");
        foreach (var provider in providers)
        {
            var first = launches.First(l => l.Provider == provider.Name);
            report.AppendLine(CultureInfo.InvariantCulture,
                $"| {provider.Name} | {provider.Description} | {(first.DedicatedThreadsFlag ? "on" : "off")} | {first.Threads} | {ThreadSnapshot.Describe(first.ThreadNames)} |");
        }

        report.AppendLine();
    }

    private static double OwnThreads(WorkerResult launch) => launch.Threads - launch.ThreadNames.GetValueOrDefault(".NET TP Worker");

    private static string Cell(List<WorkerResult> mine, List<WorkerResult> stock, string operation, Func<OperationResult, double> metric)
    {
        // Pair each launch with the stock launch of the same round (launches are recorded round by round).
        var ratios = new List<double>();
        for (var i = 0; i < Math.Min(mine.Count, stock.Count); i++)
        {
            ratios.Add(metric(mine[i].Operations.Single(o => o.Name == operation)) / metric(stock[i].Operations.Single(o => o.Name == operation)));
        }

        var ratio = Median(ratios);
        var micros = Median(mine.Select(l => metric(l.Operations.Single(o => o.Name == operation))));
        var text = string.Create(CultureInfo.InvariantCulture, $"{ratio:0.00}×");
        return string.Create(CultureInfo.InvariantCulture, $"{(ratio > 1.05 ? $"**{text}**" : text)} ({micros:0.0})");
    }

    private static ManualConfig CreateBdnConfig(IReadOnlyList<ProcessProvider> providers, string? artifacts)
    {
        var config = ManualConfig.CreateEmpty()
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddLogger(DefaultConfig.Instance.GetLoggers().ToArray())
            .AddExporter(DefaultConfig.Instance.GetExporters().ToArray())
            .AddAnalyser(DefaultConfig.Instance.GetAnalysers().ToArray())
            .AddValidator(DefaultConfig.Instance.GetValidators().ToArray())
            .AddDiagnoser(MemoryDiagnoser.Default, ThreadingDiagnoser.Default)
            .AddColumn(StatisticColumn.P50, StatisticColumn.P95)
            .AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByMethod)
            .WithOrderer(new MethodThenJobOrderer(providers.Select(p => p.Name).ToList()));
        if (artifacts is not null)
        {
            config = config.WithArtifactsPath(artifacts);
        }

        foreach (var provider in providers)
        {
            var job = Job.Default
                .WithId(provider.Name)
                .WithLaunchCount(1)
                .WithWarmupCount(3)
                .WithIterationCount(10)
                .WithIterationTime(TimeInterval.FromMilliseconds(250))
                .WithEnvironmentVariables([new(ProcessProviders.ProviderVariable, provider.Name), .. provider.Environment.Select(e => new EnvironmentVariable(e.Key, e.Value))]);
            config = config.AddJob(provider.Name == ProcessProviders.Stock ? job.AsBaseline() : job);
        }

        return config;
    }

    private static void WriteBdn(StringBuilder report, IReadOnlyList<ProcessProvider> providers, Summary summary)
    {
        report.AppendLine("## BenchmarkDotNet, one job (process) per provider");
        report.AppendLine();
        report.AppendLine("Each job is a process of its own (3 warm-up and 10 measured iterations of 250 ms); run one method after the other, each for every provider in turn. Mean: µs per call with its 99.9% confidence half-interval; P50 / P95: percentiles of the 10 **iteration means** (each the average of thousands of calls): the spread between iterations, not the tail of single calls. Ratio: mean / stock mean. Work items and lock contentions: the thread pool's, per call.");
        report.AppendLine();
        report.AppendLine("| method | provider | mean µs | ± µs | P50 µs | P95 µs | ratio | work items | lock contentions | B/call |");
        report.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var operation in s_operations)
        {
            double? stockMean = null;
            foreach (var provider in providers)
            {
                var benchmarkReport = summary.Reports.FirstOrDefault(r => r.BenchmarkCase.Descriptor.WorkloadMethod.Name == operation && r.BenchmarkCase.Job.Id == provider.Name);
                if (benchmarkReport?.ResultStatistics is not { } statistics)
                {
                    report.AppendLine(CultureInfo.InvariantCulture, $"| {operation} | {provider.Name} | failed | | | | | | | |");
                    continue;
                }

                var mean = statistics.Mean / 1000;
                stockMean ??= provider.Name == ProcessProviders.Stock ? mean : null;
                var ratio = stockMean is { } baseline ? (mean / baseline).ToString("0.00", CultureInfo.InvariantCulture) + "×" : "–";
                report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {operation} | {provider.Name} | {mean:0.0} | {statistics.ConfidenceInterval.Margin / 1000:0.0} | {statistics.Percentiles.P50 / 1000:0.0} | {statistics.Percentiles.P95 / 1000:0.0} | {ratio} | {MetricPerCall(benchmarkReport, "Completed Work Items")} | {MetricPerCall(benchmarkReport, "Lock Contentions")} | {benchmarkReport.GcStats.GetBytesAllocatedPerOperation(benchmarkReport.BenchmarkCase) ?? 0:0} |"));
            }
        }

        report.AppendLine();
    }

    private static string MetricPerCall(BenchmarkReport report, string displayName) =>
        report.Metrics.Values.FirstOrDefault(m => m.Descriptor.DisplayName == displayName) is { } metric
            ? metric.Value.ToString("0.000", CultureInfo.InvariantCulture)
            : "–";

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    internal static int Option(string[] args, string name, int fallback) =>
        OptionText(args, name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

    internal static string? OptionText(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }

    /// <summary>Runs one method for every provider before the next method, providers in the order given: adjacent processes, alternating providers.</summary>
    private sealed class MethodThenJobOrderer(IReadOnlyList<string> providers) : DefaultOrderer
    {
        public override IEnumerable<BenchmarkCase> GetExecutionOrder(ImmutableArray<BenchmarkCase> benchmarkCases, IEnumerable<BenchmarkLogicalGroupRule>? order = null) =>
            benchmarkCases
                .OrderBy(c => Array.IndexOf(s_operations, c.Descriptor.WorkloadMethod.Name))
                .ThenBy(c => IndexOf(c.Job.Id));

        private int IndexOf(string job)
        {
            for (var i = 0; i < providers.Count; i++)
            {
                if (providers[i] == job)
                {
                    return i;
                }
            }

            return int.MaxValue;
        }
    }
}

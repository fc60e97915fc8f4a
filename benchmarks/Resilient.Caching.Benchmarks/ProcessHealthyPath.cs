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
/// <item>a latency harness: <c>--launches</c> times, one <see cref="ProcessLatencyWorker"/> process per provider, all
/// alive at once but only one at work at any time: each warms up alone, then, per operation (Get, GetAsync, Set,
/// SetAsync), <c>--blocks</c> rounds in which each process in turn runs a block of <c>--block-calls</c> timed calls
/// (rotating order). Ratios from adjacent blocks cancel the machine's drift as the in-process paired run does, while
/// each provider keeps its process to itself. p50 / p99 / p99.9 of every call, threads after the warm-up, and per
/// call CPU, allocations, thread-pool work items, lock contentions and context switches;</item>
/// <item>BenchmarkDotNet, one job per provider (each job is its own process): means with confidence intervals,
/// percentiles of the iteration means, allocations, thread-pool work items and lock contentions per call.</item>
/// </list>
/// Writes one markdown report (<c>--out</c>); prints it too.
/// </summary>
internal static class ProcessHealthyPath
{
    public const string Flag = "--processes";

    private static readonly string[] s_operations = ProcessLatencyWorker.Operations;

    public static async Task<int> RunAsync(string[] args)
    {
        var launches = Option(args, "--launches", 3);
        var blocks = Option(args, "--blocks", 30);
        var blockCalls = Option(args, "--block-calls", 500);
        var warmupMs = Option(args, "--warmup-ms", 2_000);
        var providers = ProcessProviders.Parse(OptionText(args, "--providers") ?? ProcessProviders.DefaultSelection);
        var runBdn = !args.Contains("--no-bdn", StringComparer.OrdinalIgnoreCase);
        var syncOnMain = args.Contains("--sync-on-main", StringComparer.OrdinalIgnoreCase);
        var output = OptionText(args, "--out");
        var command = OptionText(args, "--command") ?? "./benchmarks/run-benchmarks.sh " + string.Join(' ', args);

        // "Defaults" means defaults: settings exported in this shell do not reach the benchmark processes.
        foreach (var variable in Environment.GetEnvironmentVariables().Keys.Cast<string>().Where(ProcessProviders.IsOurSetting))
        {
            Environment.SetEnvironmentVariable(variable, null);
        }

        var started = Stopwatch.GetTimestamp();
        var header = MachineInfo.Summary(command);
        var harness = new HarnessResults(providers);
        var loads = new List<string>();
        Summary? summary = null;
        await using (var redis = await RedisServer.StartNewAsync())
        {
            for (var launch = 0; launch < launches; launch++)
            {
                await RunLaunchAsync(launch, providers, redis.ConnectionString, blocks, blockCalls, warmupMs, syncOnMain, harness);
                loads.Add(MachineInfo.LoadAverage);
                Console.WriteLine($"launch {launch + 1}/{launches} done; load average {MachineInfo.LoadAverage}");
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
            $"- Load average (1/5/15 min) after each launch of the harness: {string.Join("; ", loads)}; at the end: {MachineInfo.LoadAverage}; total time {Stopwatch.GetElapsedTime(started).TotalMinutes:0.0} min"));
        report.AppendLine();
        harness.Write(report, launches, blocks, blockCalls, warmupMs, syncOnMain);
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

    /// <summary>
    /// One launch: a process per provider, each warmed up alone, then for every operation <paramref name="blocks"/>
    /// rounds in which each provider runs one block while the others wait (the order rotates every round).
    /// </summary>
    private static async Task RunLaunchAsync(int launch, IReadOnlyList<ProcessProvider> providers, string redis, int blocks, int blockCalls, int warmupMs, bool syncOnMain, HarnessResults results)
    {
        var order = Enumerable.Range(0, providers.Count).Select(i => providers[(i + launch) % providers.Count]).ToList();
        var workers = new List<WorkerProcess>();
        try
        {
            foreach (var provider in order)
            {
                workers.Add(await WorkerProcess.StartAsync(provider, redis, syncOnMain));
            }

            foreach (var worker in workers)
            {
                _ = await worker.AskAsync(string.Create(CultureInfo.InvariantCulture, $"warm {warmupMs}"));
            }

            foreach (var operation in ProcessLatencyWorker.Operations)
            {
                for (var block = 0; block < blocks; block++)
                {
                    var medians = new Dictionary<string, double>(StringComparer.Ordinal);
                    for (var i = 0; i < workers.Count; i++)
                    {
                        var worker = workers[(i + block) % workers.Count];
                        var answer = (await worker.AskAsync(string.Create(CultureInfo.InvariantCulture, $"block {operation} {blockCalls}"))).Split(' ');
                        medians[worker.Provider.Name] = double.Parse(answer[1], CultureInfo.InvariantCulture);
                    }

                    results.AddRound(operation, medians);
                }

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"launch {launch + 1}: {operation} done"));
            }

            foreach (var worker in workers)
            {
                results.AddLaunch(JsonSerializer.Deserialize<WorkerResult>(await worker.AskAsync("summary"))
                    ?? throw new InvalidOperationException("A worker's summary could not be read."));
            }
        }
        finally
        {
            foreach (var worker in workers)
            {
                await worker.DisposeAsync();
            }
        }
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

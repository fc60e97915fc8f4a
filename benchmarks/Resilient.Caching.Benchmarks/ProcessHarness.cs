using System.Diagnostics;
using System.Globalization;
using System.Text;
using Resilient.Caching.Benchmarks.Shared;

namespace Resilient.Caching.Benchmarks;

/// <summary>A <see cref="ProcessLatencyWorker"/> process of this coordinator: one line asked, one line answered.</summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    // No answer takes longer than this (a block is bounded at 10 s, a warm-up at 30 s); the backstop.
    private static readonly TimeSpan s_answerTimeout = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly StringBuilder _errors = new();

    private WorkerProcess(ProcessProvider provider, Process process)
    {
        Provider = provider;
        _process = process;
        _process.ErrorDataReceived += (_, e) =>
        {
            lock (_errors)
            {
                _errors.AppendLine(e.Data);
            }
        };
        _process.BeginErrorReadLine();
    }

    public ProcessProvider Provider { get; }

    public static async Task<WorkerProcess> StartAsync(ProcessProvider provider, string redis, bool syncOnMain)
    {
        var start = new ProcessStartInfo
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("The path of this program is unknown.");
        start.FileName = self;
        if (Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            start.ArgumentList.Add(typeof(WorkerProcess).Assembly.Location);
        }

        start.ArgumentList.Add(ProcessLatencyWorker.Flag);
        start.Environment[ProcessProviders.ProviderVariable] = provider.Name;
        start.Environment[ProcessProviders.RedisVariable] = redis;
        start.Environment[ProcessLatencyWorker.SyncThreadVariable] = syncOnMain ? "main" : "pool";
        foreach (var (name, value) in provider.Environment)
        {
            start.Environment[name] = value;
        }

        var worker = new WorkerProcess(provider, Process.Start(start) ?? throw new InvalidOperationException("The worker process did not start."));
        var ready = await worker.ReadAsync();
        if (ready != "ready")
        {
            throw new InvalidOperationException($"The {provider.Name} worker said '{ready}' instead of 'ready'.");
        }

        return worker;
    }

    public async Task<string> AskAsync(string command)
    {
        await _process.StandardInput.WriteLineAsync(command);
        await _process.StandardInput.FlushAsync();
        return await ReadAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.StandardInput.Close();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException or InvalidOperationException)
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        finally
        {
            _process.Dispose();
        }
    }

    private async Task<string> ReadAsync()
    {
        using var timeout = new CancellationTokenSource(s_answerTimeout);
        string? line;
        try
        {
            line = await _process.StandardOutput.ReadLineAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The {Provider.Name} worker (pid {_process.Id}) did not answer within {s_answerTimeout.TotalSeconds:0} s.");
        }

        if (line is null)
        {
            await _process.WaitForExitAsync();
            string errors;
            lock (_errors)
            {
                errors = _errors.ToString();
            }

            throw new InvalidOperationException($"The {Provider.Name} worker ended (exit code {_process.ExitCode}):\n{errors}");
        }

        return line;
    }
}

/// <summary>What the harness gathered: per operation and round, each provider's block median; per launch, each worker's summary.</summary>
internal sealed class HarnessResults(IReadOnlyList<ProcessProvider> providers)
{
    private readonly Dictionary<string, List<Dictionary<string, double>>> _rounds = new(StringComparer.Ordinal);
    private readonly List<WorkerResult> _launches = [];

    public void AddRound(string operation, Dictionary<string, double> medians)
    {
        if (!_rounds.TryGetValue(operation, out var rounds))
        {
            _rounds[operation] = rounds = [];
        }

        rounds.Add(medians);
    }

    public void AddLaunch(WorkerResult result) => _launches.Add(result);

    public void Write(StringBuilder report, int launches, int blocks, int blockCalls, int warmupMs, bool syncOnMain)
    {
        var operations = ProcessLatencyWorker.Operations;
        report.AppendLine("## Per-call latency, each provider alone in its process");
        report.AppendLine();
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"{launches} launches. A launch starts one process per provider, all against the one redis-server; each warms every operation up for {warmupMs / 1000.0:0.#} s while the others wait. Then, per operation, {blocks} rounds: in each, every process in turn runs one block of {blockCalls} sequential calls (after 10 untimed ones) on a thread-pool thread{(syncOnMain ? " (Get and Set: on the process's main thread, `--sync-on-main`)" : string.Empty)} while the others wait, the order rotating every round; every call is timed (Stopwatch). So each provider is alone in its process and alone at work, and the machine's drift falls on all alike. 1 KB value, 20-minute sliding expiration (a Get hit is HMGET + EXPIRE)."));
        report.AppendLine();
        report.AppendLine("Cells: ours / stock. **p50**: the median over all rounds of the ratio of the two block medians of one round; **p99**: the ratio of the p99s of all calls of a launch, median over the launches; **bold** above 1.05; in brackets the provider's own figure, µs (median over the launches). Threads: after the warm-up, all of them and without the thread pool's workers (whose number the pool varies with load); difference to stock in brackets.");
        report.AppendLine();
        report.Append("| provider |");
        foreach (var operation in operations)
        {
            report.Append(CultureInfo.InvariantCulture, $" {operation} p50 | {operation} p99 |");
        }

        report.AppendLine(" threads | threads besides the pool's workers |");
        report.Append("| --- |");
        report.Append(string.Concat(Enumerable.Repeat(" ---: | ---: |", operations.Length)));
        report.AppendLine(" ---: | ---: |");
        var stockLaunches = Of(ProcessProviders.Stock);
        var stockThreads = Median(stockLaunches.Select(l => (double)l.Threads));
        var stockOwn = Median(stockLaunches.Select(OwnThreads));
        foreach (var provider in providers)
        {
            var mine = Of(provider.Name);
            report.Append(CultureInfo.InvariantCulture, $"| {provider.Name} |");
            foreach (var operation in operations)
            {
                var p50 = Median(P50Ratios(operation, provider.Name));
                var p99 = Median(LaunchRatios(mine, stockLaunches, operation, o => o.P99Us));
                report.Append(CultureInfo.InvariantCulture, $" {Ratio(p50)} ({Median(mine.Select(l => Op(l, operation).P50Us)):0.0}) | {Ratio(p99)} ({Median(mine.Select(l => Op(l, operation).P99Us)):0.0}) |");
            }

            var threads = Median(mine.Select(l => (double)l.Threads));
            var own = Median(mine.Select(OwnThreads));
            report.AppendLine(CultureInfo.InvariantCulture, $" {threads:0} ({threads - stockThreads:+0;-0;0}) | {own:0} ({own - stockOwn:+0;-0;0}) |");
        }

        report.AppendLine();
        report.AppendLine("Details. p50 ratio with its distribution-free 95% confidence interval over the rounds; mean ratio: of the launches' means, median over the launches. µs: median over the launches of the percentiles of all calls of a launch. Per call, what the whole process (all threads) spent over the timed calls: CPU time (µs), bytes allocated, thread-pool work items completed, lock contentions, voluntary context switches (a thread blocking, later woken). The counts hardly depend on the machine's load; the times do.");
        report.AppendLine();
        report.AppendLine("| operation | provider | p50 ratio (95% CI) | mean ratio | mean | p50 | p90 | p99 | p99.9 | CPU µs | B | work items | lock contentions | context switches |");
        report.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var operation in operations)
        {
            foreach (var provider in providers)
            {
                var mine = Of(provider.Name);
                var ratios = P50Ratios(operation, provider.Name);
                var of = mine.Select(l => Op(l, operation)).ToList();
                report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {operation} | {provider.Name} | {Median(ratios):0.000} ({Lower(ratios):0.000} – {Upper(ratios):0.000}) | {Median(LaunchRatios(mine, stockLaunches, operation, o => o.MeanUs)):0.000} | {Median(of.Select(o => o.MeanUs)):0.0} | {Median(of.Select(o => o.P50Us)):0.0} | {Median(of.Select(o => o.P90Us)):0.0} | {Median(of.Select(o => o.P99Us)):0.0} | {Median(of.Select(o => o.P999Us)):0.0} | {Median(of.Select(o => o.CpuUsPerCall)):0.0} | {Median(of.Select(o => o.BytesPerCall)):0} | {Median(of.Select(o => o.WorkItemsPerCall)):0.00} | {Median(of.Select(o => o.LockContentionsPerCall)):0.00} | {Median(of.Select(o => o.VoluntarySwitchesPerCall)):0.00} |"));
            }
        }

        report.AppendLine();
        report.AppendLine("Threads after the warm-up, by name (first launch; `DedicatedThreads`: StackExchange.Redis's process-wide feature flag as read in that process):");
        report.AppendLine();
        report.AppendLine("| provider | what | DedicatedThreads | threads | by name |");
        report.AppendLine("| --- | --- | --- | ---: | --- |");
        foreach (var provider in providers)
        {
            var first = Of(provider.Name)[0];
            report.AppendLine(CultureInfo.InvariantCulture,
                $"| {provider.Name} | {provider.Description} | {(first.DedicatedThreadsFlag ? "on" : "off")} | {first.Threads} | {ThreadSnapshot.Describe(first.ThreadNames)} |");
        }

        report.AppendLine();
    }

    private List<WorkerResult> Of(string provider) => _launches.Where(l => l.Provider == provider).ToList();

    private static OperationResult Op(WorkerResult launch, string operation) => launch.Operations.Single(o => o.Name == operation);

    private List<double> P50Ratios(string operation, string provider) =>
        _rounds[operation].Select(r => r[provider] / r[ProcessProviders.Stock]).ToList();

    // Launches are recorded in order, one result per provider each: the i-th of a provider and of stock are one launch.
    private static List<double> LaunchRatios(List<WorkerResult> mine, List<WorkerResult> stock, string operation, Func<OperationResult, double> metric) =>
        mine.Zip(stock, (m, s) => metric(Op(m, operation)) / metric(Op(s, operation))).ToList();

    private static double OwnThreads(WorkerResult launch) => launch.Threads - launch.ThreadNames.GetValueOrDefault(".NET TP Worker");

    private static string Ratio(double ratio)
    {
        var text = string.Create(CultureInfo.InvariantCulture, $"{ratio:0.00}×");
        return ratio > 1.05 ? $"**{text}**" : text;
    }

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

    // Distribution-free 95% confidence interval of a median: the order statistics n/2 ∓ 0.98·√n.
    private static double Lower(List<double> values) =>
        values.Order().ElementAt(Math.Max(0, (int)Math.Floor((values.Count / 2.0) - (0.98 * Math.Sqrt(values.Count)))));

    private static double Upper(List<double> values) =>
        values.Order().ElementAt(Math.Min(values.Count - 1, (int)Math.Ceiling((values.Count / 2.0) + (0.98 * Math.Sqrt(values.Count)))));
}

using BenchmarkDotNet.Running;
using Resilient.Caching.Benchmarks;

// `--paired` runs the interleaved healthy-path comparison (PairedHealthyPath) instead of BenchmarkDotNet.
if (args.Contains("--paired", StringComparer.OrdinalIgnoreCase))
{
    return await PairedHealthyPath.RunAsync(args);
}

// `--processes` runs each provider alone in a process of its own (ProcessHealthyPath): a latency harness, then
// BenchmarkDotNet with one job per provider. `--process-worker` is one such process (started by it).
if (args.Contains(ProcessHealthyPath.Flag, StringComparer.OrdinalIgnoreCase))
{
    return await ProcessHealthyPath.RunAsync(args);
}

if (args.Contains(ProcessLatencyWorker.Flag, StringComparer.OrdinalIgnoreCase))
{
    return ProcessLatencyWorker.Run();
}

// `--record-memory` prints what a pending invalidation and a made-up-miss marker keep in memory (RecordMemory).
if (args.Contains("--record-memory", StringComparer.OrdinalIgnoreCase))
{
    Console.WriteLine(RecordMemory.Measure());
    return 0;
}

// `--quick` (ours, not BenchmarkDotNet's) selects a short job so that every benchmark runs in a few minutes on
// 2 cores; everything else is passed to BenchmarkDotNet (--filter, --list flat, --artifacts, …).
var quick = args.Contains("--quick", StringComparer.OrdinalIgnoreCase);
var rest = args.Where(a => !a.Equals("--quick", StringComparison.OrdinalIgnoreCase)).ToArray();
// ProcessHealthyPathBenchmarks is left out: it needs the one-job-per-provider set-up of `--processes`.
var types = typeof(BenchmarkConfig).Assembly.GetTypes()
    .Where(t => t.IsPublic && !t.IsAbstract && t != typeof(ProcessHealthyPathBenchmarks)
        && t.GetMethods().Any(m => m.IsDefined(typeof(BenchmarkDotNet.Attributes.BenchmarkAttribute), inherit: false)))
    .ToArray();
BenchmarkSwitcher.FromTypes(types).Run(rest, BenchmarkConfig.Create(quick));
return 0;

using BenchmarkDotNet.Running;
using Resilient.Caching.Benchmarks;

// `--paired` runs the interleaved healthy-path comparison (PairedHealthyPath) instead of BenchmarkDotNet.
if (args.Contains("--paired", StringComparer.OrdinalIgnoreCase))
{
    return await PairedHealthyPath.RunAsync(args);
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
BenchmarkSwitcher.FromAssembly(typeof(BenchmarkConfig).Assembly).Run(rest, BenchmarkConfig.Create(quick));
return 0;

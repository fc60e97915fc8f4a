using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using Perfolizer.Horology;
using BenchmarkDotNet.Jobs;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// The two run modes. Both use one launch per benchmark (each in its own process, with its own redis-server):
/// <list type="bullet">
/// <item><c>--quick</c>: 3 warm-up and 6 measured iterations of 200 ms — every benchmark in a few minutes on 2 cores.</item>
/// <item>default: 5 warm-up and 20 measured iterations of 400 ms — tighter confidence intervals for the committed results.</item>
/// </list>
/// A <c>--job</c> on the command line replaces either.
/// </summary>
internal static class BenchmarkConfig
{
    public static IConfig Create(bool quick)
    {
        var job = quick
            ? Job.Default.WithId("Quick").WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(6).WithIterationTime(TimeInterval.FromMilliseconds(200))
            : Job.Default.WithId("Full").WithLaunchCount(1).WithWarmupCount(5).WithIterationCount(20).WithIterationTime(TimeInterval.FromMilliseconds(400));

        return DefaultConfig.Instance
            .AddJob(job.AsDefault())
            .AddDiagnoser(MemoryDiagnoser.Default);
    }
}

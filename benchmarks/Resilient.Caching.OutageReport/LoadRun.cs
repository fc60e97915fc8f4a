using System.Diagnostics;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.Infrastructure;

namespace Resilient.Caching.OutageReport;

/// <summary>How one cache call ended, as the caller saw it.</summary>
internal enum CallOutcome : byte
{
    Hit,
    Miss,
    Write,
    Error,
}

/// <summary>One completed call: when it completed (seconds since the run started), how long it took, how it ended.</summary>
internal readonly record struct Sample(float CompletedAt, float LatencyMs, CallOutcome Outcome);

/// <summary>Settings of the workload, the same for every provider.</summary>
internal sealed record WorkloadSettings(int Callers, TimeSpan ThinkTime, int ValueBytes);

/// <summary>
/// Runs the session-like workload against one provider while the fault timeline is injected, and returns every
/// call. Each of <see cref="WorkloadSettings.Callers"/> virtual users loops over "requests": GetAsync of its
/// session, a think time (the page's own work), then SetAsync of the session (skipped when the read threw, as a
/// request that failed would). The run stops by itself at the end of the timeline; calls still blocked then are
/// given a bounded grace period and abandoned after it.
/// </summary>
internal static class LoadRun
{
    private static readonly DistributedCacheEntryOptions Session = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(20);

    public static async Task<(List<Sample> Samples, int Abandoned)> RunAsync(
        IDistributedCache cache, RedisServer redis, FaultProxy proxy, Timeline timeline, WorkloadSettings settings, Action<string> log)
    {
        var value = new byte[settings.ValueBytes];
        new Random(7).NextBytes(value);
        var clock = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(timeline.TotalSeconds);
        var perCaller = new List<Sample>[settings.Callers];
        var callers = new Task[settings.Callers];
        for (var i = 0; i < settings.Callers; i++)
        {
            var samples = perCaller[i] = new List<Sample>(capacity: 64 * 1024);
            var key = $"session:{i}";
            callers[i] = Task.Run(() => CallerAsync(cache, key, value, samples, clock, end, settings.ThinkTime));
        }

        await InjectAsync(redis, proxy, timeline, clock, log);

        var all = Task.WhenAll(callers);
        var abandoned = 0;
        try
        {
            await all.WaitAsync(Grace);
        }
        catch (TimeoutException)
        {
            abandoned = callers.Count(c => !c.IsCompleted);
            log($"    {abandoned} caller(s) still blocked {Grace.TotalSeconds:0} s after the end; abandoned");
        }

        // A caller that faulted would be a bug in the harness (every call's exception is recorded): surface it.
        var faulted = callers.FirstOrDefault(c => c.IsFaulted);
        if (faulted is not null)
        {
            throw new InvalidOperationException("A virtual user failed.", faulted.Exception);
        }

        var merged = new List<Sample>(perCaller.Sum(s => s.Count));
        foreach (var samples in perCaller)
        {
            lock (samples)
            {
                merged.AddRange(samples);
            }
        }

        merged.Sort((a, b) => a.CompletedAt.CompareTo(b.CompletedAt));
        return (merged, abandoned);
    }

    private static async Task CallerAsync(
        IDistributedCache cache, string key, byte[] value, List<Sample> samples, Stopwatch clock, TimeSpan end, TimeSpan thinkTime)
    {
        while (clock.Elapsed < end)
        {
            var started = clock.Elapsed;
            CallOutcome outcome;
            try
            {
                outcome = await cache.GetAsync(key) is null ? CallOutcome.Miss : CallOutcome.Hit;
            }
            catch (Exception)
            {
                outcome = CallOutcome.Error;
            }

            Record(samples, clock, started, outcome);
            if (outcome == CallOutcome.Error)
            {
                continue;
            }

            await Task.Delay(thinkTime);
            started = clock.Elapsed;
            try
            {
                await cache.SetAsync(key, value, Session);
                outcome = CallOutcome.Write;
            }
            catch (Exception)
            {
                outcome = CallOutcome.Error;
            }

            Record(samples, clock, started, outcome);
        }
    }

    private static void Record(List<Sample> samples, Stopwatch clock, TimeSpan started, CallOutcome outcome)
    {
        var now = clock.Elapsed;
        lock (samples)
        {
            samples.Add(new Sample((float)now.TotalSeconds, (float)(now - started).TotalMilliseconds, outcome));
        }
    }

    private static async Task InjectAsync(RedisServer redis, FaultProxy proxy, Timeline timeline, Stopwatch clock, Action<string> log)
    {
        foreach (var phase in timeline.Phases.Skip(1))
        {
            var wait = TimeSpan.FromSeconds(phase.StartSeconds) - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            switch (phase.Kind)
            {
                case PhaseKind.Killed:
                    redis.Kill();
                    break;
                case PhaseKind.Restarted:
                    await redis.RestartAsync();
                    break;
                case PhaseKind.Blackholed:
                    proxy.SetMode(FaultMode.Blackhole);
                    break;
                case PhaseKind.Healed:
                    proxy.SetMode(FaultMode.PassThrough);
                    break;
            }

            log($"    t={clock.Elapsed.TotalSeconds,5:0.0} s  {phase.Name}");
        }

        var rest = TimeSpan.FromSeconds(timeline.TotalSeconds) - clock.Elapsed;
        if (rest > TimeSpan.Zero)
        {
            await Task.Delay(rest);
        }
    }
}

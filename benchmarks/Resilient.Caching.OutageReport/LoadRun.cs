using System.Diagnostics;
using Resilient.Caching.IntegrationTests.Infrastructure;

namespace Resilient.Caching.OutageReport;

/// <summary>How one cache call ended, as the caller saw it.</summary>
internal enum CallOutcome : byte
{
    Hit,
    Miss,
    Write,
    ReadError,
    WriteError,
}

/// <summary>
/// One completed call: when it completed (seconds since the run started), how long it took, how it ended, and the
/// group of its key (in a cluster: 1 when the key lives on the shard whose primary is killed, else 0).
/// </summary>
internal readonly record struct Sample(float CompletedAt, float LatencyMs, CallOutcome Outcome, byte Group = 0)
{
    public bool IsRead => Outcome is CallOutcome.Hit or CallOutcome.Miss or CallOutcome.ReadError;

    public bool IsError => Outcome is CallOutcome.ReadError or CallOutcome.WriteError;
}

/// <summary>Settings of the workload, the same for every provider.</summary>
internal sealed record WorkloadSettings(int Callers, TimeSpan ThinkTime, int ValueBytes);

/// <summary>The key one virtual user reads and writes, and its group (see <see cref="Sample.Group"/>).</summary>
internal readonly record struct CallerKey(string Key, byte Group);

/// <summary>
/// Runs the session-like workload against one provider while the faults are injected, and returns every call and
/// what the injection saw. Each virtual user (one per key) loops over "requests": a read of its session, a think
/// time (the page's own work), then a write of the session (skipped when the read threw, as a request that failed
/// would). The run stops by itself at the end of the timeline; calls still blocked then are given a bounded grace
/// period and abandoned after it.
/// </summary>
internal static class LoadRun
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(20);

    /// <summary>A session value of <paramref name="bytes"/> bytes, the same for every provider.</summary>
    public static byte[] SessionValue(int bytes)
    {
        var value = new byte[bytes];
        new Random(7).NextBytes(value);
        return value;
    }

    public static async Task<(List<Sample> Samples, int Abandoned, IReadOnlyList<Mark> Marks)> RunAsync(
        ISessionCache cache, IReadOnlyList<CallerKey> keys, Timeline timeline, WorkloadSettings settings,
        Func<Stopwatch, Task<IReadOnlyList<Mark>>> inject, Action<string> log)
    {
        var value = SessionValue(settings.ValueBytes);
        var clock = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(timeline.TotalSeconds);
        var perCaller = new List<Sample>[keys.Count];
        var callers = new Task[keys.Count];
        for (var i = 0; i < keys.Count; i++)
        {
            var samples = perCaller[i] = new List<Sample>(capacity: 64 * 1024);
            var key = keys[i];
            callers[i] = Task.Run(() => CallerAsync(cache, key, value, samples, clock, end, settings.ThinkTime));
        }

        var marks = await inject(clock);
        var rest = end - clock.Elapsed;
        if (rest > TimeSpan.Zero)
        {
            await Task.Delay(rest);
        }

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
        return (merged, abandoned, marks);
    }

    private static async Task CallerAsync(
        ISessionCache cache, CallerKey caller, byte[] value, List<Sample> samples, Stopwatch clock, TimeSpan end, TimeSpan thinkTime)
    {
        var (key, group) = caller;
        while (clock.Elapsed < end)
        {
            var started = clock.Elapsed;
            CallOutcome outcome;
            try
            {
                outcome = await cache.ReadAsync(key) ? CallOutcome.Hit : CallOutcome.Miss;
            }
            catch (Exception)
            {
                outcome = CallOutcome.ReadError;
            }

            Record(samples, clock, started, outcome, group);
            if (outcome == CallOutcome.ReadError)
            {
                continue;
            }

            await Task.Delay(thinkTime);
            started = clock.Elapsed;
            try
            {
                await cache.WriteAsync(key, value);
                outcome = CallOutcome.Write;
            }
            catch (Exception)
            {
                outcome = CallOutcome.WriteError;
            }

            Record(samples, clock, started, outcome, group);
        }
    }

    private static void Record(List<Sample> samples, Stopwatch clock, TimeSpan started, CallOutcome outcome, byte group)
    {
        var now = clock.Elapsed;
        lock (samples)
        {
            samples.Add(new Sample((float)now.TotalSeconds, (float)(now - started).TotalMilliseconds, outcome, group));
        }
    }

    /// <summary>The single-server faults, each at the start of its phase.</summary>
    public static async Task<IReadOnlyList<Mark>> InjectSingleAsync(RedisServer redis, FaultProxy proxy, Timeline timeline, Stopwatch clock, Action<string> log)
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

        return [];
    }
}

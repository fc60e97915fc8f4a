using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Caching.Distributed;
using StackExchange.Redis;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// One process of <c>--processes</c> (started by <see cref="ProcessHealthyPath"/> as <c>--process-worker</c>): one
/// provider, named by <see cref="ProcessProviders.ProviderVariable"/>, alone in this process against the shared
/// redis-server. After a warm-up of every operation (JIT tiers, connection buffers), each operation is called
/// sequentially and every call is timed on its own (Stopwatch); the sorted durations give p50 / p90 / p99 / p99.9.
/// Also measured: the process's threads after the warm-up (count and names), CPU time and allocation per call.
/// Prints one line <c>RESULT {json}</c>.
/// </summary>
internal static class ProcessLatencyWorker
{
    public const string Flag = "--process-worker";
    public const string ResultPrefix = "RESULT ";

    private const string HitKey = "bench:process:hit";
    private const string WriteKey = "bench:process:write";

    // Bounds: no measured phase runs longer than this, whatever the call count (a slow machine gets fewer calls).
    private static readonly TimeSpan s_maxPhase = TimeSpan.FromSeconds(20);
    private static readonly DistributedCacheEntryOptions s_entry = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    public static async Task<int> RunAsync(string[] args)
    {
        var providerName = Environment.GetEnvironmentVariable(ProcessProviders.ProviderVariable)
            ?? throw new InvalidOperationException($"{ProcessProviders.ProviderVariable} is not set.");
        var redis = Environment.GetEnvironmentVariable(ProcessProviders.RedisVariable)
            ?? throw new InvalidOperationException($"{ProcessProviders.RedisVariable} is not set.");
        var calls = ProcessHealthyPath.Option(args, "--calls", 20_000);
        var warmup = TimeSpan.FromMilliseconds(ProcessHealthyPath.Option(args, "--warmup-ms", 2_000));

        var value = BenchmarkData.Value1K();
        using var provider = ProcessProviders.Open(providerName, redis);
        var cache = provider.Cache;
        cache.Set(HitKey, value, s_entry);
        if (cache.Get(HitKey)?.Length != value.Length)
        {
            throw new InvalidOperationException("The hit key could not be read back from Redis.");
        }

        Operation[] operations =
        [
            new("Get", () => cache.Get(HitKey)?.Length == value.Length, null),
            new("GetAsync", null, async () => (await cache.GetAsync(HitKey).ConfigureAwait(false))?.Length == value.Length),
            new("Set", () => { cache.Set(WriteKey, value, s_entry); return true; }, null),
            new("SetAsync", null, async () => { await cache.SetAsync(WriteKey, value, s_entry).ConfigureAwait(false); return true; }),
        ];

        // Warm-up: every operation in turn, in blocks, for the warm-up time (bounded in calls too).
        var warmupStart = Stopwatch.GetTimestamp();
        for (var block = 0; block < 1_000 && Stopwatch.GetElapsedTime(warmupStart) < warmup; block++)
        {
            foreach (var operation in operations)
            {
                for (var i = 0; i < 50; i++)
                {
                    _ = await operation.InvokeAsync().ConfigureAwait(false);
                }
            }
        }

        var threads = ThreadSnapshot.Take();
        var measured = new List<OperationResult>();
        foreach (var operation in operations)
        {
            measured.Add(operation.Sync is { } sync ? Measure(operation.Name, sync, calls) : await MeasureAsync(operation.Name, operation.Async!, calls).ConfigureAwait(false));
        }

        if (provider.Availability is { Outages: > 0 } availability)
        {
            throw new InvalidOperationException($"The unavailable window opened {availability.Outages} time(s) during a healthy-path run: the figures are not valid.");
        }

        var result = new WorkerResult(
            providerName,
            Environment.ProcessId,
            Shared.MachineInfo.LoadAverage,
            threads.Count,
            Process.GetCurrentProcess().Threads.Count,
            threads.Names,
            ConnectionMultiplexer.GetFeatureFlag(Connection.RedisConnection.DedicatedThreadsFlag),
            measured);
        Console.WriteLine(ResultPrefix + JsonSerializer.Serialize(result));
        return 0;
    }

    private static OperationResult Measure(string name, Func<bool> call, int calls)
    {
        var samples = new long[calls];
        var wrong = 0;
        var before = Counters.Take();
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(s_maxPhase.TotalSeconds * Stopwatch.Frequency);
        var n = 0;
        while (n < calls)
        {
            var callStart = Stopwatch.GetTimestamp();
            if (!call())
            {
                wrong++;
            }

            var after = Stopwatch.GetTimestamp();
            samples[n++] = after - callStart;
            if (after > deadline)
            {
                break;
            }
        }

        return Summarise(name, samples, n, wrong, start, before);
    }

    private static async Task<OperationResult> MeasureAsync(string name, Func<ValueTask<bool>> call, int calls)
    {
        var samples = new long[calls];
        var wrong = 0;
        var before = Counters.Take();
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(s_maxPhase.TotalSeconds * Stopwatch.Frequency);
        var n = 0;
        while (n < calls)
        {
            var callStart = Stopwatch.GetTimestamp();
            if (!await call().ConfigureAwait(false))
            {
                wrong++;
            }

            var after = Stopwatch.GetTimestamp();
            samples[n++] = after - callStart;
            if (after > deadline)
            {
                break;
            }
        }

        return Summarise(name, samples, n, wrong, start, before);
    }

    private static OperationResult Summarise(string name, long[] samples, int n, int wrong, long start, Counters before)
    {
        var elapsed = Stopwatch.GetElapsedTime(start);
        var used = Counters.Take() - before;
        if (wrong > 0)
        {
            throw new InvalidOperationException($"{name}: {wrong} of {n} calls did not return the 1 KB value (a miss on the healthy path).");
        }

        Array.Sort(samples, 0, n);
        var sorted = samples;
        var toMicroseconds = 1_000_000.0 / Stopwatch.Frequency;

        // Nearest rank: the smallest duration with at least q of the calls at or below it.
        double At(double q) => sorted[Math.Clamp((int)Math.Ceiling(q * n) - 1, 0, n - 1)] * toMicroseconds;
        return new OperationResult(
            name,
            n,
            elapsed.TotalMicroseconds / n,
            At(0.50),
            At(0.90),
            At(0.99),
            At(0.999),
            sorted[n - 1] * toMicroseconds,
            used.Cpu.TotalMicroseconds / n,
            (double)used.Bytes / n,
            (double)used.WorkItems / n,
            (double)used.LockContentions / n,
            (double)used.VoluntarySwitches / n);
    }

    private sealed record Operation(string Name, Func<bool>? Sync, Func<ValueTask<bool>>? Async)
    {
        public ValueTask<bool> InvokeAsync() => Sync is { } sync ? new(sync()) : Async!();
    }
}

/// <summary>What one worker process measured.</summary>
internal sealed record WorkerResult(
    string Provider,
    int ProcessId,
    string LoadAverage,
    int Threads,
    int ThreadsAtEnd,
    IReadOnlyDictionary<string, int> ThreadNames,
    bool DedicatedThreadsFlag,
    IReadOnlyList<OperationResult> Operations);

/// <summary>
/// One operation's per-call latencies (µs; nearest-rank percentiles) and, per call, what the whole process spent:
/// CPU time, bytes allocated, thread-pool work items completed, lock contentions, voluntary context switches (a
/// thread blocking; Linux). The counts depend far less on the machine's load than the times do.
/// </summary>
internal sealed record OperationResult(
    string Name,
    int Calls,
    double MeanUs,
    double P50Us,
    double P90Us,
    double P99Us,
    double P999Us,
    double MaxUs,
    double CpuUsPerCall,
    double BytesPerCall,
    double WorkItemsPerCall,
    double LockContentionsPerCall,
    double VoluntarySwitchesPerCall);

/// <summary>Process-wide counters, read before and after a measured phase.</summary>
internal readonly record struct Counters(TimeSpan Cpu, long Bytes, long WorkItems, long LockContentions, long VoluntarySwitches)
{
    public static Counters Take() => new(
        Process.GetCurrentProcess().TotalProcessorTime,
        GC.GetTotalAllocatedBytes(precise: true),
        ThreadPool.CompletedWorkItemCount,
        Monitor.LockContentionCount,
        VoluntarySwitchesOfAllThreads());

    public static Counters operator -(Counters after, Counters before) => new(
        after.Cpu - before.Cpu,
        after.Bytes - before.Bytes,
        after.WorkItems - before.WorkItems,
        after.LockContentions - before.LockContentions,
        after.VoluntarySwitches - before.VoluntarySwitches);

    // The sum over the live threads of /proc/self/task/*/status "voluntary_ctxt_switches" (0 where there is no /proc).
    private static long VoluntarySwitchesOfAllThreads()
    {
        const string tasks = "/proc/self/task";
        if (!Directory.Exists(tasks))
        {
            return 0;
        }

        long sum = 0;
        foreach (var task in Directory.EnumerateDirectories(tasks))
        {
            try
            {
                foreach (var line in File.ReadLines(Path.Combine(task, "status")))
                {
                    if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal))
                    {
                        sum += long.Parse(line.AsSpan("voluntary_ctxt_switches:".Length).Trim(), CultureInfo.InvariantCulture);
                        break;
                    }
                }
            }
            catch (IOException)
            {
                // The thread ended meanwhile.
            }
        }

        return sum;
    }
}

/// <summary>The threads of this process now: how many, and how many of each name (Linux: /proc/self/task/*/comm).</summary>
internal sealed record ThreadSnapshot(int Count, IReadOnlyDictionary<string, int> Names)
{
    public static ThreadSnapshot Take()
    {
        var names = new SortedDictionary<string, int>(StringComparer.Ordinal);
        const string tasks = "/proc/self/task";
        if (Directory.Exists(tasks))
        {
            foreach (var task in Directory.EnumerateDirectories(tasks))
            {
                string name;
                try
                {
                    // The main thread's name is the program's (truncated to 15 characters, as every name here).
                    name = Path.GetFileName(task) == Environment.ProcessId.ToString(CultureInfo.InvariantCulture)
                        ? "main"
                        : File.ReadAllText(Path.Combine(task, "comm")).Trim();
                }
                catch (IOException)
                {
                    continue; // The thread ended meanwhile.
                }

                names[name] = names.GetValueOrDefault(name) + 1;
            }
        }

        var count = names.Count > 0 ? names.Values.Sum() : Process.GetCurrentProcess().Threads.Count;
        return new ThreadSnapshot(count, names);
    }

    public static string Describe(IReadOnlyDictionary<string, int> names) =>
        string.Join(", ", names.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => p.Value == 1 ? p.Key : string.Create(CultureInfo.InvariantCulture, $"{p.Key} ×{p.Value}")));
}

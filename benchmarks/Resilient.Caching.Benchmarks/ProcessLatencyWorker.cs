using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Caching.Distributed;
using StackExchange.Redis;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// One process of <c>--processes</c> (started by <see cref="ProcessHealthyPath"/> as <c>--process-worker</c>): one
/// provider, named by <see cref="ProcessProviders.ProviderVariable"/>, alone in this process against the shared
/// redis-server. It does nothing until told, one line on standard input at a time, and answers one line each:
/// <list type="bullet">
/// <item><c>warm MS</c>: every operation in turn for MS milliseconds (JIT tiers, connection buffers); answers the
/// threads then (JSON).</item>
/// <item><c>block OP N</c>: on a thread-pool thread (where a web request runs), 10 untimed calls, then N sequential
/// calls of OP, each timed on its own (Stopwatch); answers the block's mean and median (ns). The durations are kept
/// for the summary.</item>
/// <item><c>summary</c>: per operation, the percentiles of every timed call so far and what the process spent per call
/// (JSON, <see cref="WorkerResult"/>).</item>
/// </list>
/// It ends at end of input (the coordinator closes it, or dies). Every block is bounded in calls and in time.
/// </summary>
internal static class ProcessLatencyWorker
{
    public const string Flag = "--process-worker";

    /// <summary>"main": the synchronous operations run on the worker's main thread rather than on a pool thread.</summary>
    public const string SyncThreadVariable = "BENCH_SYNC_THREAD";

    public static readonly string[] Operations = ["Get", "GetAsync", "Set", "SetAsync"];

    private const string HitKey = "bench:process:hit";
    private const string WriteKey = "bench:process:write";
    private const int MaxCallsPerBlock = 100_000;

    private static readonly TimeSpan s_maxBlock = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_maxWarmup = TimeSpan.FromSeconds(30);
    private static readonly DistributedCacheEntryOptions s_entry = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    public static int Run()
    {
        var providerName = Environment.GetEnvironmentVariable(ProcessProviders.ProviderVariable)
            ?? throw new InvalidOperationException($"{ProcessProviders.ProviderVariable} is not set.");
        var redis = Environment.GetEnvironmentVariable(ProcessProviders.RedisVariable)
            ?? throw new InvalidOperationException($"{ProcessProviders.RedisVariable} is not set.");

        var value = BenchmarkData.Value1K();
        using var provider = ProcessProviders.Open(providerName, redis);
        var cache = provider.Cache;
        cache.Set(HitKey, value, s_entry);
        if (cache.Get(HitKey)?.Length != value.Length)
        {
            throw new InvalidOperationException("The hit key could not be read back from Redis.");
        }

        var operations = new Dictionary<string, Operation>(StringComparer.Ordinal)
        {
            ["Get"] = new(() => cache.Get(HitKey)?.Length == value.Length, null),
            ["GetAsync"] = new(null, async () => (await cache.GetAsync(HitKey).ConfigureAwait(false))?.Length == value.Length),
            ["Set"] = new(() => { cache.Set(WriteKey, value, s_entry); return true; }, null),
            ["SetAsync"] = new(null, async () => { await cache.SetAsync(WriteKey, value, s_entry).ConfigureAwait(false); return true; }),
        };
        var threads = ThreadSnapshot.Take();
        var syncOnMain = Environment.GetEnvironmentVariable(SyncThreadVariable) == "main";

        Console.WriteLine("ready");
        while (Console.ReadLine() is { } line)
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            switch (words)
            {
                case ["warm", var ms]:
                    var warmup = TimeSpan.FromMilliseconds(Math.Min(int.Parse(ms, CultureInfo.InvariantCulture), s_maxWarmup.TotalMilliseconds));
                    Task.Run(async () =>
                    {
                        var start = Stopwatch.GetTimestamp();
                        for (var round = 0; round < 10_000 && Stopwatch.GetElapsedTime(start) < warmup; round++)
                        {
                            foreach (var operation in operations.Values)
                            {
                                for (var i = 0; i < 50; i++)
                                {
                                    _ = await operation.InvokeAsync().ConfigureAwait(false);
                                }
                            }
                        }
                    }).GetAwaiter().GetResult();
                    threads = ThreadSnapshot.Take();
                    Console.WriteLine(JsonSerializer.Serialize(threads));
                    break;
                case ["block", var name, var count]:
                    // On a pool thread, as a request of a web application runs, synchronous calls as asynchronous ones;
                    // with BENCH_SYNC_THREAD=main the synchronous calls run on the main thread (as BenchmarkDotNet runs them).
                    var calls = Math.Min(int.Parse(count, CultureInfo.InvariantCulture), MaxCallsPerBlock);
                    var operation = operations[name];
                    var (mean, median) = (operation.IsSync && syncOnMain ? operation.BlockAsync(calls) : Task.Run(() => operation.BlockAsync(calls))).GetAwaiter().GetResult();
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{mean:0.0} {median:0.0}"));
                    break;
                case ["summary"]:
                    if (provider.Availability is { Outages: > 0 } availability)
                    {
                        throw new InvalidOperationException($"The unavailable window opened {availability.Outages} time(s) during a healthy-path run: the figures are not valid.");
                    }

                    var result = new WorkerResult(
                        providerName,
                        Environment.ProcessId,
                        threads.Count,
                        threads.Names,
                        ConnectionMultiplexer.GetFeatureFlag(Connection.RedisConnection.DedicatedThreadsFlag),
                        operations.Where(o => o.Value.Calls > 0).Select(o => o.Value.Summarise(o.Key)).ToList());
                    Console.WriteLine(JsonSerializer.Serialize(result));
                    break;
                default:
                    throw new InvalidOperationException($"Unknown command '{line}'.");
            }
        }

        return 0;
    }

    private sealed class Operation(Func<bool>? sync, Func<ValueTask<bool>>? async)
    {
        private readonly List<long> _samples = [];
        private Counters _spent;

        public int Calls => _samples.Count;

        public bool IsSync => sync is not null;

        public ValueTask<bool> InvokeAsync() => sync is not null ? new(sync()) : async!();

        /// <summary>Runs one block; returns its mean and median, ns per call.</summary>
        public async Task<(double Mean, double Median)> BlockAsync(int calls)
        {
            for (var i = 0; i < 10; i++)
            {
                _ = await InvokeAsync().ConfigureAwait(false);
            }

            var samples = new long[calls];
            var before = Counters.Take();

            // Read last before the calls and first after them: reading the other counters allocates.
            var bytesBefore = GC.GetTotalAllocatedBytes(precise: true);
            var start = Stopwatch.GetTimestamp();
            var n = sync is not null ? Time(sync, samples) : await TimeAsync(async!, samples).ConfigureAwait(false);
            var elapsed = Stopwatch.GetElapsedTime(start);
            var bytes = GC.GetTotalAllocatedBytes(precise: true) - bytesBefore;
            _spent += (Counters.Take() - before) with { Bytes = bytes };
            _samples.AddRange(samples.AsSpan(0, n));
            Array.Sort(samples, 0, n);
            return (elapsed.TotalNanoseconds / n, samples[n / 2] * 1e9 / Stopwatch.Frequency);
        }

        public OperationResult Summarise(string name)
        {
            var sorted = _samples.ToArray();
            Array.Sort(sorted);
            var n = sorted.Length;
            var toMicroseconds = 1_000_000.0 / Stopwatch.Frequency;

            // Nearest rank: the smallest duration with at least q of the calls at or below it.
            double At(double q) => sorted[Math.Clamp((int)Math.Ceiling(q * n) - 1, 0, n - 1)] * toMicroseconds;
            return new OperationResult(
                name,
                n,
                sorted.Sum(static s => (double)s) * toMicroseconds / n,
                At(0.50),
                At(0.90),
                At(0.99),
                At(0.999),
                sorted[n - 1] * toMicroseconds,
                _spent.Cpu.TotalMicroseconds / n,
                (double)_spent.Bytes / n,
                (double)_spent.WorkItems / n,
                (double)_spent.LockContentions / n,
                (double)_spent.VoluntarySwitches / n);
        }

        private static int Time(Func<bool> call, long[] samples)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(s_maxBlock.TotalSeconds * Stopwatch.Frequency);
            var n = 0;
            while (n < samples.Length)
            {
                var before = Stopwatch.GetTimestamp();
                var right = call();
                var after = Stopwatch.GetTimestamp();
                Check(right);
                samples[n++] = after - before;
                if (after > deadline)
                {
                    break;
                }
            }

            return n;
        }

        private static async Task<int> TimeAsync(Func<ValueTask<bool>> call, long[] samples)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(s_maxBlock.TotalSeconds * Stopwatch.Frequency);
            var n = 0;
            while (n < samples.Length)
            {
                var before = Stopwatch.GetTimestamp();
                var right = await call().ConfigureAwait(false);
                var after = Stopwatch.GetTimestamp();
                Check(right);
                samples[n++] = after - before;
                if (after > deadline)
                {
                    break;
                }
            }

            return n;
        }

        private static void Check(bool right)
        {
            if (!right)
            {
                throw new InvalidOperationException("A read did not return the 1 KB value (a miss on the healthy path): the figures are not valid.");
            }
        }
    }
}

/// <summary>What one worker process measured: its threads after the warm-up, the flag as read in it, and every operation.</summary>
internal sealed record WorkerResult(
    string Provider,
    int ProcessId,
    int Threads,
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

/// <summary>Process-wide counters, read before and after a measured block.</summary>
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

    public static Counters operator +(Counters a, Counters b) => new(
        a.Cpu + b.Cpu,
        a.Bytes + b.Bytes,
        a.WorkItems + b.WorkItems,
        a.LockContentions + b.LockContentions,
        a.VoluntarySwitches + b.VoluntarySwitches);

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

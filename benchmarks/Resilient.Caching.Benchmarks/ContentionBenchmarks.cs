using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.Benchmarks.Shared;
using Resilient.Caching.Outages;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// The window check under contention: <see cref="Threads"/> dedicated threads call the short-circuited
/// <see cref="IDistributedCache.Get"/> together, <see cref="TotalCalls"/> calls per invocation split evenly among
/// them. Mean is wall time per call over all threads (so with 2 cores, 2+ threads ideally halve it); the CPU time
/// each call costs is Mean × min(Threads, cores). A shared cache line that every call writes would show as a CPU
/// time per call that grows with the thread count: <c>SharedCounter</c> is that control (one
/// <see cref="Interlocked.Increment(ref long)"/> on a shared field per call), to show the harness can see it.
/// </summary>
/// <remarks>
/// States: <c>Open</c> — inside the window (one volatile read, a timestamp, the striped skip counter);
/// <c>Probing</c> — the window has elapsed and one probe is in flight, so every other caller short-circuits after a
/// failed <see cref="Interlocked.CompareExchange(ref int, int, int)"/> on the probe flag.
/// </remarks>
[MemoryDiagnoser]
public class ContentionBenchmarks
{
    public const int TotalCalls = 1 << 20;

    private const string Key = "bench:key";

    private Worker[] _workers = [];
    private Barrier _start = null!;
    private Barrier _done = null!;
    private ResilientProvider _ours = null!;
    private long _shared;
    private volatile bool _stopping;

    public enum Scenario
    {
        Open,
        Probing,
        SharedCounter,
    }

    [Params(1, 2, 4, 8)]
    public int Threads { get; set; }

    [Params(Scenario.Open, Scenario.Probing, Scenario.SharedCounter)]
    public Scenario State { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var time = new AdjustableTimeProvider();
        _ours = CacheProviders.CreateResilient(ClosedPort.Configuration, o => o.UnavailableWindow = TimeSpan.FromSeconds(10), time);
        ClosedPort.OpenWindow(_ours);
        if (State == Scenario.Probing)
        {
            // The window elapses and one caller takes the probe and keeps it: the others short-circuit on the flag.
            time.Advance(TimeSpan.FromSeconds(11));
            if (ClosedPort.ControllerOf(_ours).TryEnter() != WindowController.Gate.StartProbe)
            {
                throw new InvalidOperationException("The probe could not be taken.");
            }
        }

        _start = new Barrier(Threads + 1);
        _done = new Barrier(Threads + 1);
        var perThread = TotalCalls / Threads;
        _workers = new Worker[Threads];
        for (var i = 0; i < Threads; i++)
        {
            _workers[i] = new Worker(this, perThread, State);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stopping = true;
        _start.SignalAndWait();
        foreach (var worker in _workers)
        {
            worker.Thread.Join();
        }

        var available = _ours.Availability.IsAvailable;
        _ours.Dispose();
        _start.Dispose();
        _done.Dispose();
        if (available)
        {
            throw new InvalidOperationException("The window closed during the run: the figures are not short-circuit figures.");
        }
    }

    [Benchmark(OperationsPerInvoke = TotalCalls)]
    public void Get()
    {
        _start.SignalAndWait();
        _done.SignalAndWait();
    }

    private sealed class Worker
    {
        public Worker(ContentionBenchmarks owner, int calls, Scenario scenario)
        {
            Thread = new Thread(() => Run(owner, calls, scenario)) { IsBackground = true, Name = "contention worker" };
            Thread.Start();
        }

        public Thread Thread { get; }

        private static void Run(ContentionBenchmarks owner, int calls, Scenario scenario)
        {
            var cache = owner._ours.Cache;
            while (true)
            {
                owner._start.SignalAndWait();
                if (owner._stopping)
                {
                    return;
                }

                if (scenario == Scenario.SharedCounter)
                {
                    for (var i = 0; i < calls; i++)
                    {
                        Interlocked.Increment(ref owner._shared);
                    }
                }
                else
                {
                    for (var i = 0; i < calls; i++)
                    {
                        if (cache.Get(Key) is not null)
                        {
                            throw new UnreachableException("A short-circuited Get returned a value.");
                        }
                    }
                }

                owner._done.SignalAndWait();
            }
        }
    }

    /// <summary>The system clock plus an offset the benchmark moves forward to let the window elapse.</summary>
    private sealed class AdjustableTimeProvider : TimeProvider
    {
        private long _offset;

        public override long GetTimestamp() => Stopwatch.GetTimestamp() + Volatile.Read(ref _offset);

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + TimeSpan.FromSeconds((double)Volatile.Read(ref _offset) / Stopwatch.Frequency);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _offset, (long)(by.TotalSeconds * Stopwatch.Frequency));
    }
}

using System.Globalization;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.Benchmarks.Shared;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// What remembering a write costs on the window-open path (target ≤ 100 ns and 0 bytes for a key already recorded),
/// next to what that path costs today: a skipped <c>Set</c> inside the window (the baseline, as in
/// <see cref="ShortCircuitBenchmarks"/>). Keys look like session ids (36 characters). Also the made-up-miss markers:
/// marking a marked key, asking about it, and what the healthy path pays while nothing is marked.
/// </summary>
[MemoryDiagnoser]
public class RecordingBenchmarks
{
    private const int NewKeys = 100_000;
    private static readonly DistributedCacheEntryOptions Entry = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    private readonly byte[] _value = BenchmarkData.Value1K();
    private readonly string _key = Guid.NewGuid().ToString();
    private readonly string _unmarked = Guid.NewGuid().ToString();
    private string[] _newKeys = null!;
    private PendingInvalidations _pending = null!;
    private PendingInvalidations _nothingMarked = null!;
    private ResilientProvider _ours = null!;
    private IDistributedCache _cache = null!;

    [GlobalSetup]
    public void Setup()
    {
        _newKeys = RecordMemory.SessionKeys(NewKeys);
        _pending = Create(NewKeys);
        _pending.Record(KeyKind.CacheKey, _key);
        _pending.Misses.Mark(_key);
        _nothingMarked = Create(NewKeys);
        _ours = CacheProviders.CreateResilient(ClosedPort.Configuration, o => o.UnavailableWindow = TimeSpan.FromDays(1));
        _cache = _ours.Cache;
        ClosedPort.OpenWindow(_ours);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        var available = _ours.Availability.IsAvailable;
        _ours.Dispose();
        if (available)
        {
            throw new InvalidOperationException("The window closed during the run: the baseline is not a short-circuit figure.");
        }
    }

    [Benchmark(Baseline = true)]
    public void SkippedSet() => _cache.Set(_key, _value, Entry);

    [Benchmark]
    public int RecordExistingKey() => (int)_pending.Record(KeyKind.CacheKey, _key);

    /// <summary>100,000 distinct keys into an empty store (growth included): per record, time and bytes.</summary>
    [Benchmark(OperationsPerInvoke = NewKeys)]
    public int RecordNewKey()
    {
        var pending = Create(NewKeys);
        foreach (var key in _newKeys)
        {
            pending.Record(KeyKind.CacheKey, key);
        }

        return pending.Count;
    }

    [Benchmark]
    public int MarkMarkedMiss() => (int)_pending.Misses.Mark(_key);

    [Benchmark]
    public bool IsMarked_Marked() => _pending.Misses.IsMarked(_key);

    /// <summary>The healthy path's query before a write when no outage left a marker.</summary>
    [Benchmark]
    public bool IsMarked_NothingMarked() => _nothingMarked.Misses.IsMarked(_unmarked);

    /// <summary>The healthy path's clear after a real read when no outage left a marker.</summary>
    [Benchmark]
    public void Clear_NothingMarked() => _nothingMarked.Misses.Clear(_unmarked);

    private static PendingInvalidations Create(int capacity) =>
        new(capacity, new StoredKeys("app:"), purgeOnOverflow: false, TimeSpan.FromMinutes(5), TimeProvider.System);
}

/// <summary>
/// Memory a record keeps (<c>--record-memory</c>): the heap before and after 100,000 records, with the keys held
/// elsewhere, so the figure is the bookkeeping alone; a key the application would otherwise drop is kept alive too.
/// </summary>
internal static class RecordMemory
{
    public static string[] SessionKeys(int count) =>
        Enumerable.Range(0, count).Select(_ => Guid.NewGuid().ToString()).ToArray();

    public static string Measure(int count = 100_000)
    {
        var keys = SessionKeys(count);
        var pending = Measure(keys, (p, key) => p.Record(KeyKind.CacheKey, key), out var recordBytes, out var recordAllocated);
        var misses = Measure(keys, (p, key) => p.Misses.Mark(key), out var markerBytes, out var markerAllocated);
        GC.KeepAlive(pending);
        GC.KeepAlive(misses);

        // A string on 64-bit: header, method table, length, the characters and a terminator, rounded up to 8 bytes.
        var keyBytes = (8 + 8 + 4 + (2 * (keys[0].Length + 1)) + 7) / 8 * 8;
        return string.Create(CultureInfo.InvariantCulture, $"""
            {count:N0} records of {keys[0].Length}-character keys (.NET {Environment.Version}, 64-bit):
            - pending invalidation: {recordBytes / (double)count:0.0} bytes retained per record ({recordAllocated / (double)count:0.0} allocated while growing), besides the key
            - made-up-miss marker: {markerBytes / (double)count:0.0} bytes retained per marker ({markerAllocated / (double)count:0.0} allocated while growing), besides the key
            - the key itself, when only the record keeps it alive: {keyBytes} bytes
            """);
    }

    private static PendingInvalidations Measure(string[] keys, Action<PendingInvalidations, string> add, out long retained, out long allocated)
    {
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var pending = new PendingInvalidations(keys.Length, new StoredKeys("app:"), purgeOnOverflow: false, TimeSpan.FromMinutes(5), TimeProvider.System);
        foreach (var key in keys)
        {
            add(pending, key);
        }

        allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        retained = GC.GetTotalMemory(forceFullCollection: true) - before;
        return pending;
    }
}

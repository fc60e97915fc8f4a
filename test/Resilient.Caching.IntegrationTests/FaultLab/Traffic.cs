using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Caching.Distributed;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>What one cache call did, as the caller saw it.</summary>
internal enum CallOutcome
{
    Hit,
    Miss,
    Write,
    Error,
}

/// <summary>
/// One call: when it started (since the traffic began), how long it took, what it returned. Also the key and its
/// shard, whether the synchronous API made it, and the value a hit read.
/// </summary>
internal sealed record Sample(int Worker, TimeSpan At, TimeSpan Elapsed, string Operation, CallOutcome Outcome, Exception? Error)
{
    public string Key { get; init; } = string.Empty;

    /// <summary>The shard of the key, as the key set names it (0 for a worker's own keys).</summary>
    public int Shard { get; init; }

    public bool Sync { get; init; }

    /// <summary>What a read that hit returned; null otherwise.</summary>
    public byte[]? Value { get; init; }

    public TimeSpan End => At + Elapsed;

    /// <summary>A Set (a worker's write, or the write-back of a missed key), whatever it returned.</summary>
    public bool Write => Operation == "Set";

    public bool Hit => Outcome == CallOutcome.Hit;

    public override string ToString() =>
        $"{At.TotalMilliseconds,7:0} ms w{Worker} {Operation,-4} {Outcome,-5} {Elapsed.TotalMilliseconds,6:0} ms{(Error is null ? string.Empty : " " + Error.GetType().Name + ": " + Error.Message.Split('\n')[0])}";
}

/// <summary>What a <see cref="Traffic"/> runs: how many callers on each API, which keys, how fast, for how long.</summary>
internal sealed record TrafficOptions
{
    public int AsyncWorkers { get; init; }

    /// <summary>Callers of the synchronous API, each on a thread of its own; numbered after the asynchronous ones.</summary>
    public int SyncWorkers { get; init; }

    /// <summary>
    /// Null: each caller writes a key of its own, then reads it back (so a healthy cache hits), over four keys under
    /// <see cref="Prefix"/>, or only writes (<see cref="WritesOnly"/>). A key set: each caller only reads, key
    /// <c>(worker × Order.Start + i × Order.Step) mod count</c> at its i-th call, so each goes round in an order of its own.
    /// </summary>
    public IReadOnlyList<(string Key, int Shard)>? Keys { get; init; }

    public (int Start, int Step) Order { get; init; } = (7, 1);

    /// <summary>With a key set: on a miss, the caller writes back the value this gives for the key (cache-aside).</summary>
    public Func<string, byte[]>? WriteBack { get; init; }

    public bool WritesOnly { get; init; }

    public string Prefix { get; init; } = "lab";

    public TimeSpan Pause { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>The callers stop by this time whatever happens.</summary>
    public TimeSpan Limit { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>And after this many turns each (a turn: one call, or a read and its write-back).</summary>
    public int MaxTurns { get; init; } = 20_000;

    /// <summary>
    /// True: calls pass a cancellable token, as an application passes the request's (the caller-token path of the
    /// cache); false: <see cref="CancellationToken.None"/>.
    /// </summary>
    public bool CancellableCalls { get; init; } = true;
}

/// <summary>
/// Application traffic against a cache: a few callers on the synchronous or asynchronous API, each writing then
/// reading its own keys in a loop, or reading a set of keys (writing a missed one back if asked), with a short pause
/// between calls. Bounded in time and count; every call is recorded. Exceptions are recorded, not thrown, so the same
/// driver measures the stock provider. <see cref="Hold"/> stops the callers between two calls (to read server
/// statistics at a quiet moment) until <see cref="Release"/>.
/// </summary>
internal sealed class Traffic : IAsyncDisposable
{
    private static readonly DistributedCacheEntryOptions NoExpiry = new();

    private readonly IDistributedCache _cache;
    private readonly TrafficOptions _options;
    private readonly ConcurrentQueue<Sample> _samples = new();
    private readonly CancellationTokenSource _stop;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Task[] _workers;
    private readonly CancellationToken _callerToken;
    private int _inCall;
    private int _held;
    private Func<bool>? _holdWhen;

    private Traffic(IDistributedCache cache, TrafficOptions options)
    {
        _cache = cache;
        _options = options;
        _callerToken = options.CancellableCalls ? Lab.Ct : CancellationToken.None;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(Lab.Ct);
        _stop.CancelAfter(options.Limit);

        // Synchronous callers get threads of their own: blocked pool threads would starve the thread pool of the whole
        // (parallel) test run, and the replies StackExchange.Redis reads on it would then look like Redis timeouts.
        // Their loop never awaits anything unfinished, so it runs to the end on that thread.
        _workers =
        [
            .. Enumerable.Range(0, options.AsyncWorkers).Select(w => Task.Run(() => RunAsync(w, sync: false))),
            .. Enumerable.Range(options.AsyncWorkers, options.SyncWorkers).Select(w => Task.Factory.StartNew(
                () => RunAsync(w, sync: true).GetAwaiter().GetResult(), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)),
        ];
    }

    /// <summary>Time since the traffic started, on the clock the samples use.</summary>
    public TimeSpan Now => _clock.Elapsed;

    /// <summary>Every call so far, in the order they started.</summary>
    public IReadOnlyList<Sample> Samples => [.. _samples.OrderBy(s => s.At)];

    /// <summary>The value a key of a key set holds: stored before the traffic, and what a write-back writes unless told otherwise.</summary>
    public static byte[] ValueOf(string key) => Lab.Bytes("value of " + key);

    /// <summary>
    /// Starts <paramref name="workers"/> callers using the synchronous or asynchronous API (Set and Get in turn, or
    /// only Set). They stop on <see cref="StopAsync"/>, after <paramref name="limit"/> (default 60 s) or after
    /// 20 000 calls each.
    /// </summary>
    public static Traffic Start(
        IDistributedCache cache, bool async, int workers = 2, bool writesOnly = false, TimeSpan? pause = null, TimeSpan? limit = null, string prefix = "lab") =>
        Start(cache, new TrafficOptions
        {
            AsyncWorkers = async ? workers : 0,
            SyncWorkers = async ? 0 : workers,
            WritesOnly = writesOnly,
            Pause = pause ?? TimeSpan.FromMilliseconds(10),
            Limit = limit ?? TimeSpan.FromSeconds(60),
            Prefix = prefix,
        });

    public static Traffic Start(IDistributedCache cache, TrafficOptions options) => new(cache, options);

    /// <summary>Callers make no new call until <see cref="Release"/> (a call already under way completes).</summary>
    // Interlocked on both sides (here and around _inCall) so a hold and a starting call never miss each other.
    public void Hold() => Interlocked.Exchange(ref _held, 1);

    public void Release() => Interlocked.Exchange(ref _held, 0);

    /// <summary>
    /// Callers hold themselves (as <see cref="Hold"/>) once <paramref name="condition"/> is true: each caller asks it
    /// right before each call, so the hold follows the state it watches within one call per caller, however late a
    /// notification of that state would arrive on a loaded machine. Null stops asking.
    /// </summary>
    public void HoldWhen(Func<bool>? condition) => Volatile.Write(ref _holdWhen, condition);

    /// <summary>Holds the callers and waits until none is inside a call.</summary>
    public async Task HoldAndDrainAsync(TimeSpan timeout)
    {
        Hold();
        Assert.True(await Lab.EventuallyAsync(() => Volatile.Read(ref _inCall) == 0, timeout), "a cache call did not return");
    }

    /// <summary>Waits until a call started at or after <paramref name="after"/> matches; returns it, or null on time-out.</summary>
    public async Task<Sample?> WaitForAsync(Func<Sample, bool> match, TimeSpan after, TimeSpan timeout)
    {
        Sample? found = null;
        await Lab.EventuallyAsync(() => (found = _samples.FirstOrDefault(s => s.At >= after && match(s))) is not null, timeout);
        return found;
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers).WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }

    public string Describe(TimeSpan from, TimeSpan to) =>
        string.Join('\n', Samples.Where(s => s.At >= from && s.At <= to).Select(s => s.ToString()));

    /// <summary>One caller's loop, for either API: a synchronous caller's calls and pauses complete before they return.</summary>
    private async Task RunAsync(int worker, bool sync)
    {
        var token = _stop.Token;
        for (var i = 0; i < _options.MaxTurns && !token.IsCancellationRequested; i++)
        {
            while (Volatile.Read(ref _held) == 1 && !token.IsCancellationRequested)
            {
                await PauseAsync(TimeSpan.FromMilliseconds(5), sync, token);
            }

            if (!TryEnter())
            {
                i--;
                continue;
            }

            var (key, shard, write, value) = Next(worker, i);
            var call = await CallAsync(worker, sync, key, shard, write, value);
            if (call.Outcome == CallOutcome.Miss && _options.WriteBack is { } writeBack)
            {
                // The "load": the value computed from the source, then written back.
                if (!sync)
                {
                    await Task.Yield();
                }

                await CallAsync(worker, sync, key, shard, write: true, writeBack(key));
            }

            Interlocked.Decrement(ref _inCall);
            if (!await PauseAsync(_options.Pause, sync, token))
            {
                return;
            }
        }
    }

    private async ValueTask<Sample> CallAsync(int worker, bool sync, string key, int shard, bool write, byte[] value)
    {
        var at = _clock.Elapsed;
        var outcome = CallOutcome.Write;
        byte[]? read = null;
        Exception? error = null;
        try
        {
            if (write && sync)
            {
                _cache.Set(key, value, NoExpiry);
            }
            else if (write)
            {
                await _cache.SetAsync(key, value, NoExpiry, _callerToken);
            }
            else
            {
                read = sync ? _cache.Get(key) : await _cache.GetAsync(key, _callerToken);
                outcome = read is null ? CallOutcome.Miss : CallOutcome.Hit;
            }
        }
        catch (Exception exception)
        {
            (outcome, error) = (CallOutcome.Error, exception);
        }

        var sample = new Sample(worker, at, _clock.Elapsed - at, write ? "Set" : "Get", outcome, error) { Key = key, Shard = shard, Sync = sync, Value = read };
        _samples.Enqueue(sample);
        return sample;
    }

    /// <summary>Waits <paramref name="pause"/>; false if <paramref name="token"/> stopped it.</summary>
    private static async ValueTask<bool> PauseAsync(TimeSpan pause, bool sync, CancellationToken token)
    {
        if (sync)
        {
            return !token.WaitHandle.WaitOne(pause);
        }

        try
        {
            await Task.Delay(pause, token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Counts the caller in, unless a hold started meanwhile (then a drained traffic really is quiet).</summary>
    private bool TryEnter()
    {
        Interlocked.Increment(ref _inCall);
        if (Volatile.Read(ref _holdWhen) is { } holdWhen && holdWhen())
        {
            Hold();
        }

        if (Volatile.Read(ref _held) == 1)
        {
            Interlocked.Decrement(ref _inCall);
            return false;
        }

        return true;
    }

    /// <summary>The i-th call of a caller: the key (and its shard), whether it writes, what it writes.</summary>
    private (string Key, int Shard, bool Write, byte[] Value) Next(int worker, int i)
    {
        if (_options.Keys is { } keys)
        {
            var (key, shard) = keys[((worker * _options.Order.Start) + (i * _options.Order.Step)) % keys.Count];
            return (key, shard, false, []);
        }

        var writesOnly = _options.WritesOnly;
        return ($"{_options.Prefix}:{worker}:{(writesOnly ? i : i / 2) % 4}", 0, writesOnly || i % 2 == 0, Lab.Bytes($"value-{i}"));
    }
}

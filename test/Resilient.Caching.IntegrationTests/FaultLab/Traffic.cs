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

/// <summary>One call: when it started (since the traffic began), how long it took, what it returned.</summary>
internal sealed record Sample(int Worker, TimeSpan At, TimeSpan Elapsed, string Operation, CallOutcome Outcome, Exception? Error)
{
    public TimeSpan End => At + Elapsed;

    public override string ToString() =>
        $"{At.TotalMilliseconds,7:0} ms w{Worker} {Operation,-4} {Outcome,-5} {Elapsed.TotalMilliseconds,6:0} ms{(Error is null ? string.Empty : " " + Error.GetType().Name + ": " + Error.Message.Split('\n')[0])}";
}

/// <summary>
/// Application traffic against a cache: a few callers, each writing then reading its own keys in a loop (so a healthy
/// cache answers hits), with a short pause between calls. Bounded in time and count; every call is recorded.
/// Exceptions are recorded, not thrown, so the same driver measures the stock provider. <see cref="Hold"/> stops
/// the callers between two calls (to read server statistics at a quiet moment) until <see cref="Release"/>.
/// </summary>
internal sealed class Traffic : IAsyncDisposable
{
    private static readonly DistributedCacheEntryOptions NoExpiry = new();

    private readonly IDistributedCache _cache;
    private readonly bool _async;
    private readonly bool _writesOnly;
    private readonly TimeSpan _pause;
    private readonly string _prefix;
    private readonly ConcurrentQueue<Sample> _samples = new();
    private readonly CancellationTokenSource _stop;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Task[] _workers;
    private int _inCall;
    private int _held;
    private Func<bool>? _holdWhen;

    // A cancellable token, as an application passes (the request's): the caller-token path of the cache is the one used.
    private readonly CancellationToken _callerToken = Lab.Ct;

    private Traffic(IDistributedCache cache, bool async, bool writesOnly, int workers, TimeSpan pause, TimeSpan limit, string prefix)
    {
        _cache = cache;
        _async = async;
        _writesOnly = writesOnly;
        _pause = pause;
        _prefix = prefix;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(Lab.Ct);
        _stop.CancelAfter(limit);
        _workers = [.. Enumerable.Range(0, workers).Select(w => async
            ? Task.Run(() => RunAsync(w))
            : Task.Factory.StartNew(() => RunSync(w), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default))];
    }

    /// <summary>Time since the traffic started, on the clock the samples use.</summary>
    public TimeSpan Now => _clock.Elapsed;

    public IReadOnlyList<Sample> Samples => [.. _samples.OrderBy(s => s.At)];

    /// <summary>
    /// Starts <paramref name="workers"/> callers using the synchronous or asynchronous API (Set and Get in turn, or
    /// only Set). They stop on <see cref="StopAsync"/>, after <paramref name="limit"/> (default 60 s) or after
    /// 20 000 calls each.
    /// </summary>
    public static Traffic Start(
        IDistributedCache cache, bool async, int workers = 2, bool writesOnly = false, TimeSpan? pause = null, TimeSpan? limit = null, string prefix = "lab") =>
        new(cache, async, writesOnly, workers, pause ?? TimeSpan.FromMilliseconds(10), limit ?? TimeSpan.FromSeconds(60), prefix);

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

    private async Task RunAsync(int worker)
    {
        var token = _stop.Token;
        for (var i = 0; i < 20_000 && !token.IsCancellationRequested; i++)
        {
            while (Volatile.Read(ref _held) == 1 && !token.IsCancellationRequested)
            {
                await Task.Delay(5, CancellationToken.None);
            }

            if (!TryEnter())
            {
                i--;
                continue;
            }

            var (key, write, value) = Next(worker, i);
            var at = _clock.Elapsed;
            var outcome = CallOutcome.Write;
            Exception? error = null;
            try
            {
                if (write)
                {
                    await _cache.SetAsync(key, value, NoExpiry, _callerToken);
                }
                else
                {
                    outcome = await _cache.GetAsync(key, _callerToken) is null ? CallOutcome.Miss : CallOutcome.Hit;
                }
            }
            catch (Exception exception)
            {
                (outcome, error) = (CallOutcome.Error, exception);
            }

            Exit(worker, at, write, outcome, error);
            try
            {
                await Task.Delay(_pause, token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    // Synchronous callers get threads of their own: blocked pool threads would starve the thread pool of the whole
    // (parallel) test run, and the replies StackExchange.Redis reads on it would then look like Redis timeouts.
    private void RunSync(int worker)
    {
        var token = _stop.Token;
        for (var i = 0; i < 20_000 && !token.IsCancellationRequested; i++)
        {
            while (Volatile.Read(ref _held) == 1 && !token.IsCancellationRequested)
            {
                Thread.Sleep(5);
            }

            if (!TryEnter())
            {
                i--;
                continue;
            }

            var (key, write, value) = Next(worker, i);
            var at = _clock.Elapsed;
            var outcome = CallOutcome.Write;
            Exception? error = null;
            try
            {
                if (write)
                {
                    _cache.Set(key, value, NoExpiry);
                }
                else
                {
                    outcome = _cache.Get(key) is null ? CallOutcome.Miss : CallOutcome.Hit;
                }
            }
            catch (Exception exception)
            {
                (outcome, error) = (CallOutcome.Error, exception);
            }

            Exit(worker, at, write, outcome, error);
            if (token.WaitHandle.WaitOne(_pause))
            {
                return;
            }
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

    private void Exit(int worker, TimeSpan at, bool write, CallOutcome outcome, Exception? error)
    {
        _samples.Enqueue(new Sample(worker, at, _clock.Elapsed - at, write ? "Set" : "Get", outcome, error));
        Interlocked.Decrement(ref _inCall);
    }

    /// <summary>Each caller writes a key, then reads it back (so a healthy cache hits), over four keys of its own.</summary>
    private (string Key, bool Write, byte[] Value) Next(int worker, int i) =>
        ($"{_prefix}:{worker}:{(_writesOnly ? i : i / 2) % 4}", _writesOnly || i % 2 == 0, Lab.Bytes($"value-{i}"));
}

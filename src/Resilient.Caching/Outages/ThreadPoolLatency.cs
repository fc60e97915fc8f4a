using System.Diagnostics;

namespace Resilient.Caching.Outages;

/// <summary>
/// How long work waits in the thread pool's queue now: a timer due every 100 ms runs its callback on the pool, so a
/// callback that comes late — or has not come for a while — is work that waited. A starved pool is one where a reply's
/// continuation would wait too; a Redis timeout then says nothing about Redis. One timer for the process, started with
/// the first cache; no thread of its own.
/// </summary>
internal static class ThreadPoolLatency
{
    private static readonly long s_period = Stopwatch.Frequency / 10;

    // Work that waits this long in the queue is a stall, not a busy moment.
    private static readonly long s_stall = Stopwatch.Frequency / 4;

    // How long a stall is remembered: a timeout judged just after the pool caught up still met the stall.
    private static readonly long s_memory = Stopwatch.Frequency * 2;

    private static long s_lastTick;
    private static long s_lastStall;
    private static Timer? s_timer;

    /// <summary>Starts the measurement (once per process).</summary>
    public static void EnsureStarted()
    {
        if (Volatile.Read(ref s_timer) is not null)
        {
            return;
        }

        Volatile.Write(ref s_lastTick, Stopwatch.GetTimestamp());
        var timer = new Timer(static _ => Tick(), null, Timeout.Infinite, Timeout.Infinite);
        if (Interlocked.CompareExchange(ref s_timer, timer, null) is null)
        {
            timer.Change(100, 100);
        }
        else
        {
            timer.Dispose();
        }
    }

    /// <summary>Whether work waits in the queue now (the next tick is overdue), or did within the last two seconds.</summary>
    public static bool IsStarved()
    {
        if (Volatile.Read(ref s_timer) is null)
        {
            return false;
        }

        var now = Stopwatch.GetTimestamp();
        var lastStall = Volatile.Read(ref s_lastStall);
        return now - Volatile.Read(ref s_lastTick) - s_period > s_stall || (lastStall != 0 && now - lastStall < s_memory);
    }

    private static void Tick()
    {
        var now = Stopwatch.GetTimestamp();
        var previous = Interlocked.Exchange(ref s_lastTick, now);
        if (now - previous - s_period > s_stall)
        {
            Volatile.Write(ref s_lastStall, now);
        }
    }
}

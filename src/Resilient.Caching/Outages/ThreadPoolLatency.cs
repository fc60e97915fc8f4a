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

    // How long a stall is remembered: a timeout judged just after the pool caught up still met the stall.
    private static readonly long s_memory = Stopwatch.Frequency * 2;

    private static long s_lastTick;
    private static long s_worstLateness;
    private static long s_worstAt;
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

    /// <summary>
    /// Whether work waits in the queue now (the next tick is overdue), or waited within the last two seconds, for longer
    /// than <paramref name="stall"/> — long enough to explain a timeout (a busy process's queue waits far less).
    /// </summary>
    public static bool IsStarved(TimeSpan stall)
    {
        if (Volatile.Read(ref s_timer) is null)
        {
            return false;
        }

        var limit = (long)(stall.TotalSeconds * Stopwatch.Frequency);
        var now = Stopwatch.GetTimestamp();
        return now - Volatile.Read(ref s_lastTick) - s_period > limit
            || (now - Volatile.Read(ref s_worstAt) < s_memory && Volatile.Read(ref s_worstLateness) > limit);
    }

    private static void Tick()
    {
        var now = Stopwatch.GetTimestamp();
        var lateness = now - Interlocked.Exchange(ref s_lastTick, now) - s_period;
        if (lateness >= Volatile.Read(ref s_worstLateness) || now - Volatile.Read(ref s_worstAt) >= s_memory)
        {
            Volatile.Write(ref s_worstLateness, Math.Max(0, lateness));
            Volatile.Write(ref s_worstAt, now);
        }
    }
}

using System.Diagnostics;

namespace Resilient.Caching.Outages;

/// <summary>
/// When Redis last answered one of this cache's calls: the evidence that a timeout on a starved thread pool is the
/// application's stall and not Redis's silence. A starved pool alone is no such evidence, because a frozen Redis starves
/// the pool itself when callers block in synchronous calls: were its timeouts excused by the starvation they cause, no
/// window would ever open. So the pool's starvation excuses a timeout only while Redis has answered within the last
/// operation timeout and a half; a frozen Redis gets at most one round of its callers' timeouts excused.
/// </summary>
internal sealed class RecentAnswers
{
    // Writes are skipped while the latest answer is this fresh: a shared field is not written on every call.
    private static readonly long s_resolution = Stopwatch.Frequency / 100;

    private readonly long _recent;
    private long _answeredCallStartedAt;

    /// <param name="operationTimeout">The operation timeout; an answer within one and a half of it is recent.</param>
    public RecentAnswers(TimeSpan operationTimeout) => _recent = (long)(operationTimeout.TotalSeconds * 1.5 * Stopwatch.Frequency);

    /// <summary>A call that started at <paramref name="startedAt"/> (a <see cref="Stopwatch"/> timestamp) got Redis's answer.</summary>
    public void Answered(long startedAt)
    {
        if (startedAt - Volatile.Read(ref _answeredCallStartedAt) > s_resolution)
        {
            Volatile.Write(ref _answeredCallStartedAt, startedAt);
        }
    }

    /// <summary>Whether Redis answered a call that started within the last operation timeout and a half.</summary>
    public bool AnsweredRecently()
    {
        var startedAt = Volatile.Read(ref _answeredCallStartedAt);
        return startedAt != 0 && Stopwatch.GetTimestamp() - startedAt <= _recent;
    }
}

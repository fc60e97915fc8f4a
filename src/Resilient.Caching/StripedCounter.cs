using System.Runtime.InteropServices;

namespace Resilient.Caching;

/// <summary>
/// A counter that many threads increment without contending on one cache line: each processor adds to its
/// own padded cell, and readers sum the cells. Reads are rare (a log line per outage); increments are per call.
/// </summary>
internal sealed class StripedCounter
{
    private readonly Cell[] _cells = new Cell[Math.Min(64, Environment.ProcessorCount * 2)];

    public void Increment()
    {
        // The processor id is cheap (cached by the runtime) and spreads threads that run at the same time.
        Interlocked.Increment(ref _cells[Thread.GetCurrentProcessorId() % _cells.Length].Value);
    }

    public long Sum()
    {
        long sum = 0;
        for (var i = 0; i < _cells.Length; i++)
        {
            sum += Volatile.Read(ref _cells[i].Value);
        }

        return sum;
    }

    public void Reset()
    {
        for (var i = 0; i < _cells.Length; i++)
        {
            Volatile.Write(ref _cells[i].Value, 0);
        }
    }

    // 128 bytes apart so adjacent cells never share a cache line (nor a prefetched pair of lines).
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct Cell
    {
        [FieldOffset(64)]
        public long Value;
    }
}

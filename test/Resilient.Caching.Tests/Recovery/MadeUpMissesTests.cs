using Microsoft.Extensions.Time.Testing;
using Resilient.Caching.Recovery;

namespace Resilient.Caching.Tests.Recovery;

public sealed class MadeUpMissesTests
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(5);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly RecoveryOverflow _overflow = new();

    [Fact]
    public void AMadeUpMiss_MarksItsKey_UntilARealReadOrWriteClearsIt()
    {
        var misses = Create();
        Assert.False(misses.IsMarked("session:1"));

        Assert.Equal(RecordOutcome.Recorded, misses.Mark("session:1"));
        Assert.True(misses.IsMarked("session:1"));
        Assert.True(misses.IsMarked("session:1")); // asking does not clear: every write until a real read was computed blind
        Assert.False(misses.IsMarked("session:2"));

        misses.Clear("session:1");
        Assert.False(misses.IsMarked("session:1"));
        Assert.Equal(0, misses.Count);
    }

    [Fact]
    public void AMarker_LapsesAfterItsLifetime_AndIsSweptAway()
    {
        var misses = Create();
        misses.Mark("a");
        _time.Advance(Lifetime - TimeSpan.FromSeconds(1));
        misses.Mark("b");
        Assert.True(misses.IsMarked("a"));

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(misses.IsMarked("a"));
        Assert.True(misses.IsMarked("b"));

        _time.Advance(Lifetime);
        Assert.False(misses.IsMarked("b"));
        Assert.Equal(0, misses.Count); // swept: the healthy path is one volatile read again
    }

    [Fact]
    public void MarkingAgain_RestartsTheLifetime()
    {
        var misses = Create();
        misses.Mark("a");
        _time.Advance(Lifetime - TimeSpan.FromSeconds(10));
        misses.Mark("a");
        _time.Advance(TimeSpan.FromSeconds(30));

        Assert.True(misses.IsMarked("a"));
    }

    [Fact]
    public void PastCapacity_MarkersAreDropped_IntoTheSharedOverflow()
    {
        var misses = Create(capacity: 2);
        misses.Mark("a");
        misses.Mark("b");

        Assert.Equal(RecordOutcome.Recorded, misses.Mark("a"));
        Assert.Equal(RecordOutcome.OverflowStarted, misses.Mark("c"));
        Assert.Equal(RecordOutcome.Dropped, misses.Mark("d"));
        Assert.False(misses.IsMarked("c"));
        Assert.Equal(2, _overflow.DroppedSinceReplay);
        Assert.Equal(2, misses.Count);
    }

    [Fact]
    public void MarkingAMarkedKey_ClearingAndAskingWithNothingMarked_AllocateNothing()
    {
        var misses = Create();
        var unmarked = "k" + Guid.NewGuid();
        misses.Mark("warm");
        _ = misses.IsMarked("warm"); // the first sweep enumerates (and allocates); the next is half a lifetime away
        misses.Clear("warm");
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            misses.Clear(unmarked);
            _ = misses.IsMarked(unmarked);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        var marked = "m" + Guid.NewGuid();
        misses.Mark(marked); // its node is the one allocation
        var afterFirstMark = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            misses.Mark(marked);
            _ = misses.IsMarked(marked);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - afterFirstMark);
    }

    [Fact]
    public async Task ConcurrentMarksAndClears_KeepTheCountExact()
    {
        var misses = Create(capacity: 1_000_000);
        var workers = Enumerable.Range(0, 8).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < 5_000; i++)
            {
                var key = "k" + (i % 500).ToString(System.Globalization.CultureInfo.InvariantCulture);
                if ((i + w) % 3 == 0)
                {
                    misses.Clear(key);
                }
                else
                {
                    misses.Mark(key);
                }
            }
        }, TestContext.Current.CancellationToken)).ToArray();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        var marked = Enumerable.Range(0, 500).Count(i => misses.IsMarked("k" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(marked, misses.Count);
    }

    private MadeUpMisses Create(int capacity = 100_000) => new(capacity, Lifetime, _time, _overflow);
}

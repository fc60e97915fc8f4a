using System.Globalization;

namespace Resilient.Caching;

/// <summary>A range of Redis Cluster hash slots (0 to 16383), both ends included.</summary>
/// <param name="From">The first slot of the range.</param>
/// <param name="To">The last slot of the range (equal to <paramref name="From"/> for a single slot).</param>
public readonly record struct CacheSlotRange(int From, int To)
{
    /// <summary>Gets how many slots the range holds.</summary>
    public int Count => To - From + 1;

    /// <summary>Gets a value indicating whether <paramref name="slot"/> lies in the range.</summary>
    /// <param name="slot">A hash slot.</param>
    /// <returns><see langword="true"/> when <paramref name="slot"/> is between <see cref="From"/> and <see cref="To"/>, both included.</returns>
    public bool Contains(int slot) => slot >= From && slot <= To;

    /// <summary>Writes the range as Redis does (<c>CLUSTER NODES</c>): <c>0-5460</c>, or <c>42</c> for a single slot.</summary>
    /// <returns>The range in Redis's form.</returns>
    public override string ToString() =>
        From == To ? From.ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{From}-{To}");
}

namespace Resilient.Caching.Recovery;

/// <summary>What one completed replay of <see cref="PendingInvalidations"/> did.</summary>
/// <param name="KeysDeleted">Recorded keys deleted (distributed-cache keys and output-cache entries), whether or not they still existed.</param>
/// <param name="TagsEvicted">Output-cache tags evicted.</param>
/// <param name="KeysPurged">Keys deleted by the instance purge (0 unless it ran).</param>
/// <param name="Purged">Whether the instance purge ran (after an overflow, when configured).</param>
/// <param name="Dropped">Records dropped for lack of room before the replay: writes the guarantee did not cover (unless <paramref name="Purged"/>).</param>
/// <param name="Remaining">Records still waiting: made while the replay ran, after its last round.</param>
/// <param name="Duration">How long the replay took.</param>
internal sealed record ReplayResult(long KeysDeleted, long TagsEvicted, long KeysPurged, bool Purged, long Dropped, int Remaining, TimeSpan Duration);

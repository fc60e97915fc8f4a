namespace Resilient.Caching.Connection;

/// <summary>The connection as the window sees it: a generation number that a reset moves on.</summary>
internal interface IResettableConnection
{
    /// <summary>Gets the current generation; an inner cache built for an older one must be rebuilt.</summary>
    int Generation { get; }

    /// <summary>Drops the current multiplexer (when it is ours) so that the next call connects afresh.</summary>
    void Reset();
}

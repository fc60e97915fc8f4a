namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>
/// A replica's promotion to primary (in a <see cref="RedisCluster"/> or a <see cref="RedisSentinel"/> deployment),
/// timed from the fault (kill, pause or planned failover) that caused it.
/// </summary>
/// <param name="NewPrimary">The node that took over.</param>
/// <param name="After">From the fault until the new primary was one: it said so (cluster) or a sentinel named it.</param>
/// <param name="SettledAfter">From the fault until every running cluster node, or every sentinel, agreed.</param>
public sealed record Promotion<TNode>(TNode NewPrimary, TimeSpan After, TimeSpan SettledAfter);

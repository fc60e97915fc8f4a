using Xunit;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>
/// One healthy <see cref="RedisCluster"/> shared by the tests of a class (<c>IClassFixture&lt;ClusterFixture&gt;</c>)
/// that do not change its topology: forming one costs a few seconds. A test that kills or fails over nodes starts
/// its own.
/// </summary>
public class ClusterFixture : IAsyncLifetime
{
    private RedisCluster? _cluster;

    /// <summary>The cluster (started before the first test of the class).</summary>
    public RedisCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster is not started.");

    /// <summary>The settings the cluster is formed with.</summary>
    protected virtual RedisClusterOptions Options => new();

    /// <inheritdoc />
    public async ValueTask InitializeAsync() => _cluster = await RedisCluster.StartAsync(Options, TestContext.Current.CancellationToken);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }
}

/// <summary>As <see cref="ClusterFixture"/>, with <c>cluster-require-full-coverage no</c>.</summary>
public sealed class PartialCoverageClusterFixture : ClusterFixture
{
    /// <inheritdoc />
    protected override RedisClusterOptions Options => new() { RequireFullCoverage = false };
}

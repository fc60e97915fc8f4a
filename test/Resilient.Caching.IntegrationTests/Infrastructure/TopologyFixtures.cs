using Xunit;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>
/// One healthy <see cref="RedisCluster"/> shared by the tests of a class (<c>IClassFixture&lt;ClusterFixture&gt;</c>)
/// that do not change its topology: forming one costs a few seconds. A test that kills or fails over nodes starts
/// its own.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    private RedisCluster? _cluster;

    /// <summary>The cluster (started before the first test of the class).</summary>
    public RedisCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster is not started.");

    /// <inheritdoc />
    public async ValueTask InitializeAsync() => _cluster = await RedisCluster.StartAsync(cancellationToken: TestContext.Current.CancellationToken);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }
}

/// <summary>As <see cref="ClusterFixture"/>, one healthy <see cref="RedisSentinel"/> deployment for a class.</summary>
public sealed class SentinelFixture : IAsyncLifetime
{
    private RedisSentinel? _sentinel;

    /// <summary>The deployment (started before the first test of the class).</summary>
    public RedisSentinel Sentinel => _sentinel ?? throw new InvalidOperationException("The deployment is not started.");

    /// <inheritdoc />
    public async ValueTask InitializeAsync() => _sentinel = await RedisSentinel.StartAsync(cancellationToken: TestContext.Current.CancellationToken);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_sentinel is not null)
        {
            await _sentinel.DisposeAsync();
        }
    }
}

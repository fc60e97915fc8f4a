using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>
/// A healthy Redis Cluster through the one-line swap: every operation reaches the shard that serves its key, as with
/// the stock provider, and the entries of one provider are the other's.
/// </summary>
public sealed class ClusterRoundTripTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private const string InstanceName = "app:";

    [Theory]
    [InlineData(Provider.Resilient)]
    [InlineData(Provider.Stock)]
    public async Task Every_operation_round_trips_on_every_shard_sync_and_async(Provider provider)
    {
        var cluster = fixture.Cluster;
        List<(RedisServer, string)> placements = [];
        foreach (var primary in await cluster.GetPrimariesAsync())
        {
            placements.AddRange((await cluster.KeysOnAsync(primary, 2, InstanceName, $"round-trip-{provider}")).Select(k => (primary.Server, k)));
        }

        using var cache = new TopologyCache(provider, cluster.ConnectionString, InstanceName);
        await cache.ConnectedAsync();

        await RoundTrip.RunAsync(cache.Cache, placements, InstanceName);

        if (cache.Ours is { } ours)
        {
            Assert.True(ours.Availability.IsAvailable && ours.LogCount(Log.IdWindowOpened) == 0, ours.DescribeLogs());
        }
    }

    [Fact]
    public async Task Entries_of_one_provider_are_read_by_the_other_on_every_shard()
    {
        var cluster = fixture.Cluster;
        using var ours = new TopologyCache(Provider.Resilient, cluster.ConnectionString, InstanceName);
        using var stock = new TopologyCache(Provider.Stock, cluster.ConnectionString, InstanceName);

        foreach (var primary in await cluster.GetPrimariesAsync())
        {
            var keys = await cluster.KeysOnAsync(primary, 2, InstanceName, "shared");
            await ours.Cache.SetStringAsync(keys[0], "written by ours", Lab.Ct);
            stock.Cache.SetString(keys[1], "written by stock");

            Assert.Equal("written by ours", stock.Cache.GetString(keys[0]));
            Assert.True("written by stock" == await ours.Cache.GetStringAsync(keys[1], Lab.Ct), ours.Ours!.DescribeLogs());
            Assert.Equal(":1\r\n", await primary.Server.ExecuteAsync("EXISTS", InstanceName + keys[0]));
            Assert.Equal(":1\r\n", await primary.Server.ExecuteAsync("EXISTS", InstanceName + keys[1]));
        }
    }
}

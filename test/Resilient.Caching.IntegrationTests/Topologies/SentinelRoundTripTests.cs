using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>
/// A healthy Sentinel deployment through the one-line swap (<c>serviceName=</c> and the sentinels' endpoints): every
/// operation reaches the primary the sentinels name, as with the stock provider.
/// </summary>
public sealed class SentinelRoundTripTests(SentinelFixture fixture) : IClassFixture<SentinelFixture>
{
    private const string InstanceName = "app:";

    [Theory]
    [InlineData(Provider.Resilient)]
    [InlineData(Provider.Stock)]
    public async Task Every_operation_round_trips_on_the_primary_sync_and_async(Provider provider)
    {
        var sentinel = fixture.Sentinel;
        var primary = await sentinel.GetPrimaryAsync();
        using var cache = new TopologyCache(provider, sentinel.ConnectionString, InstanceName);
        await cache.ConnectedAsync();

        await RoundTrip.RunAsync(cache.Cache, [(primary, $"{provider}-a"), (primary, $"{provider}-b"), (primary, $"{provider}-c"), (primary, $"{provider}-d")], InstanceName);

        if (cache.Ours is { } ours)
        {
            Assert.True(ours.Availability.IsAvailable && ours.LogCount(Log.IdWindowOpened) == 0, ours.DescribeLogs());
        }
    }

    [Fact]
    public async Task Entries_of_one_provider_are_read_by_the_other()
    {
        var sentinel = fixture.Sentinel;
        using var ours = new TopologyCache(Provider.Resilient, sentinel.ConnectionString, InstanceName);
        using var stock = new TopologyCache(Provider.Stock, sentinel.ConnectionString, InstanceName);

        await ours.Cache.SetStringAsync("from-ours", "written by ours", Lab.Ct);
        stock.Cache.SetString("from-stock", "written by stock");

        Assert.True("written by ours" == stock.Cache.GetString("from-ours"), ours.Ours!.DescribeLogs());
        Assert.Equal("written by stock", await ours.Cache.GetStringAsync("from-stock", Lab.Ct));
    }
}

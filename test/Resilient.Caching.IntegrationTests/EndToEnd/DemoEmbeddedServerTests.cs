using System.Text.Json;
using Xunit;

namespace Resilient.Caching.IntegrationTests.EndToEnd;

/// <summary>The demo with no Redis configured, as <c>build/demo.sh</c> runs it on a machine without redis-server: Garnet in its own process.</summary>
public sealed class DemoEmbeddedServerTests
{
    [Fact]
    public async Task WithNoRedisConfigured_TheDemoRunsOnEmbeddedGarnet_AndSaysSo()
    {
        await using var demo = await DemoHost.StartAsync(redisConfiguration: string.Empty);

        using var state = JsonDocument.Parse(await demo.GetOkAsync("/state.json"));
        Assert.True(state.RootElement.GetProperty("available").GetBoolean());
        Assert.StartsWith("Garnet ", state.RootElement.GetProperty("server").GetString(), StringComparison.Ordinal);
        Assert.Contains("embedded in this process", await demo.ReadAsync("/", "server"), StringComparison.Ordinal);

        // Every consumer works on it: session, output cache (with its tag eviction), HybridCache, the health check.
        Assert.Equal(1, await demo.VisitSessionAsync());
        Assert.Equal(2, await demo.VisitSessionAsync());
        var rendered = await demo.ReadOutputAsync();
        Assert.Equal(rendered, await demo.ReadOutputAsync());
        await demo.EvictOutputAsync();
        Assert.NotEqual(rendered, await demo.ReadOutputAsync());
        var (value, fromRedis) = await demo.ReadHybridAsync();
        Assert.False(fromRedis);
        await DemoHost.EventuallyAsync("HybridCache reads its value back from Garnet", TimeSpan.FromSeconds(10), async () =>
        {
            var again = await demo.ReadHybridAsync();
            return again.FromRedis && again.Value == value;
        });
        Assert.Equal("Healthy", (await demo.ReadHealthAsync()).Status);
    }
}

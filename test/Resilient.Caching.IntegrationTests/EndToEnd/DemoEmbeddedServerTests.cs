using System.Text.Json;
using Resilient.Caching.IntegrationTests.FaultLab;
using Xunit;

namespace Resilient.Caching.IntegrationTests.EndToEnd;

/// <summary>The demo with no Redis configured, as <c>build/demo.sh</c> runs it on a machine without redis-server: Garnet in its own process.</summary>
public sealed class DemoEmbeddedServerTests
{
    [Fact]
    public async Task WithNoRedisConfigured_TheDemoRunsOnEmbeddedGarnet_AndSaysSo()
    {
        // The wiring is under test, not the timing: timeouts a loaded machine will not reach.
        await using var demo = await DemoHost.StartAsync(redisConfiguration: string.Empty, operationTimeout: TimeSpan.FromSeconds(2.5));

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
        Assert.False((await demo.ReadHybridAsync()).FromRedis);

        // HybridCache writes its distributed level in the background: eventually a request reads the value back.
        await Lab.UntilAsync("HybridCache reads its value back from Garnet", TimeSpan.FromSeconds(20), async () => (await demo.ReadHybridAsync()).FromRedis);
        Assert.Equal("Healthy", (await demo.ReadHealthAsync()).Status);
    }
}

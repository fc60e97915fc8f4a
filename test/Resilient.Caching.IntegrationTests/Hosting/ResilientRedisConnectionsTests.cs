using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Resilient.Caching.Configuration;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Hosting;

/// <summary>What a subscriber of <see cref="ResilientRedisConnections"/> is told, and when it is released.</summary>
public sealed class ResilientRedisConnectionsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ASubscriber_HearsOfEveryMultiplexer_OfEveryCache_AndLetsGoOfRetiredOnes()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        var services = new ServiceCollection();
        services.AddSingleton(new EnvironmentVariables(_ => null));
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = redis.ConnectionString);
        services.AddKeyedResilientStackExchangeRedisCache("data", o => o.Configuration = redis.ConnectionString);
        await using var provider = services.BuildServiceProvider();
        var connections = provider.GetRequiredService<ResilientRedisConnections>();
        await provider.GetRequiredService<IDistributedCache>().SetStringAsync("k", "v", Ct);

        // Subscribing late: told of the multiplexer already in use.
        var told = new List<(string Cache, IConnectionMultiplexer Connection, Handle Handle)>();
        using var subscription = connections.Subscribe((cache, connection) =>
        {
            var handle = new Handle();
            lock (told)
            {
                told.Add((cache, connection, handle));
            }

            return handle;
        });
        var first = Assert.Single(Snapshot(told));
        Assert.Equal("default", first.Cache);

        // A keyed cache's multiplexer, when it makes one.
        await provider.GetRequiredKeyedService<IDistributedCache>("data").SetStringAsync("k", "v", Ct);
        await Lab.UntilAsync("the keyed cache's multiplexer reported", TimeSpan.FromSeconds(10), () => Task.FromResult(Snapshot(told).Any(t => t.Cache == "data")));

        // A reset retires the multiplexer (its handle is disposed) and the next one is reported.
        var shared = provider.GetRequiredService<ResilientRedisCacheServices>();
        shared.Connection.Reset();
        Assert.True(first.Handle.Disposed);
        await provider.GetRequiredService<IDistributedCache>().GetStringAsync("k", Ct);
        await Lab.UntilAsync("the fresh multiplexer reported", TimeSpan.FromSeconds(10), () => Task.FromResult(Snapshot(told).Count(t => t.Cache == "default") == 2));
        var second = Snapshot(told).Last(t => t.Cache == "default");
        Assert.NotSame(first.Connection, second.Connection);
        Assert.False(second.Handle.Disposed);

        // Ending the subscription releases what is still held.
        subscription.Dispose();
        Assert.All(Snapshot(told), t => Assert.True(t.Handle.Disposed));
    }

    private static List<(string Cache, IConnectionMultiplexer Connection, Handle Handle)> Snapshot(List<(string, IConnectionMultiplexer, Handle)> told)
    {
        lock (told)
        {
            return [.. told];
        }
    }

    private sealed class Handle : IDisposable
    {
        public bool Disposed { get; private set; }

        public void Dispose() => Disposed = true;
    }
}

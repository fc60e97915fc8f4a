using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Moq;
using Resilient.Caching.Configuration;

namespace Resilient.Caching.Tests;

/// <summary>
/// The registration shape of <c>AddStackExchangeRedisCache</c> / <c>AddStackExchangeRedisOutputCache</c>, ported: the
/// descriptor is appended (the last registration wins, earlier ones are still listed), singleton, chainable; and a
/// later registration that wins over ours is said out loud at start-up.
/// </summary>
public sealed class RegistrationTests
{
    [Fact]
    public void Cache_IsASingleton_AppendedAfterEarlierRegistrations_AsTheStockExtensionDoes()
    {
        var ours = new ServiceCollection().AddDistributedMemoryCache();
        ours.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
        var stock = new ServiceCollection().AddDistributedMemoryCache();
        stock.AddStackExchangeRedisCache(o => o.Configuration = "localhost");

        Assert.Equal(
            stock.Where(d => d.ServiceType == typeof(IDistributedCache)).Select(d => d.Lifetime),
            ours.Where(d => d.ServiceType == typeof(IDistributedCache)).Select(d => d.Lifetime));
        using var provider = ours.BuildServiceProvider();
        var all = provider.GetServices<IDistributedCache>().ToArray();
        Assert.Equal(2, all.Length);
        Assert.IsType<MemoryDistributedCache>(all[0]);
        Assert.IsType<ResilientDistributedCache>(all[1]);
        Assert.Same(all[1], provider.GetRequiredService<IDistributedCache>());
    }

    [Fact]
    public void Cache_WinsOverAnEarlierScopedRegistration()
    {
        var services = new ServiceCollection();
        services.AddScoped(typeof(IDistributedCache), _ => Mock.Of<IDistributedCache>());
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");

        using var provider = services.BuildServiceProvider();
        using var scope = provider.CreateScope();
        Assert.IsType<ResilientDistributedCache>(scope.ServiceProvider.GetRequiredService<IDistributedCache>());
    }

    [Fact]
    public void Cache_AllowsChaining_AndResolvesWithOrWithoutLogging()
    {
        var services = new ServiceCollection();
        Assert.Same(services, services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost"));
        using (var provider = services.BuildServiceProvider())
        {
            Assert.NotNull(provider.GetRequiredService<IDistributedCache>());
        }

        services.AddLogging();
        using (var provider = services.BuildServiceProvider())
        {
            Assert.NotNull(provider.GetRequiredService<IDistributedCache>());
        }
    }

    [Fact]
    public void Cache_LogsThroughTheRegisteredLoggerFactory_UnderItsOwnCategory()
    {
        var categories = new List<string>();
        var factory = new Mock<ILoggerFactory>();
        factory.Setup(f => f.CreateLogger(It.IsAny<string>())).Returns((string name) =>
        {
            categories.Add(name);
            return Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        });
        var services = new ServiceCollection();
        services.AddSingleton(factory.Object);
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");

        using var provider = services.BuildServiceProvider();
        Assert.IsType<ResilientDistributedCache>(provider.GetRequiredService<IDistributedCache>());
        Assert.Contains(typeof(ResilientDistributedCache).FullName!, categories);
    }

    [Fact]
    public void OutputCacheStore_IsAppendedAfterAddOutputCache_AsTheStockExtensionDoes()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddOutputCache();
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
        services.AddResilientStackExchangeRedisOutputCache();

        using var provider = services.BuildServiceProvider();
        var all = provider.GetServices<IOutputCacheStore>().ToArray();
        Assert.Equal(2, all.Length);
        Assert.Equal("MemoryOutputCacheStore", all[0].GetType().Name);
        Assert.IsType<Resilient.Caching.OutputCaching.ResilientOutputCacheStore>(all[1]);
        Assert.Same(all[1], provider.GetRequiredService<IOutputCacheStore>());
        Assert.All(services.Where(d => d.ServiceType == typeof(IOutputCacheStore)), d => Assert.Equal(ServiceLifetime.Singleton, d.Lifetime));
    }

    [Fact]
    public async Task StockCacheRegisteredAfterOurs_IsALoudWarningAtStart()
    {
        var (logs, host) = await StartAsync(services =>
        {
            services.AddResilientStackExchangeRedisCache(o => o.Configuration = "127.0.0.1:1");
            services.AddStackExchangeRedisCache(o => o.Configuration = "127.0.0.1:1");
        });
        using (host)
        {
            var warning = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == Log.IdDistributedCacheNotInUse);
            Assert.Equal(LogLevel.Warning, warning.Level);
            Assert.Contains("IDistributedCache is Microsoft.Extensions.Caching.StackExchangeRedis.RedisCache", warning.Message, StringComparison.Ordinal);
            Assert.Contains("call AddResilientStackExchangeRedisCache after it", warning.Message, StringComparison.Ordinal);
            Assert.IsAssignableFrom<RedisCache>(host.Services.GetRequiredService<IDistributedCache>());
        }
    }

    [Fact]
    public async Task StockOutputCacheStoreRegisteredAfterOurs_IsALoudWarningAtStart()
    {
        var (logs, host) = await StartAsync(services =>
        {
            services.AddOutputCache();
            services.AddResilientStackExchangeRedisCache(o => o.Configuration = "127.0.0.1:1");
            services.AddResilientStackExchangeRedisOutputCache();
            services.AddStackExchangeRedisOutputCache(o => o.Configuration = "127.0.0.1:1");
        });
        using (host)
        {
            var warning = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == Log.IdOutputCacheStoreNotInUse);
            Assert.Equal(LogLevel.Warning, warning.Level);
            Assert.Contains("RedisOutputCacheStore", warning.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(logs.GetSnapshot(), r => r.Id.Id == Log.IdDistributedCacheNotInUse);
        }
    }

    [Fact]
    public async Task OursRegisteredLast_OrOnlyTheHealthCheck_StartsWithoutAWarning()
    {
        var (logs, host) = await StartAsync(services =>
        {
            services.AddStackExchangeRedisCache(o => o.Configuration = "127.0.0.1:1");
            services.AddOutputCache();
            services.AddResilientStackExchangeRedisCache(o => o.Configuration = "127.0.0.1:1");
            services.AddResilientStackExchangeRedisOutputCache();
        });
        using (host)
        {
            Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == Log.IdSettingsInForce);
            Assert.DoesNotContain(logs.GetSnapshot(), r => r.Id.Id is Log.IdDistributedCacheNotInUse or Log.IdOutputCacheStoreNotInUse);
        }

        // The health check alone shares the settings but never claims the application's cache.
        (logs, host) = await StartAsync(services =>
        {
            services.AddDistributedMemoryCache();
            services.AddHealthChecks().AddResilientStackExchangeRedisCache();
            services.Configure<ResilientRedisCacheOptions>(o => o.Configuration = "127.0.0.1:1");
        });
        using (host)
        {
            Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == Log.IdSettingsInForce);
            Assert.DoesNotContain(logs.GetSnapshot(), r => r.Id.Id is Log.IdDistributedCacheNotInUse or Log.IdOutputCacheStoreNotInUse);
        }
    }

    [Fact]
    public void ConfigureRedisCacheOptions_AfterTheRegistration_IsWhatTheCacheUses_AsWithTheStockProvider()
    {
        // The stock provider's test, run against ours: RedisCacheOptions configured after the registration apply.
        var services = new ServiceCollection();
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
        services.Configure<RedisCacheOptions>(o => o.InstanceName = "cfg:");
        var stock = new ServiceCollection();
        stock.AddStackExchangeRedisCache(o => o.Configuration = "localhost");
        stock.Configure<RedisCacheOptions>(o => o.InstanceName = "cfg:");

        using var provider = services.BuildServiceProvider();
        using var stockProvider = stock.BuildServiceProvider();
        Assert.Equal("cfg:", stockProvider.GetRequiredService<IOptions<RedisCacheOptions>>().Value.InstanceName);
        Assert.Equal("cfg:", provider.GetRequiredService<IOptions<RedisCacheOptions>>().Value.InstanceName);
        Assert.IsType<ResilientDistributedCache>(provider.GetRequiredService<IDistributedCache>());
        var used = provider.GetRequiredService<ResilientRedisCacheServices>();
        Assert.Equal("cfg:", used.Options.InstanceName);
        Assert.Equal("cfg:", used.CreateInnerOptions().InstanceName);
    }

    [Fact]
    public void StockRegistrationsDelegate_BeforeOurs_StillApplies_AndOursWinsWhereBothSetAValue()
    {
        // An earlier AddStackExchangeRedisCache (a library's, say) configures RedisCacheOptions as any code does.
        var services = new ServiceCollection();
        services.AddStackExchangeRedisCache(o =>
        {
            o.Configuration = "stock-host";
            o.InstanceName = "stock:";
        });
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");

        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<ResilientRedisCacheServices>().Options;
        Assert.Equal("localhost", options.Configuration);
        Assert.Equal("stock:", options.InstanceName);
    }

    [Fact]
    public async Task OutputCacheWithoutTheCachesRegistration_FailsStartSayingWhatToCall()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new());
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddOutputCache();
        builder.Services.AddResilientStackExchangeRedisOutputCache();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("AddResilientStackExchangeRedisOutputCache was called, but AddResilientStackExchangeRedisCache was not", error.Message, StringComparison.Ordinal);
        Assert.Contains("Call services.AddResilientStackExchangeRedisCache(...)", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("is empty", error.Message, StringComparison.Ordinal);

        // Without a host (no ValidateOnStart): the same message when the store is first resolved.
        var services = new ServiceCollection();
        services.AddKeyedResilientStackExchangeRedisCache("data", o => o.Configuration = "localhost");
        services.AddResilientStackExchangeRedisOutputCache();
        using var provider = services.BuildServiceProvider();
        error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOutputCacheStore>());
        Assert.Contains("AddResilientStackExchangeRedisCache was not", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OutputCacheWithTheCachesRegistration_OrItsConnectionConfigured_Resolves()
    {
        var services = new ServiceCollection();
        services.AddResilientStackExchangeRedisOutputCache();
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
        using (var provider = services.BuildServiceProvider())
        {
            Assert.NotNull(provider.GetRequiredService<IOutputCacheStore>());
        }

        // A connection set for the stock options is a connection: nothing is missing.
        services = new ServiceCollection();
        services.AddResilientStackExchangeRedisOutputCache();
        services.Configure<RedisCacheOptions>(o => o.Configuration = "localhost");
        using (var provider = services.BuildServiceProvider())
        {
            Assert.NotNull(provider.GetRequiredService<IOutputCacheStore>());
        }
    }

    private static async Task<(FakeLogCollector Logs, IHost Host)> StartAsync(Action<IServiceCollection> register)
    {
        var logs = new FakeLogCollector();
        var builder = Host.CreateEmptyApplicationBuilder(new());
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddLogging(b => b.AddProvider(new FakeLoggerProvider(logs)));
        register(builder.Services);
        var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        await host.StopAsync(TestContext.Current.CancellationToken);
        return (logs, host);
    }
}

using Microsoft.AspNetCore.OutputCaching.StackExchangeRedis;
using Resilient.Caching.OutputCaching;
using StackExchange.Redis;
using StackExchange.Redis.Profiling;

namespace Resilient.Caching.Tests.OutputCaching;

/// <summary>The stock output-cache store's options over the cache's settings: the prefix and the profiler, never a connection of its own.</summary>
public sealed class OutputCacheSetupTests
{
    private static readonly Func<ProfilingSession> Profiler = static () => new ProfilingSession();

    [Fact]
    public void WithoutADelegate_TheStoreTakesTheCachesPrefixAndProfiler()
    {
        var options = new OutputCacheSetup(null).Options(Cache());

        Assert.Equal("app:", options.InstanceName);
        Assert.Same(Profiler, options.ProfilingSession);
        Assert.Null(options.Configuration);
        Assert.Null(options.ConfigurationOptions);
        Assert.Null(options.ConnectionMultiplexerFactory);
    }

    [Fact]
    public void TheDelegate_SeesTheCachesSettings_AndItsPrefixWins()
    {
        string? seen = null;
        var options = new OutputCacheSetup(o =>
        {
            seen = o.InstanceName;
            o.InstanceName = "pages:";
        }).Options(Cache());

        Assert.Equal("app:", seen);
        Assert.Equal("pages:", options.InstanceName);
        Assert.Same(Profiler, options.ProfilingSession);
    }

    [Fact]
    public void TheDelegate_RunsOncePerCall_OnFreshOptions()
    {
        var runs = 0;
        var setup = new OutputCacheSetup(o =>
        {
            runs++;
            o.InstanceName += "pages:";
        });

        var first = setup.Options(Cache());
        var second = setup.Options(Cache());

        Assert.Equal(2, runs);
        Assert.NotSame(first, second);
        Assert.Equal("app:pages:", second.InstanceName);
    }

    [Theory]
    [InlineData(nameof(RedisOutputCacheOptions.Configuration))]
    [InlineData(nameof(RedisOutputCacheOptions.ConfigurationOptions))]
    [InlineData(nameof(RedisOutputCacheOptions.ConnectionMultiplexerFactory))]
    public void AConnectionInTheOutputCacheOptions_IsAnError_PointingToTheCachesRegistration(string setting)
    {
        var setup = new OutputCacheSetup(o =>
        {
            switch (setting)
            {
                case nameof(RedisOutputCacheOptions.Configuration):
                    o.Configuration = "localhost:6379";
                    break;
                case nameof(RedisOutputCacheOptions.ConfigurationOptions):
                    o.ConfigurationOptions = ConfigurationOptions.Parse("localhost:6379");
                    break;
                default:
                    o.ConnectionMultiplexerFactory = static () => Task.FromException<IConnectionMultiplexer>(new InvalidOperationException("never called"));
                    break;
            }
        });

        var error = Assert.Throws<InvalidOperationException>(() => setup.Options(Cache()));

        Assert.Contains("AddResilientStackExchangeRedisCache", error.Message, StringComparison.Ordinal);
        Assert.Contains(setting, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheCachesOwnConnection_IsNotCopiedIntoTheStoresOptions()
    {
        var cache = Cache();
        cache.Configuration = "redis:6379,password=secret";

        var options = new OutputCacheSetup(null).Options(cache);

        Assert.Null(options.Configuration);
    }

    private static ResilientRedisCacheOptions Cache() => new() { InstanceName = "app:", ProfilingSession = Profiler };
}

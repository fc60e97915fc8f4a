using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Resilient.Caching.Configuration;
using Resilient.Caching.Connection;
using StackExchange.Redis;

namespace Resilient.Caching.Tests;

public sealed class OptionsTests
{
    [Fact]
    public void Defaults_AreTheDocumentedOnes()
    {
        var options = Resolve(new Dictionary<string, string?>(), env: [], setup: o => o.Configuration = "localhost:6379");

        Assert.True(options.SocketKeepAlive);
        Assert.Equal(TimeSpan.FromSeconds(60), options.TcpKeepAlive.Idle);
        Assert.Equal(TimeSpan.FromSeconds(10), options.TcpKeepAlive.Interval);
        Assert.Equal(9, options.TcpKeepAlive.Count);
        Assert.Equal(TimeSpan.FromSeconds(5), options.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), options.OperationTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), options.UnavailableWindow);
        Assert.True(options.IgnoreExceptions);
        Assert.True(options.LogIgnoredExceptions);
        Assert.False(options.DedicatedThreads);
        Assert.False(options.InvalidateKeysReadDuringOutage);
        Assert.Null(options.InvalidateKeyPrefixesReadDuringOutage);
    }

    [Fact]
    public void Section_BindsEverySetting_SecondsOrTimeSpans()
    {
        var options = Resolve(
            new Dictionary<string, string?>
            {
                ["Redis:Configuration"] = "cache:6380",
                ["Redis:InstanceName"] = "app:",
                ["Redis:SocketKeepAlive"] = "false",
                ["Redis:TcpKeepAlive:Idle"] = "30",
                ["Redis:TcpKeepAlive:Interval"] = "00:00:05",
                ["Redis:TcpKeepAlive:Count"] = "4",
                ["Redis:ConnectTimeout"] = "1.5",
                ["Redis:OperationTimeout"] = "00:00:00.250",
                ["Redis:UnavailableWindow"] = "45",
                ["Redis:IgnoreExceptions"] = "no",
                ["Redis:LogIgnoredExceptions"] = "off",
            },
            env: []);

        Assert.Equal("cache:6380", options.Configuration);
        Assert.Equal("app:", options.InstanceName);
        Assert.False(options.SocketKeepAlive);
        Assert.Equal(TimeSpan.FromSeconds(30), options.TcpKeepAlive.Idle);
        Assert.Equal(TimeSpan.FromSeconds(5), options.TcpKeepAlive.Interval);
        Assert.Equal(4, options.TcpKeepAlive.Count);
        Assert.Equal(TimeSpan.FromSeconds(1.5), options.ConnectTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(250), options.OperationTimeout);
        Assert.Equal(TimeSpan.FromSeconds(45), options.UnavailableWindow);
        Assert.False(options.IgnoreExceptions);
        Assert.False(options.LogIgnoredExceptions);
    }

    [Fact]
    public void Precedence_DefaultsThenSectionThenCodeThenEnvironment()
    {
        var section = new Dictionary<string, string?>
        {
            ["Redis:Configuration"] = "localhost:6379",
            ["Redis:TcpKeepAlive:Idle"] = "30",
            ["Redis:TcpKeepAlive:Interval"] = "5",
            ["Redis:UnavailableWindow"] = "20",
        };
        Action<ResilientRedisCacheOptions> code = o =>
        {
            o.TcpKeepAlive.Idle = TimeSpan.FromSeconds(40);
            o.UnavailableWindow = TimeSpan.FromSeconds(25);
        };

        var withEnv = Resolve(section, new() { ["TCP_KEEPALIVE_IDLE"] = "50" }, code);
        Assert.Equal(TimeSpan.FromSeconds(50), withEnv.TcpKeepAlive.Idle);       // environment beats code
        Assert.Equal(TimeSpan.FromSeconds(25), withEnv.UnavailableWindow);       // code beats section
        Assert.Equal(TimeSpan.FromSeconds(5), withEnv.TcpKeepAlive.Interval);    // section beats default
        Assert.Equal(9, withEnv.TcpKeepAlive.Count);                            // default

        var withoutEnv = Resolve(section, env: [], code);
        Assert.Equal(TimeSpan.FromSeconds(40), withoutEnv.TcpKeepAlive.Idle);
    }

    [Fact]
    public void EveryFlatEnvironmentVariable_IsRead()
    {
        var options = Resolve(
            new Dictionary<string, string?>(),
            new()
            {
                ["REDIS_CACHE_SOCKET_KEEPALIVE"] = "0",
                ["TCP_KEEPALIVE_IDLE"] = "7",
                ["TCP_KEEPALIVE_INTVL"] = "3",
                ["TCP_KEEPALIVE_CNT"] = "5",
                ["REDIS_CACHE_SOCKET_CONNECT_TIMEOUT"] = "2",
                ["REDIS_CACHE_SOCKET_TIMEOUT"] = "0.5",
                ["REDIS_CACHE_UNAVAILABLE_WINDOW"] = "12",
                ["REDIS_CACHE_IGNORE_EXCEPTIONS"] = "false",
                ["REDIS_CACHE_LOG_IGNORED_EXCEPTIONS"] = "FALSE",
                ["REDIS_CACHE_DEDICATED_THREADS"] = "off",
                ["REDIS_CACHE_INVALIDATE_KEYS_READ_DURING_OUTAGE"] = "no",
            },
            o => o.Configuration = "localhost");

        Assert.False(options.SocketKeepAlive);
        Assert.Equal(TimeSpan.FromSeconds(7), options.TcpKeepAlive.Idle);
        Assert.Equal(TimeSpan.FromSeconds(3), options.TcpKeepAlive.Interval);
        Assert.Equal(5, options.TcpKeepAlive.Count);
        Assert.Equal(TimeSpan.FromSeconds(2), options.ConnectTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(500), options.OperationTimeout);
        Assert.Equal(TimeSpan.FromSeconds(12), options.UnavailableWindow);
        Assert.False(options.IgnoreExceptions);
        Assert.False(options.LogIgnoredExceptions);
        Assert.False(options.DedicatedThreads);
        Assert.False(options.InvalidateKeysReadDuringOutage);
    }

    [Theory]
    [InlineData("TCP_KEEPALIVE_IDLE", "abc", "TcpKeepAlive.Idle = 'abc' (from environment variable TCP_KEEPALIVE_IDLE) is not valid: expected a number of seconds")]
    [InlineData("TCP_KEEPALIVE_CNT", "0", "TcpKeepAlive.Count = '0' (from environment variable TCP_KEEPALIVE_CNT) is not valid: must be from 1 to 127")]
    [InlineData("TCP_KEEPALIVE_INTVL", "1.5", "TcpKeepAlive.Interval = '1.5 s' (from environment variable TCP_KEEPALIVE_INTVL) is not valid: must be a whole number of seconds")]
    [InlineData("TCP_KEEPALIVE_IDLE", "40000", "TcpKeepAlive.Idle = '40000 s' (from environment variable TCP_KEEPALIVE_IDLE) is not valid: must be a whole number of seconds from 1 to 32767 (the range the operating system accepts)")]
    [InlineData("REDIS_CACHE_UNAVAILABLE_WINDOW", "-5", "UnavailableWindow = '-5 s' (from environment variable REDIS_CACHE_UNAVAILABLE_WINDOW) is not valid")]
    [InlineData("REDIS_CACHE_SOCKET_TIMEOUT", "0", "OperationTimeout = '0 s' (from environment variable REDIS_CACHE_SOCKET_TIMEOUT) is not valid")]
    [InlineData("REDIS_CACHE_SOCKET_KEEPALIVE", "maybe", "SocketKeepAlive = 'maybe' (from environment variable REDIS_CACHE_SOCKET_KEEPALIVE) is not valid: expected true or false")]
    public void InvalidEnvironmentValue_FailsNamingSettingSourceAndValue(string variable, string value, string expected)
    {
        var error = Assert.Throws<OptionsValidationException>(
            () => Resolve(new Dictionary<string, string?>(), new() { [variable] = value }, o => o.Configuration = "localhost"));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidValues_FromSectionAndCode_NameTheirSource()
    {
        var error = Assert.Throws<OptionsValidationException>(() => Resolve(
            new Dictionary<string, string?> { ["Redis:Configuration"] = "localhost", ["Redis:TcpKeepAlive:Count"] = "200" },
            env: [],
            o => o.UnavailableWindow = TimeSpan.FromSeconds(-1)));

        Assert.Contains("TcpKeepAlive.Count = '200' (from configuration key 'Redis:TcpKeepAlive:Count')", error.Message, StringComparison.Ordinal);
        Assert.Contains("UnavailableWindow = '-1 s' (from code (the AddResilientStackExchangeRedisCache delegate))", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SectionSeconds_AreNeverReadAsDays()
    {
        // TimeSpan.Parse("60") is sixty days; a keepalive of sixty days would be rejected, a window of sixty days
        // would disable the cache for two months.
        var options = Resolve(new Dictionary<string, string?> { ["Redis:Configuration"] = "localhost", ["Redis:UnavailableWindow"] = "60" }, env: []);
        Assert.Equal(TimeSpan.FromSeconds(60), options.UnavailableWindow);
    }

    [Theory]
    [InlineData("")]
    [InlineData("localhost:6379,nonsense=1,password=hunter2")]
    [InlineData("password=hunter2")]
    public void MissingOrUnparsableConnection_FailsAtStartup_WithoutEchoingIt(string configuration)
    {
        var error = Assert.Throws<OptionsValidationException>(
            () => Resolve(new Dictionary<string, string?>(), env: [], o => o.Configuration = configuration));

        Assert.Contains("Configuration", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ValidateOnStart_InvalidSettingFailsHostStart()
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new());
        builder.Services.AddSingleton(new EnvironmentVariables(name => name == "TCP_KEEPALIVE_IDLE" ? "abc" : null));
        builder.Services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("TCP_KEEPALIVE_IDLE", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SettingsAreLoggedOnceAtStart_WithThePasswordRedacted()
    {
        var logs = new FakeLogCollector();
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new());
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(new FakeLoggerProvider(logs)));
        builder.Services.AddResilientStackExchangeRedisCache(o =>
        {
            // Port 1 on loopback refuses: the failing connect and calls are logged too, and must not leak it either.
            o.Configuration = "127.0.0.1:1,password=S3cr3t-Pa55word,user=app";
            o.OperationTimeout = TimeSpan.FromMilliseconds(300);
            o.ConnectTimeout = TimeSpan.FromMilliseconds(300);
        });
        using var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        var cache = host.Services.GetRequiredService<Microsoft.Extensions.Caching.Distributed.IDistributedCache>();
        Assert.Null(await cache.GetAsync("k", TestContext.Current.CancellationToken));
        await host.StopAsync(TestContext.Current.CancellationToken);

        var records = logs.GetSnapshot();
        var settings = Assert.Single(records, r => r.Id.Id == Log.IdSettingsInForce);
        Assert.Equal(LogLevel.Information, settings.Level);
        Assert.Contains("TcpKeepAlive.Idle=60 s (the default)", settings.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:1", settings.Message, StringComparison.Ordinal);
        Assert.Contains(records, r => r.Id.Id == Log.IdWindowOpened);
        foreach (var record in records)
        {
            Assert.DoesNotContain("S3cr3t", record.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("S3cr3t", record.Exception?.ToString() ?? string.Empty, StringComparison.Ordinal);
            Assert.DoesNotContain("S3cr3t", string.Join(";", record.StructuredState ?? []), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void UserConfigurationOptions_AreClonedNotMutated_AndTheirHookIsChained()
    {
        var userHookCalls = 0;
        var user = new ConfigurationOptions { AbortOnConnectFail = true, EndPoints = { { IPAddress.Loopback, 6379 } } };
        user.BeforeSocketConnect = (_, _, _) => userHookCalls++;
        var options = new ResilientRedisCacheOptions { ConfigurationOptions = user, OperationTimeout = TimeSpan.FromSeconds(3) };

        var effective = ConnectionSettings.Build(options, new FakeLogger());

        Assert.NotSame(user, effective);
        Assert.True(user.AbortOnConnectFail);
        Assert.False(effective.AbortOnConnectFail);
        Assert.Equal(3000, effective.SyncTimeout);
        Assert.Equal(3000, effective.AsyncTimeout);
        Assert.Equal(5000, effective.ConnectTimeout);
        Assert.Same(BacklogPolicy.FailFast, effective.BacklogPolicy);

        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        effective.BeforeSocketConnect!(new IPEndPoint(IPAddress.Loopback, 6379), ConnectionType.Interactive, socket);
        Assert.Equal(1, userHookCalls);
        Assert.NotEqual(0, (int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!);
        Assert.Equal(60, (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime)!);
        Assert.Equal(10, (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval)!);
        Assert.Equal(9, (int)socket.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount)!);

        // Closing aborts: nothing the cache gave up on is retransmitted once the path heals.
        Assert.True(socket.LingerState!.Enabled);
        Assert.Equal(0, socket.LingerState.LingerTime);
    }

    [Fact]
    public void TcpUserTimeout_IsSetOnIpEndPoints_NotOnHostNames()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "TCP_USER_TIMEOUT is Linux-only");
        var hook = ConnectionSettings.Build(new ResilientRedisCacheOptions { Configuration = "localhost" }, new FakeLogger()).BeforeSocketConnect!;

        using var ip = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        hook(new IPEndPoint(IPAddress.Loopback, 6379), ConnectionType.Interactive, ip);
        Assert.Equal((60 + (10 * 9)) * 1000, UserTimeout(ip));

        // A host name may resolve to several addresses; .NET would not carry the raw option to the next one.
        using var named = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        hook(new DnsEndPoint("localhost", 6379), ConnectionType.Subscription, named);
        Assert.Equal(0, UserTimeout(named));
        Assert.NotEqual(0, (int)named.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!);
    }

    [Fact]
    public void KeepAliveOff_SetsNoKeepAlive_AndUnixSocketsAreSkipped()
    {
        var off = ConnectionSettings.Build(new ResilientRedisCacheOptions { Configuration = "localhost", SocketKeepAlive = false }, new FakeLogger());
        Assert.False(off.TcpKeepAlive);
        using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        off.BeforeSocketConnect!(new IPEndPoint(IPAddress.Loopback, 6379), ConnectionType.Interactive, tcp);
        Assert.Equal(0, (int)tcp.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!);
        Assert.True(tcp.LingerState!.Enabled, "closing aborts whatever the keepalive setting");

        var on = ConnectionSettings.Build(new ResilientRedisCacheOptions { Configuration = "localhost" }, new FakeLogger());
        using var unix = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        on.BeforeSocketConnect!(new UnixDomainSocketEndPoint("/tmp/redis.sock"), ConnectionType.Interactive, unix); // must not throw
    }

    [Fact]
    public async Task UserConnectionFactory_IsNeverReset_AndTheWarningSaysSettingsAreNotApplied()
    {
        var logs = new FakeLogCollector();
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new());
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddLogging(b => b.AddProvider(new FakeLoggerProvider(logs)));
        var mock = new Moq.Mock<IConnectionMultiplexer>();
        mock.Setup(m => m.IsConnected).Returns(true);
        var multiplexer = mock.Object;
        builder.Services.AddResilientStackExchangeRedisCache(o => o.ConnectionMultiplexerFactory = () => Task.FromResult(multiplexer));
        using var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);

        var connection = host.Services.GetRequiredService<ResilientRedisCacheServices>().Connection;
        Assert.False(connection.IsOwned);
        Assert.True(await connection.WaitReadyAsync(TimeSpan.FromSeconds(10), CancellationToken.None));
        connection.Reset();
        Assert.Equal(0, connection.Generation);
        Assert.True(connection.IsReady);
        Assert.Same(multiplexer, await connection.GetMultiplexerAsync());
        Assert.Single(logs.GetSnapshot(), r => r.Id.Id == Log.IdSettingsNotApplied && r.Level == LogLevel.Warning);
        await host.StopAsync(TestContext.Current.CancellationToken);
    }

    [Fact]
    public void HealthCheckAndOutputCache_DoNotReplaceTheApplicationsDistributedCache()
    {
        var services = new ServiceCollection();
        services.AddDistributedMemoryCache();
        services.AddHealthChecks().AddResilientStackExchangeRedisCache();
        services.AddResilientStackExchangeRedisOutputCache();
        using (var provider = services.BuildServiceProvider())
        {
            Assert.IsNotType<ResilientDistributedCache>(provider.GetRequiredService<Microsoft.Extensions.Caching.Distributed.IDistributedCache>());
        }

        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
        using (var provider = services.BuildServiceProvider())
        {
            Assert.IsType<ResilientDistributedCache>(provider.GetRequiredService<Microsoft.Extensions.Caching.Distributed.IDistributedCache>());
        }
    }

    [Fact]
    public void RedisCacheOptionsConfiguration_CountsWhereItWasRegistered_AsWithTheStockProvider()
    {
        var services = new ServiceCollection();
        services.AddSingleton(new EnvironmentVariables(_ => null));
        services.Configure<RedisCacheOptions>(o =>
        {
            o.InstanceName = "before:";                  // overridden by the registration's delegate below
            o.Configuration = "localhost:6379";          // the delegate leaves it alone: applies
        });
        services.AddResilientStackExchangeRedisCache(o =>
        {
            o.InstanceName = "code:";
            o.UnavailableWindow = TimeSpan.FromSeconds(20);
        });
        services.Configure<RedisCacheOptions>(o => ((ResilientRedisCacheOptions)o).UnavailableWindow = TimeSpan.FromSeconds(7));

        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value;
        Assert.Equal("code:", options.InstanceName);
        Assert.Equal("localhost:6379", options.Configuration);
        Assert.Equal(TimeSpan.FromSeconds(7), options.UnavailableWindow);
    }

    [Fact]
    public void RedisCacheOptions_AreTheSettingsInForce_TheSameInstanceTheCacheUses()
    {
        var services = new ServiceCollection();
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost:6379");
        using var provider = services.BuildServiceProvider();

        var stock = provider.GetRequiredService<IOptions<RedisCacheOptions>>().Value;
        Assert.Same(provider.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value, stock);
        Assert.Same(provider.GetRequiredService<ResilientRedisCacheServices>().Options, stock);
        Assert.Equal("localhost:6379", provider.GetRequiredService<IOptionsMonitor<RedisCacheOptions>>().CurrentValue.Configuration);
        using var scope = provider.CreateScope();
        Assert.IsType<ResilientRedisCacheOptions>(scope.ServiceProvider.GetRequiredService<IOptionsSnapshot<RedisCacheOptions>>().Value);
    }

    [Fact]
    public void NamedRedisCacheOptionsConfiguration_ConfiguresTheKeyedCacheOfThatName()
    {
        var services = new ServiceCollection();
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost:6379");
        services.AddKeyedResilientStackExchangeRedisCache("data", o => o.Configuration = "localhost:6380");
        services.Configure<RedisCacheOptions>(o => o.InstanceName = "default:");
        services.Configure<RedisCacheOptions>("data", o => o.InstanceName = "data:");
        services.ConfigureAll<RedisCacheOptions>(o => o.ProfilingSession = static () => new());

        using var provider = services.BuildServiceProvider();
        var data = provider.GetRequiredKeyedService<ResilientRedisCacheServices>("data").Options;
        Assert.Equal("data:", data.InstanceName);
        Assert.Equal("localhost:6380", data.Configuration);
        Assert.NotNull(data.ProfilingSession);
        Assert.Equal("data:", provider.GetRequiredService<IOptionsMonitor<RedisCacheOptions>>().Get("data").InstanceName);
        var unkeyed = provider.GetRequiredService<ResilientRedisCacheServices>().Options;
        Assert.Equal("default:", unkeyed.InstanceName);
        Assert.NotNull(unkeyed.ProfilingSession);
    }

    [Fact]
    public void RedisCacheOptionsBoundFromASection_AndConfigureOptionsClasses_Apply()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Cache:Configuration"] = "localhost:6379",
            ["Cache:InstanceName"] = "bound:",
        }).Build();
        var services = new ServiceCollection();
        services.AddResilientStackExchangeRedisCache(_ => { });
        services.Configure<RedisCacheOptions>(configuration.GetSection("Cache"));
        services.AddSingleton<IConfigureOptions<RedisCacheOptions>, ConfigureProfiler>();

        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value;
        Assert.Equal("localhost:6379", options.Configuration);
        Assert.Equal("bound:", options.InstanceName);
        Assert.Same(ConfigureProfiler.Session, options.ProfilingSession);
    }

    [Fact]
    public void RedisCacheOptionsPostConfiguration_RunsAfterTheDelegate_AndTheEnvironmentStillWins()
    {
        var services = new ServiceCollection();
        services.AddSingleton(new EnvironmentVariables(name => name == "REDIS_CACHE_UNAVAILABLE_WINDOW" ? "9" : null));
        services.PostConfigure<RedisCacheOptions>(o =>
        {
            o.InstanceName = "post:";
            ((ResilientRedisCacheOptions)o).UnavailableWindow = TimeSpan.FromSeconds(3);
        });
        services.AddResilientStackExchangeRedisCache(o =>
        {
            o.Configuration = "localhost:6379";
            o.InstanceName = "code:";
        });

        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value;
        Assert.Equal("post:", options.InstanceName);
        Assert.Equal(TimeSpan.FromSeconds(9), options.UnavailableWindow);
    }

    [Fact]
    public void ResilientOptionsConfiguration_WinsOverRedisCacheOptionsConfiguration_RegisteredBetweenTheSameRegistrations()
    {
        var services = new ServiceCollection();
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost:6379");
        services.Configure<ResilientRedisCacheOptions>(o => o.InstanceName = "derived:");
        services.Configure<RedisCacheOptions>(o => o.InstanceName = "base:");

        using var provider = services.BuildServiceProvider();
        Assert.Equal("derived:", provider.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value.InstanceName);
    }

    [Fact]
    public void InvalidConnection_FromRedisCacheOptionsConfiguration_NamesThatSource()
    {
        var services = new ServiceCollection();
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost:6379");
        services.Configure<RedisCacheOptions>(o => o.Configuration = "not a host!");
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<RedisCacheOptions>>().Value);
        Assert.Contains("Configuration (from a RedisCacheOptions configuration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RegistrationLayers_AndRedisCacheOptionsConfiguration_AreMergedInRegistrationOrder()
    {
        var services = new ServiceCollection();
        var applied = new List<string>();
        services.ConfigureAll<RedisCacheOptions>(_ => applied.Add("base 1"));
        services.Configure<ResilientRedisCacheOptions>(_ => applied.Add("derived 1"));
        services.AddResilientStackExchangeRedisCache(new ConfigurationBuilder().Build(), o =>
        {
            o.Configuration = "localhost:6379";
            applied.Add("registration delegate");
        });
        services.AddKeyedResilientStackExchangeRedisCache("data", _ => applied.Add("keyed delegate"));
        services.Configure<ResilientRedisCacheOptions>(_ => applied.Add("derived 2"));
        services.ConfigureAll<RedisCacheOptions>(_ => applied.Add("base 2"));
        services.AddResilientStackExchangeRedisCache(_ => applied.Add("second registration"));
        services.ConfigureAll<RedisCacheOptions>(_ => applied.Add("base 3"));

        using var provider = services.BuildServiceProvider();
        _ = provider.GetRequiredService<IOptionsFactory<ResilientRedisCacheOptions>>().Create(Options.DefaultName);
        Assert.Equal(["base 1", "derived 1", "registration delegate", "base 2", "derived 2", "second registration", "base 3"], applied);
    }

    private static int UserTimeout(Socket socket)
    {
        Span<byte> value = stackalloc byte[4];
        socket.GetRawSocketOption(6, 18, value);
        return BitConverter.ToInt32(value);
    }

    private sealed class ConfigureProfiler : IConfigureOptions<RedisCacheOptions>
    {
        public static readonly Func<StackExchange.Redis.Profiling.ProfilingSession> Session = static () => new();

        public void Configure(RedisCacheOptions options) => options.ProfilingSession = Session;
    }

    internal static ResilientRedisCacheOptions Resolve(
        Dictionary<string, string?> configuration, Dictionary<string, string> env, Action<ResilientRedisCacheOptions>? setup = null)
    {
        var services = new ServiceCollection();
        services.AddSingleton(new EnvironmentVariables(name => env.GetValueOrDefault(name)));
        var section = new ConfigurationBuilder().AddInMemoryCollection(configuration).Build().GetSection("Redis");
        services.AddResilientStackExchangeRedisCache(section, setup);
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value;
    }
}

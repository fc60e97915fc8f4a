using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Resilient.Caching.Configuration;
using Resilient.Caching.Connection;
using StackExchange.Redis;

namespace Resilient.Caching.Tests;

public sealed class ConnectionStringTests
{
    private const string Secret = "S3cr3tPw!";

    [Fact]
    public void RedisUri_PutsTheCredentialsInTheOptions_NeverInAnEndPoint()
    {
        var parsed = RedisConnectionString.Parse($"redis://alice-acl:{Secret}@127.0.0.1:6380/2");

        var endPoint = Assert.IsType<IPEndPoint>(Assert.Single(parsed.EndPoints));
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 6380), endPoint);
        Assert.Equal("alice-acl", parsed.User);
        Assert.Equal(Secret, parsed.Password);
        Assert.Equal(2, parsed.DefaultDatabase);
        Assert.False(parsed.Ssl);
        Assert.DoesNotContain(Secret, parsed.ToString(includePassword: false), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("redis://cache.internal", "cache.internal", 6379, null, null, null, false)]
    [InlineData("rediss://:p%40ss%2Cw@cache.internal:6380", "cache.internal", 6380, null, "p@ss,w", null, true)]
    [InlineData("redis://onlyapassword@cache.internal/0", "cache.internal", 6379, null, "onlyapassword", 0, false)]
    [InlineData("REDIS://u:p@ss/w:rd@cache.internal:7000", "cache.internal", 7000, "u", "p@ss/w:rd", null, false)]
    public void RedisUri_Forms(string uri, string host, int port, string? user, string? password, int? database, bool ssl)
    {
        var parsed = RedisConnectionString.Parse(uri);

        Assert.Equal(new DnsEndPoint(host, port), Assert.Single(parsed.EndPoints));
        Assert.Equal(user, parsed.User);
        Assert.Equal(password, parsed.Password);
        Assert.Equal(database, parsed.DefaultDatabase);
        Assert.Equal(ssl, parsed.Ssl);
    }

    [Fact]
    public void RedisUri_Ipv6_AndStackExchangeOptionsAfterAComma()
    {
        var parsed = RedisConnectionString.Parse($"redis://:{Secret}@[::1]:6379,abortConnect=false,name=shop");

        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 6379), Assert.Single(parsed.EndPoints));
        Assert.Equal(Secret, parsed.Password);
        Assert.False(parsed.AbortOnConnectFail);
        Assert.Equal("shop", parsed.ClientName);
    }

    [Theory]
    [InlineData("redis://alice:S3cr3tPw!@cache:99999")]
    [InlineData("redis://alice:S3cr3tPw!@cache/notadb")]
    [InlineData("redis://alice:S3cr3tPw!@cache?ssl=true")]
    [InlineData("redis://alice:S3cr3tPw!@")]
    [InlineData("redis://alice:S3cr3tPw!@[::1")]
    public void BadRedisUri_FailsWithoutRepeatingIt(string uri)
    {
        var error = Assert.Throws<FormatException>(() => RedisConnectionString.Parse(uri));
        Assert.DoesNotContain("S3cr3tPw", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("alice", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StackExchangeFormat_IsParsedAsBefore()
    {
        var parsed = RedisConnectionString.Parse($"cache:6379,user=alice-acl,password={Secret},ssl=true");

        Assert.Equal(new DnsEndPoint("cache", 6379), Assert.Single(parsed.EndPoints));
        Assert.Equal("alice-acl", parsed.User);
        Assert.Equal(Secret, parsed.Password);
        Assert.True(parsed.Ssl);
    }

    [Fact]
    public void TheConnection_IsBuiltFromTheUri()
    {
        var built = ConnectionSettings.Build(
            new ResilientRedisCacheOptions { Configuration = $"rediss://alice-acl:{Secret}@127.0.0.1:6380/1" }, new Microsoft.Extensions.Logging.Testing.FakeLogger());

        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 6380), Assert.Single(built.EndPoints));
        Assert.Equal(Secret, built.Password);
        Assert.Equal("alice-acl", built.User);
        Assert.True(built.Ssl);
        Assert.Equal(1, built.DefaultDatabase);
    }

    [Fact]
    public void UriFromTheConfigurationSection_AndFromTheEnvironment_Binds()
    {
        var fromSection = Resolve(new() { ["Redis:Configuration"] = $"redis://alice-acl:{Secret}@127.0.0.1:6379" });
        Assert.Equal($"redis://alice-acl:{Secret}@127.0.0.1:6379", fromSection.Configuration);

        // Redis__Configuration, as a platform's REDIS_URL is usually handed on (a prefix of its own: tests run in parallel).
        var prefix = "RESILIENT_TEST_" + Guid.NewGuid().ToString("N") + "_";
        Environment.SetEnvironmentVariable(prefix + "Redis__Configuration", $"rediss://:{Secret}@cache.internal:6380/3");
        IConfiguration environment;
        try
        {
            environment = new ConfigurationBuilder().AddEnvironmentVariables(prefix).Build();
        }
        finally
        {
            Environment.SetEnvironmentVariable(prefix + "Redis__Configuration", null);
        }

        var fromEnvironment = ResolveSection(environment.GetSection("Redis"));
        var built = RedisConnectionString.Build(fromEnvironment);
        Assert.Equal(new DnsEndPoint("cache.internal", 6380), Assert.Single(built.EndPoints));
        Assert.True(built.Ssl);
        Assert.Equal(Secret, built.Password);
        Assert.Equal(3, built.DefaultDatabase);
    }

    [Theory]
    [InlineData("not a host:::", "'not a host:::' is not a host name")]
    [InlineData("alice-acl:S3cr3tPw!@127.0.0.1:6379", "an endpoint is not a host name")]
    [InlineData("http://alice-acl:S3cr3tPw!@127.0.0.1:6379", "an endpoint is not a host name")]
    [InlineData("redis://alice-acl:S3cr3tPw!@127.0.0.1:port", "could not be parsed: The Redis URI's port")]
    [InlineData("cache:notaport", "names no Redis endpoint")]
    public void ConfigurationThatCannotBeAHost_FailsStartUp_NamingTheKey_NeverTheSecret(string configuration, string expected)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Resolve(new() { ["Redis:Configuration"] = configuration }));

        Assert.Contains("Configuration (from configuration key 'Redis:Configuration')", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("S3cr3tPw", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("alice-acl", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("redis_cache:6379")]
    [InlineData("cache.internal,abortConnect=false")]
    [InlineData("[::1]:6379")]
    [InlineData("a-label-longer-than-sixty-three-characters-still-passes-the-check-since-it-may-resolve-somewhere:6379")]
    [InlineData("redis://redis_cache")]
    public void HostNames_ThatMayOnlyFailToResolve_StartUp(string configuration) =>
        Assert.Equal(configuration, Resolve(new() { ["Redis:Configuration"] = configuration }).Configuration);

    [Fact]
    public void ConfigurationOptionsWithAUriForAHost_FailsStartUp_NeverEchoingIt()
    {
        // What ConfigurationOptions.Parse makes of a URI: one "host" holding the credentials.
        var supplied = ConfigurationOptions.Parse($"redis://alice-acl:{Secret}@127.0.0.1:6379");
        var error = Assert.Throws<OptionsValidationException>(() => Resolve([], o => o.ConfigurationOptions = supplied));

        Assert.Contains("ConfigurationOptions (from code (the AddResilientStackExchangeRedisCache delegate)) is not valid", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("S3cr3tPw", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConfigurationFromCode_IsNamedAsSuch()
    {
        var error = Assert.Throws<OptionsValidationException>(() => Resolve([], o => o.Configuration = "not a host:::"));
        Assert.Contains("Configuration (from code (the AddResilientStackExchangeRedisCache delegate))", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Redis:OperationTimout", "'Redis:OperationTimout' (configuration key) is not a setting of the Redis cache (did you mean 'OperationTimeout'?)")]
    [InlineData("Redis:ConnectionString", "'Redis:ConnectionString' (configuration key) is not a setting of the Redis cache")]
    [InlineData("Redis:TcpKeepAlive:Idel", "'Redis:TcpKeepAlive:Idel' (configuration key) is not a setting of the Redis cache: TcpKeepAlive has Idle, Interval and Count.")]
    public void UnknownKeyInTheSection_FailsStartUp_NamingIt(string key, string expected)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Resolve(new() { ["Redis:Configuration"] = "localhost:6379", [key] = "2" }));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void KnownKeys_AreAccepted_InAnyCase()
    {
        var options = Resolve(new()
        {
            ["Redis:configuration"] = "localhost:6379",
            ["Redis:instanceName"] = "app:",
            ["Redis:OPERATIONTIMEOUT"] = "2",
            ["Redis:tcpkeepalive:idle"] = "30",
        });

        Assert.Equal(TimeSpan.FromSeconds(2), options.OperationTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), options.TcpKeepAlive.Idle);
    }

    private static ResilientRedisCacheOptions Resolve(Dictionary<string, string?> configuration, Action<ResilientRedisCacheOptions>? setup = null) =>
        ResolveSection(new ConfigurationBuilder().AddInMemoryCollection(configuration).Build().GetSection("Redis"), setup);

    private static ResilientRedisCacheOptions ResolveSection(IConfiguration section, Action<ResilientRedisCacheOptions>? setup = null)
    {
        var services = new ServiceCollection();
        services.AddSingleton(new EnvironmentVariables(_ => null));
        services.AddResilientStackExchangeRedisCache(section, setup);
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value;
    }
}

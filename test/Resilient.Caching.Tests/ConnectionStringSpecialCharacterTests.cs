using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Resilient.Caching.Configuration;
using StackExchange.Redis;

namespace Resilient.Caching.Tests;

/// <summary>
/// User names and passwords holding the characters that mean something in a URI or in the StackExchange.Redis format
/// (<c>,</c> <c>=</c> <c>@</c> <c>:</c> <c>/</c> <c>%</c>): in a redis:// or rediss:// URI they work, written as they
/// are or percent-encoded; what cannot work fails start-up naming the setting, and no error repeats any part of them.
/// </summary>
public sealed class ConnectionStringSpecialCharacterTests
{
    // Each special character alone, all of them, and the texts of the reported failures.
    public static readonly TheoryData<string> Passwords = new(
        "Xk9,pQ2zzTOP",
        "Xk9=pQ2zzTOP",
        "Xk9@pQ2zzTOP",
        "Xk9:pQ2zzTOP",
        "Xk9/pQ2zzTOP",
        "Xk9%pQ2zzTOP",
        "Xk9,pQ2=zzTOP",
        "Sekr1t,ssl=false",
        "Xk9,=@:/%pQ2",
        "@@Xk9,,pQ2==",
        "Xk9@127.0.0.1:1/0,ssl=true",
        ",abortConnect=false@Xk9",
        "%zzXk9%",
        "/0:6379@");

    public static readonly TheoryData<string> Users = new(
        "usr,Qk7",
        "usr=Qk7",
        "usr@Qk7",
        "usr:Qk7",
        "usr/Qk7",
        "usr%Qk7",
        "usr,=@:/%Qk7");

    [Theory]
    [MemberData(nameof(Passwords))]
    public void Password_WrittenAsItIs_OrPercentEncoded_IsRead(string password)
    {
        foreach (var scheme in new[] { "redis", "rediss" })
        {
            foreach (var written in new[] { password, Uri.EscapeDataString(password) })
            {
                AssertReads($"{scheme}://:{written}@cache.internal:6380/2", null, password, scheme == "rediss", 2);
                AssertReads($"{scheme}://app-k3:{written}@cache.internal:6380", "app-k3", password, scheme == "rediss", null);
                AssertReads($"{scheme}://app-k3:{written}@cache.internal:6380,abortConnect=false,name=shop", "app-k3", password, scheme == "rediss", null);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Users))]
    public void UserName_WrittenAsItIs_OrPercentEncoded_IsRead(string user)
    {
        // The first ':' of the user-info ends the user name: one inside it is written %3A.
        var raw = user.Replace(":", "%3A", StringComparison.Ordinal);
        foreach (var scheme in new[] { "redis", "rediss" })
        {
            foreach (var written in new[] { raw, Uri.EscapeDataString(user) })
            {
                foreach (var password in new[] { "Xk9,pQ2=zzTOP", "Xk9@:/%pQ2" })
                {
                    AssertReads($"{scheme}://{written}:{password}@[::1]:6380/0", user, password, scheme == "rediss", 0, new IPEndPoint(IPAddress.IPv6Loopback, 6380));
                    AssertReads($"{scheme}://{written}:{Uri.EscapeDataString(password)}@127.0.0.1,connectRetry=2", user, password, scheme == "rediss", null, new IPEndPoint(IPAddress.Loopback, 6379));
                }
            }
        }
    }

    [Fact]
    public void ReportedConfigurations_Work()
    {
        AssertReads("redis://app:Xk9,pQ2=zzTOP@h", "app", "Xk9,pQ2=zzTOP", false, null, new DnsEndPoint("h", 6379));
        AssertReads("redis://app:Sekr1t,ssl=false@127.0.0.1:17001", "app", "Sekr1t,ssl=false", false, null, new IPEndPoint(IPAddress.Loopback, 17001));
    }

    [Theory]
    [InlineData("redis://:Xk9%41pQ2@cache", "Xk9ApQ2")] // '%' and two hex digits: a percent-encoded byte.
    [InlineData("redis://:%C3%A9Xk9%2C%3D%40%3A%2F%25@cache", "éXk9,=@:/%")]
    [InlineData("redis://:Xk9%zz%@cache", "Xk9%zz%")] // '%' not followed by two hex digits: the character itself.
    [InlineData("redis://:Xk9%4@cache", "Xk9%4")]
    [InlineData("redis://:Xk9+pQ2@cache", "Xk9+pQ2")] // '+' is not a space outside a query.
    [InlineData("redis://Xk9,pQ2=zz@cache", "Xk9,pQ2=zz")] // A lone value is a password.
    public void PercentSigns_AreRead_AsDocumented(string uri, string password) =>
        AssertReads(uri, null, password, false, null, new DnsEndPoint("cache", 6379));

    [Theory]
    [InlineData("redis://:Xk9%FFpQ2zz@cache", "Xk9%FFpQ2zz", "password")]
    [InlineData("redis://usr%C3Qk7zz:Xk9pQ2zz@cache", "usr%C3Qk7zz", "user name")]
    public void PercentEncodedBytes_ThatAreNotUtf8_FailWithoutRepeatingThem(string uri, string secret, string part)
    {
        var error = Assert.Throws<FormatException>(() => RedisConnectionString.Parse(uri));

        Assert.Contains($"The Redis URI's {part} has percent-encoded bytes that are not UTF-8", error.Message, StringComparison.Ordinal);
        AssertNoFragment(secret, error);
    }

    [Theory]
    // An '@' in an option after the URI could also end a user-info: the two readings are refused, not guessed.
    [InlineData("redis://cache:6379,password=Xk9@pQ2zzTOP", "Xk9@pQ2zzTOP")]
    [InlineData("redis://Xk9pQ2,name=Kw7@Zq4", "Xk9pQ2")]
    [InlineData("redis://usr:Xk9,pQ2=zz@cache:6379,password=Kw7@Zq4", "Xk9,pQ2=zz")]
    public void UriThatReadsTwoWays_FailsWithoutRepeatingIt(string uri, string secret)
    {
        var error = Assert.Throws<FormatException>(() => RedisConnectionString.Parse(uri));

        Assert.Contains("can be read more than one way", error.Message, StringComparison.Ordinal);
        AssertNoFragment(secret, error);
        AssertNoFragment("Kw7@Zq4", error);
    }

    [Theory]
    [InlineData("redis://:Xk9,pQ2=zzTOP@cache:notaport", "The Redis URI's port")]
    [InlineData("redis://:Xk9,pQ2=zzTOP@ca$he", "The Redis URI's host")]
    [InlineData("redis://:Xk9,pQ2=zzTOP@cache,abortConnect=maybe", "the option 'abortConnect'")]
    [InlineData("redis://:Xk9,pQ2=zzTOP@cache,otherhost", "Only option=value pairs may follow")]
    [InlineData("redis://:Xk9,pQ2=zzTOP@cache,password=Kw7,Zq4", "Only option=value pairs may follow")]
    [InlineData("redis://:Xk9,pQ2=zzTOP@cache,password=Kw7,Zq4=1", "An option after a user or password option")]
    public void BadUri_FailsWithoutRepeatingTheCredentials(string uri, string expected)
    {
        var error = Assert.Throws<FormatException>(() => RedisConnectionString.Parse(uri));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        AssertNoFragment("Xk9,pQ2=zzTOP", error);
        AssertNoFragment("Kw7,Zq4", error);
    }

    [Theory]
    // The reported failures, and what a ',' in a password or user name does to the StackExchange.Redis format: the
    // rest is read as an option or as an endpoint.
    [InlineData("redis://app:Xk9,pQ2=zzTOP@h,password=Kw7Zq4,Xk9pQ2zzTOP=1", "Xk9pQ2zzTOP")]
    [InlineData("127.0.0.1:6379,password=Xk9,pQ2=zzTOP", "Xk9,pQ2=zzTOP")]
    [InlineData("127.0.0.1:6379,password=Sekr1t,ssl=false@127.0.0.1:17001", "Sekr1t,ssl=false@127.0.0.1:17001")]
    [InlineData("127.0.0.1:6379,password=Xk9,pQ2zz$TOP", "Xk9,pQ2zz$TOP")]
    [InlineData("127.0.0.1:6379,password=Xk9,pQ2zzTOP", "Xk9,pQ2zzTOP")]
    [InlineData("127.0.0.1:6379,user=usr,Qk7zz,password=Xk9pQ2", "usr,Qk7zz")]
    [InlineData("127.0.0.1:6379,PASSWORD=Xk9,ssl=zzTOP", "Xk9,ssl=zzTOP")]
    [InlineData("127.0.0.1:6379,password=Xk9,pQ2,abortConnect=false", "Xk9,pQ2")]
    public void CommaInACredential_FailsStartUp_NamingTheSetting_NeverAFragment(string configuration, string secret)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Resolve(new() { ["Redis:Configuration"] = configuration }));

        Assert.Contains("Configuration (from configuration key 'Redis:Configuration') could not be parsed", error.Message, StringComparison.Ordinal);
        AssertNoFragment(secret, error);
        var direct = Assert.Throws<FormatException>(() => RedisConnectionString.Parse(configuration));
        AssertNoFragment(secret, direct);
    }

    [Fact]
    public void StackExchangeFormat_StillNamesAMistypedOption_BeforeAnyCredential()
    {
        var error = Assert.Throws<FormatException>(() => RedisConnectionString.Parse("cache:6379,abortConect=false,password=Xk9pQ2"));

        Assert.Contains("the option 'abortConect'", error.Message, StringComparison.Ordinal);
        AssertNoFragment("Xk9pQ2", error);
    }

    [Theory]
    [InlineData("cache:6379,password=Xk9=pQ2@:/%zz", null, "Xk9=pQ2@:/%zz")]
    [InlineData("cache:6379,user=usr=Qk7@:/%,password=Xk9", "usr=Qk7@:/%", "Xk9")]
    public void StackExchangeFormat_TakesEveryCharacterButAComma(string configuration, string? user, string password)
    {
        var parsed = RedisConnectionString.Parse(configuration);

        Assert.Equal(new DnsEndPoint("cache", 6379), Assert.Single(parsed.EndPoints));
        Assert.Equal(user, parsed.User);
        Assert.Equal(password, parsed.Password);
    }

    /// <summary>The text, and every inner exception's message and text, hold no three characters in a row of the secret.</summary>
    internal static void AssertNoFragment(string secret, Exception error)
    {
        for (var current = error; current is not null; current = current.InnerException)
        {
            foreach (var text in new[] { current.Message, current.ToString() })
            {
                for (var start = 0; start + 3 <= secret.Length; start++)
                {
                    var fragment = secret.Substring(start, 3);
                    Assert.False(text.Contains(fragment, StringComparison.Ordinal), $"'{fragment}' of the secret appears in: {text}");
                }
            }
        }
    }

    private static void AssertReads(string uri, string? user, string password, bool ssl, int? database, EndPoint? endPoint = null)
    {
        var parsed = RedisConnectionString.Parse(uri);

        Assert.Equal(endPoint ?? new DnsEndPoint("cache.internal", 6380), Assert.Single(parsed.EndPoints));
        Assert.Equal(user, parsed.User);
        Assert.Equal(password, parsed.Password);
        Assert.Equal(ssl, parsed.Ssl);
        Assert.Equal(database, parsed.DefaultDatabase);
        Assert.DoesNotContain(password, parsed.ToString(includePassword: false), StringComparison.Ordinal);
    }

    private static ResilientRedisCacheOptions Resolve(Dictionary<string, string?> configuration)
    {
        var services = new ServiceCollection();
        services.AddSingleton(new EnvironmentVariables(_ => null));
        services.AddResilientStackExchangeRedisCache(new ConfigurationBuilder().AddInMemoryCollection(configuration).Build().GetSection("Redis"));
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value;
    }
}

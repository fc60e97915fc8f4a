using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Resilient.Caching.Configuration;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Cache;

/// <summary>
/// Passwords and ACL user names holding the characters that mean something in a URI or in StackExchange.Redis's
/// format (<c>,</c> <c>=</c> <c>@</c> <c>:</c> <c>/</c> <c>%</c>), against a real redis-server that requires them: a
/// redis:// URI with them written as they are or percent-encoded connects and round-trips a value; a ',' in
/// StackExchange.Redis's format stops start-up. No log line and no error holds three characters in a row of a secret.
/// </summary>
public sealed class SpecialCharacterPasswordTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string> Characters() => new(",", "=", "@", ":", "/", "%", ",=@:/%", ",ssl=false@");

    [Theory]
    [MemberData(nameof(Characters))]
    public async Task UriWithTheCharacterInThePasswordAndUserName_ConnectsAndRoundTrips(string characters)
    {
        // The default user's password (requirepass) and an ACL user, each with the characters twice. A '%' here is
        // never followed by two hex digits, so written as it is it stands for itself. Letters around the characters,
        // not digits: "7,s" of a secret would also match a port before ",syncTimeout" in the settings log line.
        var password = $"Xk9Q{characters}pQ2W{characters}zzTOP";
        var user = $"usrJ{characters}Qk7";
        var userPassword = $"Kw7V{characters}Zq4Y{characters}mN8";
        await using var redis = await RedisServer.StartNewAsync(new RedisServerOptions { RequirePass = password }, Ct);
        Assert.StartsWith("+OK", await redis.ExecuteAsync("ACL", "SETUSER", user, "reset", "on", ">" + userPassword, "~*", "&*", "+@all"), StringComparison.Ordinal);

        var server = $"{redis.Host}:{redis.Port}";

        // A ':' in the user name is written %3A as it is the user name's end; everything else may be typed as it is.
        var typedUser = user.Replace(":", "%3A", StringComparison.Ordinal);
        var forms = new List<(string Form, string Configuration)>
        {
            ("default user, typed as it is", $"redis://:{password}@{server}"),
            ("default user, percent-encoded", $"redis://:{Uri.EscapeDataString(password)}@{server}/0"),
            ("password alone, percent-encoded", $"redis://{Uri.EscapeDataString(password)}@{server}"),
            ("ACL user, typed as it is", $"redis://{typedUser}:{userPassword}@{server}"),
            ("ACL user, percent-encoded", $"redis://{Uri.EscapeDataString(user)}:{Uri.EscapeDataString(userPassword)}@{server}/0"),
            ("ACL user, typed as it is, then options", $"redis://{typedUser}:{userPassword}@{server},abortConnect=false,name=special-chars"),
            ("ACL user, typed as it is, database 3", $"redis://{typedUser}:{userPassword}@{server}/3"),
        };
        if (!characters.Contains(':', StringComparison.Ordinal))
        {
            forms.Add(("password alone, typed as it is", $"redis://{password}@{server}"));
        }

        if (!characters.Contains(',', StringComparison.Ordinal))
        {
            // StackExchange.Redis's format takes every character but ',' as it is.
            forms.Add(("StackExchange.Redis format, default user", $"{server},password={password}"));
            forms.Add(("StackExchange.Redis format, ACL user", $"{server},user={user},password={userPassword}"));
        }

        foreach (var (form, configuration) in forms)
        {
            var key = "special-" + Guid.NewGuid().ToString("N");
            var sink = new TextLoggerProvider();
            using (var host = await StartAsync(configuration, sink))
            {
                var cache = host.Services.GetRequiredService<IDistributedCache>();
                await cache.SetStringAsync(key, form, Ct);
                Assert.Equal(form, await cache.GetStringAsync(key, Ct));
                Assert.True(host.Services.GetRequiredService<CacheAvailability>().IsAvailable, $"{form}\n{sink.Text()}");
                await host.StopAsync(Ct);
            }

            // Really written to this server, in the database the URI names (a value in some other cache would not show here).
            if (configuration.EndsWith("/3", StringComparison.Ordinal))
            {
                Assert.Contains("\r\ndb3:keys=1,", await redis.ExecuteAsync("INFO", "keyspace"), StringComparison.Ordinal);
            }
            else
            {
                Assert.Equal(":1\r\n", await redis.ExecuteAsync("EXISTS", key));
            }
            foreach (var secret in new[] { password, user, userPassword })
            {
                // A fragment made only of the inserted characters ("als" of ",ssl=false@") may be ordinary log text.
                AssertNoFragment(secret, sink.Text(), form, characters);
            }

            TestContext.Current.TestOutputHelper?.WriteLine($"{form}: round-trip through {redis.Host}:{redis.Port}, {sink.Ids().Length} log records");
        }
    }

    [Theory]
    // A ',' cannot stand in a password in StackExchange.Redis's format: the rest was read as an option (its error
    // repeating it) or as an endpoint.
    [InlineData("{0},password=Xk9,pQ2=zzTOP", "Xk9,pQ2=zzTOP")]
    [InlineData("{0},password=Sekr1t,ssl=false@127.0.0.1:17001", "Sekr1t,ssl=false@127.0.0.1:17001")]
    [InlineData("{0},password=Xk9,pQ2zz$TOP", "Xk9,pQ2zz$TOP")]
    [InlineData("{0},password=Xk9,pQ2zzTOP", "Xk9,pQ2zzTOP")]
    [InlineData("{0},user=usr,Qk7zz,password=Xk9pQ2", "usr,Qk7zz")]
    // An '@' in an option after a URI could also end a user-info: refused rather than guessed.
    [InlineData("redis://{0},password=Xk9@pQ2zzTOP", "Xk9@pQ2zzTOP")]
    // A '%' and two hex digits that are not UTF-8.
    [InlineData("redis://usr:Xk9%FFpQ2zzTOP@{0}", "Xk9%FFpQ2zzTOP")]
    public async Task ConfigurationThatCannotWork_StopsStartUp_NamingTheSetting_WithoutAFragment(string format, string secret)
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        var configuration = string.Format(System.Globalization.CultureInfo.InvariantCulture, format, $"{redis.Host}:{redis.Port}");
        var sink = new TextLoggerProvider();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(configuration, sink));

        Assert.Contains("Configuration (from code (the AddResilientStackExchangeRedisCache delegate)) could not be parsed", error.Message, StringComparison.Ordinal);
        for (Exception? current = error; current is not null; current = current.InnerException)
        {
            AssertNoFragment(secret, current.Message, configuration);
            AssertNoFragment(secret, current.ToString(), configuration);
        }

        AssertNoFragment(secret, sink.Text(), configuration);
        TestContext.Current.TestOutputHelper?.WriteLine(error.Message);
    }

    private static async Task<IHost> StartAsync(string configuration, TextLoggerProvider sink)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new());
        builder.Services.AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(sink));
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddResilientStackExchangeRedisCache(o =>
        {
            o.Configuration = configuration;

            // A refused password fails the call instead of turning into a miss.
            o.IgnoreExceptions = false;
        });
        var host = builder.Build();
        try
        {
            await host.StartAsync(Ct);
            return host;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    /// <summary>No three characters in a row of <paramref name="secret"/> (but those within <paramref name="ignored"/>) appear in <paramref name="text"/>.</summary>
    private static void AssertNoFragment(string secret, string text, string context, string? ignored = null)
    {
        for (var start = 0; start + 3 <= secret.Length; start++)
        {
            var fragment = secret.Substring(start, 3);
            if (ignored?.Contains(fragment, StringComparison.Ordinal) == true)
            {
                continue;
            }

            Assert.False(text.Contains(fragment, StringComparison.Ordinal), $"{context}: '{fragment}' of a secret appears in:\n{text}");
        }
    }
}

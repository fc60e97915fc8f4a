using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Resilient.Caching.Configuration;
using Resilient.Caching.IntegrationTests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Cache;

/// <summary>
/// No secret leaves the library, whatever form the credentials take and whatever happens: every form of credential
/// (connection-string keys, <c>ConfigurationOptions.Password</c>/<c>User</c>, URIs with and without a user, a Redis
/// ACL user, TLS), with Redis up, refusing the password, or down, swallowing errors or not, logged at Trace through a
/// logger that writes what a text sink writes (message, structured values, exception.ToString()). Everything the
/// application can see is searched: the log, the exceptions the caller gets, <see cref="CacheAvailability.LastError"/>,
/// and the health-check report.
/// </summary>
public sealed class SecretTests : IAsyncLifetime
{
    private const string Password = "S3cr3tPw!q7";
    private const string AclUser = "alice-acl-k3";
    private const string AclPassword = "AclS3cr3t!z9";
    private const string WrongPassword = "Wr0ngS3cr3t!m4";

    // What must appear nowhere: each secret (a part of it, so that an escaped form is caught too) and the ACL user.
    private static readonly string[] s_secrets = ["S3cr3tPw", "AclS3cr3t", "Wr0ngS3cr3t", AclUser];

    private static readonly Dictionary<string, Form> s_forms = new()
    {
        ["password= key"] = new(false, (h, p, _, pw) => o => o.Configuration = $"{h}:{p},password={pw}"),
        ["user= and password= keys (ACL user)"] = new(true, (h, p, u, pw) => o => o.Configuration = $"{h}:{p},user={u},password={pw}"),
        ["ConfigurationOptions.Password"] = new(false, (h, p, _, pw) => o => o.ConfigurationOptions = new ConfigurationOptions { EndPoints = { { h, p } }, Password = pw }),
        ["ConfigurationOptions.User and Password (ACL user)"] = new(true, (h, p, u, pw) => o => o.ConfigurationOptions = new ConfigurationOptions { EndPoints = { { h, p } }, User = u, Password = pw }),
        ["redis:// URI with a user (ACL user)"] = new(true, (h, p, u, pw) => o => o.Configuration = $"redis://{u}:{Uri.EscapeDataString(pw)}@{h}:{p}/0"),
        ["redis:// URI without a user"] = new(false, (h, p, _, pw) => o => o.Configuration = $"redis://:{pw}@{h}:{p}"),
        ["rediss:// URI (TLS refused by a plain port)"] = new(true, (h, p, u, pw) => o => o.Configuration = $"rediss://{u}:{pw}@{h}:{p}"),
    };

    private static readonly string[] s_scenarios = ["Redis up", "password refused", "Redis down", "password refused, IgnoreExceptions=false", "Redis down, IgnoreExceptions=false"];

    private RedisServer _redis = null!;
    private Socket _closed = null!;

    private delegate Action<ResilientRedisCacheOptions> Configure(string host, int port, string user, string password);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, string> Cases()
    {
        var cases = new TheoryData<string, string>();
        foreach (var form in s_forms.Keys)
        {
            foreach (var scenario in s_scenarios)
            {
                cases.Add(form, scenario);
            }
        }

        return cases;
    }

    public async ValueTask InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync(new RedisServerOptions { RequirePass = Password }, Ct);
        await _redis.ExecuteAsync("ACL", "SETUSER", AclUser, "on", ">" + AclPassword, "~*", "&*", "+@all");

        // Bound, never listening: connections to it are refused for as long as the test holds it.
        _closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    }

    public async ValueTask DisposeAsync()
    {
        _closed.Dispose();
        await _redis.DisposeAsync();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task NoSecretAppearsAnywhere(string formName, string scenario)
    {
        var form = s_forms[formName];
        var down = scenario.StartsWith("Redis down", StringComparison.Ordinal);
        var refused = scenario.StartsWith("password refused", StringComparison.Ordinal);
        var ignoreExceptions = !scenario.EndsWith("IgnoreExceptions=false", StringComparison.Ordinal);
        var port = down ? ((IPEndPoint)_closed.LocalEndPoint!).Port : _redis.Port;
        var user = form.WithUser ? AclUser : "default";
        var password = refused ? WrongPassword : form.WithUser ? AclPassword : Password;

        var sink = new TextLoggerProvider();
        var builder = Host.CreateEmptyApplicationBuilder(new());
        builder.Services.AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(sink));
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddResilientStackExchangeRedisCache(o =>
        {
            form.Configure(_redis.Host, port, user, password)(o);
            // Connect well within the operation timeout, so that a refused password is seen as such (README:
            // "Wrong password"); generous enough that a loaded machine does not turn "Redis up" into a timeout.
            o.ConnectTimeout = TimeSpan.FromMilliseconds(500);
            o.OperationTimeout = TimeSpan.FromMilliseconds(1500);
            o.UnavailableWindow = TimeSpan.FromMilliseconds(300);
            o.IgnoreExceptions = ignoreExceptions;
        });
        builder.Services.AddOutputCache();
        builder.Services.AddResilientStackExchangeRedisOutputCache();
        builder.Services.AddHealthChecks().AddResilientStackExchangeRedisCache();
        using var host = builder.Build();
        await host.StartAsync(Ct);

        var cache = host.Services.GetRequiredService<IDistributedCache>();
        var store = host.Services.GetRequiredService<IOutputCacheStore>();
        var availability = host.Services.GetRequiredService<CacheAvailability>();
        var health = host.Services.GetRequiredService<HealthCheckService>();
        var shown = new List<string>();
        var caught = new List<Exception>();

        async Task Exercise()
        {
            await Call(() => cache.SetAsync("secret-test", [1], new DistributedCacheEntryOptions(), Ct));
            await Call(() => Task.FromResult(cache.Get("secret-test")));
            await Call(() => cache.GetAsync("secret-test", Ct));
            await Call(() => Task.Run(() => cache.Refresh("secret-test"), Ct));
            await Call(() => store.SetAsync("secret-page", [1], ["secret-tag"], TimeSpan.FromMinutes(1), Ct).AsTask());
            await Call(() => store.GetAsync("secret-page", Ct).AsTask());
            await Call(() => store.EvictByTagAsync("secret-tag", Ct).AsTask());
            var report = await health.CheckHealthAsync(Ct);
            foreach (var entry in report.Entries.Values)
            {
                shown.Add($"{entry.Status} {entry.Description} {entry.Exception}");
                shown.AddRange(entry.Data.Select(d => $"{d.Key}={d.Value}"));
            }

            shown.Add(availability.LastError?.ToString() ?? string.Empty);
            shown.Add(availability.LastError?.Message ?? string.Empty);
        }

        async Task Call(Func<Task> call)
        {
            try
            {
                await call();
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                caught.Add(exception);
            }
        }

        await Exercise();
        var expectHit = !down && !refused && formName.StartsWith("rediss", StringComparison.Ordinal) is false;
        if (expectHit)
        {
            Assert.Equal([1], await cache.GetAsync("secret-test", Ct));
            Assert.True(availability.IsAvailable, sink.Text());
        }
        else
        {
            // Inside the window (CacheUnavailableException when errors propagate), then the probe after it.
            Assert.False(availability.IsAvailable, sink.Text());
            await Exercise();
            await Task.Delay(availability.RetryAfter + TimeSpan.FromMilliseconds(50), Ct);
            await Exercise();
            Assert.NotNull(availability.LastError);
            Assert.Equal(!ignoreExceptions, caught.Count > 0);
        }

        await host.StopAsync(Ct);

        shown.AddRange(caught.Select(static e => $"{e}\n{e.Message}"));
        var written = sink.Text();
        Assert.Contains($"[{Log.IdSettingsInForce}]", written, StringComparison.Ordinal);
        if (!expectHit)
        {
            Assert.Contains(sink.Ids(), id => id is Log.IdWindowOpened or Log.IdAuthenticationFailed);
        }

        var everything = written + "\n" + string.Join('\n', shown);
        foreach (var secret in s_secrets)
        {
            Assert.DoesNotContain(secret, everything, StringComparison.Ordinal);
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"{formName} / {scenario}: {sink.Ids().Length} log records, {caught.Count} exceptions, {shown.Count} shown texts; e.g.\n{written[..Math.Min(written.Length, 3000)]}");
    }

    [Theory]
    [InlineData("alice-acl-k3:S3cr3tPw!q7@127.0.0.1:6379")]
    [InlineData("http://alice-acl-k3:S3cr3tPw!q7@127.0.0.1:6379")]
    [InlineData("redis://alice-acl-k3:S3cr3tPw!q7@127.0.0.1:port")]
    public async Task ConfigurationThatCannotWork_StopsStartUp_WithoutTheSecret_InTheExceptionOrTheLog(string configuration)
    {
        var sink = new TextLoggerProvider();
        var builder = Host.CreateEmptyApplicationBuilder(new());
        builder.Services.AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(sink));
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddResilientStackExchangeRedisCache(o => o.Configuration = configuration);
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => host.StartAsync(Ct));

        Assert.Contains("Configuration (from code", error.Message, StringComparison.Ordinal);
        var everything = $"{error}\n{sink.Text()}";
        foreach (var secret in s_secrets)
        {
            Assert.DoesNotContain(secret, everything, StringComparison.Ordinal);
        }
    }

    private sealed record Form(bool WithUser, Configure Configure);
}

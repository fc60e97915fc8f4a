using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Resilient.Caching.Configuration;
using Resilient.Caching.Demo;
using Xunit;

namespace Resilient.Caching.IntegrationTests.EndToEnd;

/// <summary>
/// The demo app, wired exactly as its Program.cs does (the configuration section, then <see cref="DemoApp"/>), on a
/// real Kestrel at 127.0.0.1 with a port of its own, with short settings so that an outage plays out in seconds.
/// </summary>
internal sealed class DemoHost : IAsyncDisposable
{
    public static readonly TimeSpan OperationTimeout = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromSeconds(1.5);

    private readonly WebApplication _app;

    private DemoHost(WebApplication app, Uri address, TimeSpan window)
    {
        _app = app;
        Address = address;
        Window = window;
        Cookies = new CookieContainer();
        Client = new HttpClient(new SocketsHttpHandler { CookieContainer = Cookies, UseCookies = true, UseProxy = false })
        {
            BaseAddress = address,
            Timeout = TimeSpan.FromSeconds(15),
        };
    }

    public Uri Address { get; }

    public TimeSpan Window { get; }

    public HttpClient Client { get; }

    public CookieContainer Cookies { get; }

    public IServiceProvider Services => _app.Services;

    public FakeLogCollector Logs => _app.Services.GetFakeLogCollector();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Starts the demo; with <paramref name="waitForRedis"/>, returns once its connection to Redis is made.</summary>
    public static async Task<DemoHost> StartAsync(string redisConfiguration, TimeSpan? window = null, bool waitForRedis = true, TimeSpan? operationTimeout = null)
    {
        var timeout = operationTimeout ?? OperationTimeout;
        var unavailableWindow = window ?? DefaultWindow;
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });

        // Only what the test says: no appsettings.json, no Redis__* variables of the machine running the tests.
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Redis:Configuration"] = redisConfiguration,
            ["Redis:InstanceName"] = "e2e:",
            ["Redis:ConnectTimeout"] = Seconds(timeout),
            ["Redis:OperationTimeout"] = Seconds(timeout),
            ["Redis:UnavailableWindow"] = Seconds(unavailableWindow),
        });
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Logging.ClearProviders().AddFakeLogging().SetMinimumLevel(LogLevel.Debug);
        builder.Services.AddDataProtection().UseEphemeralDataProtectionProvider();
        builder.WebHost.UseUrls("http://127.0.0.1:0");

        // As in the demo's Program.cs (an empty configuration embeds Garnet).
        DemoServer.EmbedWhenUnconfigured(builder);
        builder.Services.AddResilientStackExchangeRedisCache(builder.Configuration.GetSection("Redis"));
        builder.Services.AddDemo();
        var app = builder.Build();
        app.MapDemo();

        try
        {
            await app.StartAsync(Ct);
            if (waitForRedis)
            {
                await WaitForConnectionAsync(app.Services);
            }

            var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
            return new DemoHost(app, new Uri(address), unavailableWindow);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    /// <summary>GETs a page, requires 200 within a bound, and returns the text of the element with the given id.</summary>
    public async Task<string> ReadAsync(string path, string id) => (await ReadAsync(path, [id]))[0];

    /// <summary>GETs a page once and returns the texts of the elements with the given ids.</summary>
    public async Task<string[]> ReadAsync(string path, string[] ids)
    {
        var html = await GetOkAsync(path);
        return [.. ids.Select(id =>
        {
            var match = Regex.Match(html, $"id=\"{Regex.Escape(id)}\">(.*?)</(?:strong|span|p|td)>", RegexOptions.Singleline);
            Assert.True(match.Success, $"{path} has no element #{id}:\n{html}");
            return WebUtility.HtmlDecode(Regex.Replace(match.Groups[1].Value, "<[^>]*>", string.Empty)).Trim();
        })];
    }

    public async Task<int> VisitSessionAsync() => int.Parse(await ReadAsync("/session", "visits"), System.Globalization.CultureInfo.InvariantCulture);

    public Task<string> ReadOutputAsync() => ReadAsync("/output", "rendered");

    public Task EvictOutputAsync() => ReadAsync("/output/evict", "evicted");

    public async Task<(string Value, bool FromRedis)> ReadHybridAsync()
    {
        var texts = await ReadAsync("/hybrid", ["value", "source"]);
        return (texts[0], texts[1].StartsWith("from Redis", StringComparison.Ordinal));
    }

    /// <summary>The status of /health and the data of our check.</summary>
    public async Task<(string Status, JsonElement Check)> ReadHealthAsync()
    {
        using var document = JsonDocument.Parse(await GetOkAsync("/health"));
        var check = document.RootElement.GetProperty("checks").GetProperty("redis-cache");
        return (document.RootElement.GetProperty("status").GetString()!, check.Clone());
    }

    /// <summary>Every request of the demo answers 200, in an outage too, and never waits for the stock 5 s.</summary>
    public async Task<string> GetOkAsync(string path)
    {
        var started = Stopwatch.GetTimestamp();
        using var response = await Client.GetAsync(path, Ct);
        var body = await response.Content.ReadAsStringAsync(Ct);
        var elapsed = Stopwatch.GetElapsedTime(started);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {path} answered {(int)response.StatusCode}:\n{body}");
        Assert.True(elapsed < MaxRequestTime, $"GET {path} took {elapsed.TotalMilliseconds:0} ms");
        return body;
    }

    // One operation timeout plus one bounded wait for a connection, with room for a busy machine; far below the
    // stock provider's 5 s.
    private static TimeSpan MaxRequestTime => TimeSpan.FromSeconds(3);

    /// <summary>
    /// Waits (outside the window) until the connection the host started making is made: a cold first connect can
    /// take longer than the short operation timeout, and the test would then start with an open window.
    /// </summary>
    private static async Task WaitForConnectionAsync(IServiceProvider services)
    {
        var connection = services.GetRequiredService<ResilientRedisCacheServices>().Connection;
        Assert.True(await connection.WaitReadyAsync(TimeSpan.FromSeconds(10), Ct), "The demo did not connect to Redis within 10 s.");
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }

    private static string Seconds(TimeSpan value) => value.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

using System.Net;
using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Resilient.Caching.Configuration;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.EndToEnd;

/// <summary>
/// After an outage, on Kestrel with the framework's own consumers: a sign-out during the outage stays a sign-out
/// (cookie authentication keeping its tickets in the distributed cache) and a session cleared during the outage does
/// not come back (both by default); with <c>InvalidateKeysReadDuringOutage</c> off, a slow request that read a made-up
/// miss does not overwrite the stored session.
/// </summary>
public sealed class SignOutAndSessionTests
{
    [Fact]
    public async Task Sign_out_during_the_outage_is_not_undone_after_it()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var app = await TestApp.StartAsync(redis.ConnectionString);
        using var browser = app.Client();

        Assert.Equal("signed in", await browser.GetStringAsync("/signin", Lab.Ct));
        Assert.Equal("alice", await browser.GetStringAsync("/me", Lab.Ct));
        var oldCookie = app.Cookies.GetCookieHeader(app.Address);
        Assert.Contains(CookieAuthenticationDefaults.CookiePrefix, oldCookie, StringComparison.Ordinal);

        redis.Pause();
        try
        {
            await app.OpenWindowAsync(browser);

            // Signing out answers normally. The ticket's read was a made-up miss, so the handler removes nothing: the
            // read itself is what the cache remembers.
            using var signOut = await browser.GetAsync("/signout", Lab.Ct);
            Assert.Equal(HttpStatusCode.OK, signOut.StatusCode);
            Assert.True(app.Availability.PendingInvalidations >= 1);
        }
        finally
        {
            redis.Resume();
        }

        await app.RecoverAsync(browser);

        // Someone holding the old cookie is not signed in again.
        using var replay = new HttpClient { BaseAddress = app.Address };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/me");
        request.Headers.Add("Cookie", oldCookie);
        using var response = await replay.SendAsync(request, Lab.Ct);
        Assert.Equal("anonymous", await response.Content.ReadAsStringAsync(Lab.Ct));
    }

    [Fact]
    public async Task Keeping_keys_read_during_the_outage_a_slow_request_that_read_a_made_up_miss_does_not_overwrite_the_stored_session()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var app = await TestApp.StartAsync(redis.ConnectionString, o => o.InvalidateKeysReadDuringOutage = false);
        using var browser = app.Client();
        for (var i = 1; i <= 7; i++)
        {
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), await browser.GetStringAsync("/count", Lab.Ct));
        }

        Task<string> slow;
        redis.Pause();
        try
        {
            await app.OpenWindowAsync(browser);

            // Reads its session inside the window (a made-up miss), then waits in its handler.
            slow = browser.GetStringAsync("/count?hold=1", Lab.Ct);
            await app.Held.Task.WaitAsync(TimeSpan.FromSeconds(10), Lab.Ct);
        }
        finally
        {
            redis.Resume();
        }

        // The window closes (another request's probe); then the slow request commits what it computed from nothing.
        await app.RecoverAsync(browser);
        app.Release.SetResult();
        Assert.Equal("1", await slow.WaitAsync(TimeSpan.FromSeconds(10), Lab.Ct));

        Assert.Equal("8", await browser.GetStringAsync("/count", Lab.Ct));
    }

    [Fact]
    public async Task A_session_cleared_during_the_outage_does_not_come_back()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var app = await TestApp.StartAsync(redis.ConnectionString);
        using var browser = app.Client();
        for (var i = 1; i <= 3; i++)
        {
            await browser.GetStringAsync("/count", Lab.Ct);
        }

        redis.Pause();
        try
        {
            await app.OpenWindowAsync(browser);
            Assert.Equal("cleared", await browser.GetStringAsync("/clear", Lab.Ct));
        }
        finally
        {
            redis.Resume();
        }

        await app.RecoverAsync(browser);
        Assert.Equal("1", await browser.GetStringAsync("/count", Lab.Ct));
    }

    /// <summary>A small app: cookie authentication with its tickets in the distributed cache, session, our cache.</summary>
    private sealed class TestApp : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private TestApp(WebApplication app, Uri address)
        {
            _app = app;
            Address = address;
            Availability = app.Services.GetRequiredService<CacheAvailability>();
        }

        public Uri Address { get; }

        public CacheAvailability Availability { get; }

        public CookieContainer Cookies { get; } = new();

        public TaskCompletionSource Held { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public static async Task<TestApp> StartAsync(string redis, Action<ResilientRedisCacheOptions>? setup = null)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
            builder.Services.AddDataProtection().UseEphemeralDataProtectionProvider();
            builder.Services.AddResilientStackExchangeRedisCache(o =>
            {
                o.Configuration = redis;
                o.InstanceName = "web:";
                Lab.Apply(o);
                setup?.Invoke(o);
            });
            builder.Services.AddSingleton<ITicketStore, DistributedTicketStore>();
            builder.Services.AddAuthentication(CookieAuthenticationDefaults.AuthenticationScheme).AddCookie();
            builder.Services.AddOptions<CookieAuthenticationOptions>(CookieAuthenticationDefaults.AuthenticationScheme)
                .Configure<ITicketStore>((options, store) => options.SessionStore = store);
            builder.Services.AddSession(o => o.IdleTimeout = TimeSpan.FromMinutes(20));
            var app = builder.Build();
            TestApp? self = null;
            app.UseSession();
            app.UseAuthentication();
            app.MapGet("/signin", async (HttpContext context) =>
            {
                await context.SignInAsync(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, "alice")], "test")));
                return "signed in";
            });
            app.MapGet("/me", (HttpContext context) => context.User.Identity?.IsAuthenticated == true ? context.User.Identity.Name : "anonymous");
            app.MapGet("/signout", async (HttpContext context) =>
            {
                await context.SignOutAsync();
                return "signed out";
            });
            app.MapGet("/count", async (HttpContext context, string? hold) =>
            {
                await context.Session.LoadAsync(context.RequestAborted);
                var count = (context.Session.GetInt32("count") ?? 0) + 1;
                if (hold is not null)
                {
                    self!.Held.TrySetResult();
                    await self.Release.Task;
                }

                context.Session.SetInt32("count", count);
                return count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            });
            app.MapGet("/clear", async (HttpContext context) =>
            {
                await context.Session.LoadAsync(context.RequestAborted);
                context.Session.Clear();
                return "cleared";
            });
            await app.StartAsync(Lab.Ct);
            var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
            self = new TestApp(app, address);
            var connection = app.Services.GetRequiredService<ResilientRedisCacheServices>().Connection;
            Assert.True(await connection.WaitReadyAsync(TimeSpan.FromSeconds(10), Lab.Ct), "no connection to Redis");
            return self;
        }

        public HttpClient Client() =>
            new(new HttpClientHandler { CookieContainer = Cookies, UseCookies = true }) { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(20) };

        /// <summary>Redis is frozen: a request meets the dead path, the window opens.</summary>
        public async Task OpenWindowAsync(HttpClient client)
        {
            await client.GetStringAsync("/me", Lab.Ct);
            Assert.True(await Lab.EventuallyAsync(() => Availability.IsOutage, Lab.CallBound + Lab.Slack), "the window did not open");
        }

        /// <summary>Requests go on until a probe closes the window (it applies what is pending first).</summary>
        public async Task RecoverAsync(HttpClient client)
        {
            var recovered = await Lab.EventuallyAsync(async () =>
            {
                using var response = await client.GetAsync("/health-less", Lab.Ct);
                return Availability.IsAvailable;
            }, Lab.RecoveryBound);
            Assert.True(recovered, "the cache did not use Redis again");

            // Records the requests made while the probe applied the others are applied just after the close.
            await Lab.UntilAsync("nothing pending after the recovery", Lab.CallBound + Lab.Slack, () => Task.FromResult(Availability.PendingInvalidations == 0));
        }

        public async ValueTask DisposeAsync()
        {
            Release.TrySetResult();
            await _app.StopAsync(CancellationToken.None);
            await _app.DisposeAsync();
        }
    }

    /// <summary>Authentication tickets kept server-side in the distributed cache, the usual way.</summary>
    private sealed class DistributedTicketStore(IDistributedCache cache) : ITicketStore
    {
        private static readonly DistributedCacheEntryOptions Entry = new() { SlidingExpiration = TimeSpan.FromHours(1) };

        public async Task<string> StoreAsync(AuthenticationTicket ticket)
        {
            var key = "ticket:" + Guid.NewGuid().ToString("N");
            await RenewAsync(key, ticket);
            return key;
        }

        public Task RenewAsync(string key, AuthenticationTicket ticket) => cache.SetAsync(key, TicketSerializer.Default.Serialize(ticket), Entry);

        public async Task<AuthenticationTicket?> RetrieveAsync(string key) =>
            await cache.GetAsync(key) is { } bytes ? TicketSerializer.Default.Deserialize(bytes) : null;

        public Task RemoveAsync(string key) => cache.RemoveAsync(key);
    }
}

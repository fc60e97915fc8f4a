using System.Globalization;
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
/// After an outage, on Kestrel with the framework's own consumers, with the default settings and no change but the
/// registration: a sign-out during the outage stays a sign-out (cookie authentication keeping its tickets in the
/// distributed cache through a hand-written ticket store: the sign-out hook removes the ticket its cookie names), and
/// everyone who merely browsed during it is still signed in and keeps their session. <c>Session.Clear()</c> during the
/// outage is undone by default; with <c>InvalidateKeysReadDuringOutage</c> it is not.
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
            var pending = app.Availability.PendingInvalidations;

            // Signing out answers normally. The handler's read of the ticket was a made-up miss, so the handler removes
            // nothing; the hook removes the ticket its cookie names, and that skipped removal is what is remembered
            // (reads are not, by default).
            using var signOut = await browser.GetAsync("/signout", Lab.Ct);
            Assert.Equal(HttpStatusCode.OK, signOut.StatusCode);
            Assert.Equal(pending + 1, app.Availability.PendingInvalidations);
        }
        finally
        {
            redis.Resume();
        }

        await app.RecoverAsync(browser);

        // Someone holding the old cookie is not signed in again.
        Assert.Equal("anonymous", await app.MeAsync(oldCookie));
        Assert.Equal("anonymous", await browser.GetStringAsync("/me", Lab.Ct));
    }

    [Fact]
    public async Task Twenty_signed_in_users_one_signs_out_during_the_outage_the_others_browse_and_stay_signed_in()
    {
        const int Users = 20;
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var app = await TestApp.StartAsync(redis.ConnectionString);
        var users = new List<(string Name, HttpClient Browser, CookieContainer Cookies)>(Users);
        try
        {
            for (var i = 0; i < Users; i++)
            {
                var cookies = new CookieContainer();
                var name = "user" + i.ToString(CultureInfo.InvariantCulture);
                users.Add((name, app.Client(cookies), cookies));
                Assert.Equal("signed in", await users[i].Browser.GetStringAsync("/signin?name=" + name, Lab.Ct));
                Assert.Equal(name, await users[i].Browser.GetStringAsync("/me", Lab.Ct));
            }

            Assert.Equal(Users, (await TicketKeysAsync(redis)).Count);
            var signedOut = users[0];
            var oldCookie = signedOut.Cookies.GetCookieHeader(app.Address);

            redis.Pause();
            try
            {
                // Frozen until the window opens; then user 0 signs out while the others browse.
                await app.OpenWindowAsync(users[1].Browser);
                using (var signOut = await signedOut.Browser.GetAsync("/signout", Lab.Ct))
                {
                    Assert.Equal(HttpStatusCode.OK, signOut.StatusCode);
                }

                var browsed = await Task.WhenAll(users.Skip(1).Select(async user =>
                {
                    var seen = 0;
                    for (var page = 0; page < 3; page++)
                    {
                        seen += await user.Browser.GetStringAsync("/me", Lab.Ct) == user.Name ? 1 : 0;
                        await user.Browser.GetStringAsync("/count", Lab.Ct);
                    }

                    return seen;
                }));
                Lab.Report($"during the outage: {browsed.Count(seen => seen > 0)} of {Users - 1} browsing users were recognised; "
                    + $"{app.Availability.PendingInvalidations} invalidation(s) pending");

                // The sign-out's removal is all the outage left to apply: browsing records nothing.
                Assert.Equal(1, app.Availability.PendingInvalidations);
            }
            finally
            {
                redis.Resume();
            }

            await app.RecoverAsync(users[1].Browser);

            Assert.Equal("anonymous", await app.MeAsync(oldCookie));
            Assert.Equal("anonymous", await signedOut.Browser.GetStringAsync("/me", Lab.Ct));
            var stillSignedIn = 0;
            foreach (var user in users.Skip(1))
            {
                stillSignedIn += await user.Browser.GetStringAsync("/me", Lab.Ct) == user.Name ? 1 : 0;
            }

            Lab.Report($"after the outage: {stillSignedIn} of {Users - 1} browsing users still signed in; user 0's old cookie rejected");
            Assert.True(stillSignedIn >= Math.Ceiling(0.95 * (Users - 1)), $"{stillSignedIn} of {Users - 1} still signed in");

            // In Redis: the signed-out user's ticket deleted by the recovery, every other one kept.
            Assert.Equal(Users - 1, (await TicketKeysAsync(redis)).Count);
        }
        finally
        {
            foreach (var user in users)
            {
                user.Browser.Dispose();
            }
        }
    }

    [Fact]
    public async Task Sessions_are_intact_after_an_outage_and_a_Clear_during_it_is_undone_by_default()
    {
        const int Browsers = 5;
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var app = await TestApp.StartAsync(redis.ConnectionString);
        var browsers = new List<HttpClient>(Browsers);
        try
        {
            for (var i = 0; i < Browsers; i++)
            {
                browsers.Add(app.Client(new CookieContainer()));
                for (var count = 1; count <= i + 2; count++)
                {
                    Assert.Equal(Text(count), await browsers[i].GetStringAsync("/count", Lab.Ct));
                }
            }

            redis.Pause();
            try
            {
                await app.OpenWindowAsync(browsers[0]);

                // Every session read is a made-up miss: each request starts from an empty session, and its write is skipped.
                foreach (var browser in browsers)
                {
                    Assert.Equal("1", await browser.GetStringAsync("/count", Lab.Ct));
                }

                Assert.Equal("cleared", await browsers[^1].GetStringAsync("/clear", Lab.Ct));
                Assert.Equal(0, app.Availability.PendingInvalidations);
            }
            finally
            {
                redis.Resume();
            }

            await app.RecoverAsync(browsers[0]);

            // Each session goes on from where it was before the outage; so does the one cleared during it.
            for (var i = 0; i < Browsers; i++)
            {
                Assert.Equal(Text(i + 3), await browsers[i].GetStringAsync("/count", Lab.Ct));
            }
        }
        finally
        {
            foreach (var browser in browsers)
            {
                browser.Dispose();
            }
        }
    }

    [Fact]
    public async Task With_InvalidateKeysReadDuringOutage_a_session_cleared_during_the_outage_does_not_come_back()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var app = await TestApp.StartAsync(redis.ConnectionString, o => o.InvalidateKeysReadDuringOutage = true);
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

    [Fact]
    public async Task A_slow_request_that_read_a_made_up_miss_does_not_overwrite_the_stored_session()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var app = await TestApp.StartAsync(redis.ConnectionString);
        using var browser = app.Client();
        for (var i = 1; i <= 7; i++)
        {
            Assert.Equal(Text(i), await browser.GetStringAsync("/count", Lab.Ct));
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

    private static string Text(int count) => count.ToString(CultureInfo.InvariantCulture);

    /// <summary>The ticket store's keys in Redis (from a raw <c>KEYS</c> reply).</summary>
    private static async Task<List<string>> TicketKeysAsync(RedisServer redis) =>
        [.. (await redis.ExecuteAsync("KEYS", "web:AuthSessionStore-*")).Split("\r\n").Where(line => line.StartsWith("web:AuthSessionStore-", StringComparison.Ordinal))];

    /// <summary>
    /// A small app: cookie authentication with its tickets in the distributed cache (a ticket store of its own),
    /// session, our cache; nothing else of ours.
    /// </summary>
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

        /// <summary>The cookies of <see cref="Client()"/>.</summary>
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
            app.MapGet("/signin", async (HttpContext context, string? name) =>
            {
                await context.SignInAsync(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, name ?? "alice")], "test")));
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
                return Text(count);
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

        /// <summary>A browser with <see cref="Cookies"/>.</summary>
        public HttpClient Client() => Client(Cookies);

        /// <summary>A browser of its own (its own cookies).</summary>
        public HttpClient Client(CookieContainer cookies) =>
            new(new HttpClientHandler { CookieContainer = cookies, UseCookies = true }) { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(20) };

        /// <summary>Who <c>/me</c> says the holder of <paramref name="cookieHeader"/> is (a copy of a cookie, replayed).</summary>
        public async Task<string> MeAsync(string cookieHeader)
        {
            using var replay = new HttpClient(new HttpClientHandler { UseCookies = false }) { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(20) };
            using var request = new HttpRequestMessage(HttpMethod.Get, "/me");
            request.Headers.Add("Cookie", cookieHeader);
            using var response = await replay.SendAsync(request, Lab.Ct);
            return await response.Content.ReadAsStringAsync(Lab.Ct);
        }

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

    /// <summary>
    /// Authentication tickets kept server-side in the distributed cache, as applications commonly write it: the key
    /// handed to the cookie is the cache key, <c>AuthSessionStore-</c> and a GUID.
    /// </summary>
    private sealed class DistributedTicketStore(IDistributedCache cache) : ITicketStore
    {
        private const string KeyPrefix = "AuthSessionStore-";

        public async Task<string> StoreAsync(AuthenticationTicket ticket)
        {
            var key = KeyPrefix + Guid.NewGuid();
            await RenewAsync(key, ticket);
            return key;
        }

        public Task RenewAsync(string key, AuthenticationTicket ticket)
        {
            var options = new DistributedCacheEntryOptions();
            if (ticket.Properties.ExpiresUtc is { } expiresUtc)
            {
                options.SetAbsoluteExpiration(expiresUtc);
            }

            return cache.SetAsync(key, TicketSerializer.Default.Serialize(ticket), options);
        }

        public async Task<AuthenticationTicket?> RetrieveAsync(string key) =>
            await cache.GetAsync(key) is { } bytes ? TicketSerializer.Default.Deserialize(bytes) : null;

        public Task RemoveAsync(string key) => cache.RemoveAsync(key);
    }
}

using System.Collections.Concurrent;
using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Resilient.Caching.Authentication;

namespace Resilient.Caching.Tests.Authentication;

/// <summary>
/// The sign-out hook: every sign-out of a cookie scheme with a ticket store removes the ticket its cookie names,
/// through the application's store, even when the handler's own read of the ticket missed (as it does, made up,
/// during an outage); the application's own sign-out events still run; nothing here ever fails a sign-out. Driven
/// through the framework's real cookie handler (IAuthenticationService on a DefaultHttpContext).
/// </summary>
public sealed class TicketStoreSignOutTests
{
    private const string Scheme = CookieAuthenticationDefaults.AuthenticationScheme;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_sign_out_whose_ticket_read_missed_removes_the_cookies_ticket_through_the_store(bool cacheRegisteredFirst)
    {
        var store = new RecordingTicketStore();
        using var app = App.Create(store, cacheRegisteredFirst: cacheRegisteredFirst);
        var cookie = await app.SignInAsync();
        var key = Assert.Single(store.Stored);

        store.Finds = false;
        var signOut = await app.SignOutAsync(cookie);

        var removed = Assert.Single(store.Removed);
        Assert.Equal(key, removed.Key);
        Assert.Same(signOut, removed.HttpContext);
        Assert.Equal(signOut.RequestAborted, removed.CancellationToken);
        Assert.Contains(".AspNetCore.Cookies=;", signOut.Response.Headers.SetCookie.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_the_ticket_found_the_handler_removes_it_and_the_hook_once_more()
    {
        var store = new RecordingTicketStore();
        using var app = App.Create(store);
        var cookie = await app.SignInAsync();
        var key = Assert.Single(store.Stored);

        await app.SignOutAsync(cookie);

        Assert.Equal([key, key], store.Removed.Select(r => r.Key));
    }

    [Fact]
    public async Task A_sign_out_without_the_cookie_or_with_one_that_does_not_unprotect_removes_nothing()
    {
        var store = new RecordingTicketStore();
        using var app = App.Create(store);
        var cookie = await app.SignInAsync();

        var withoutCookie = await app.SignOutAsync(cookie: null);
        var tampered = await app.SignOutAsync(cookie with { Value = "x" + cookie.Value[1..] });
        var garbage = await app.SignOutAsync(cookie with { Value = "not a ticket" });

        Assert.Empty(store.Removed);
        foreach (var context in new[] { withoutCookie, tampered, garbage })
        {
            Assert.Equal(StatusCodes.Status200OK, context.Response.StatusCode);
            Assert.Contains(".AspNetCore.Cookies=;", context.Response.Headers.SetCookie.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_cookie_without_a_session_id_removes_nothing()
    {
        var store = new RecordingTicketStore();
        using var app = App.Create(store);
        var format = app.Options.TicketDataFormat;
        var ticket = new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, "alice")], "test")), Scheme);
        var cookie = new CookiePair(app.Options.Cookie.Name!, format.Protect(ticket));

        store.Finds = false;
        await app.SignOutAsync(cookie);

        Assert.Empty(store.Removed);
    }

    [Fact]
    public async Task The_applications_own_OnSigningOut_still_runs_after_the_removal()
    {
        var store = new RecordingTicketStore();
        var order = new ConcurrentQueue<string>();
        store.OnRemove = key => order.Enqueue("removed");
        using var app = App.Create(store, configure: o => o.Events.OnSigningOut = context =>
        {
            order.Enqueue("app");
            context.CookieOptions.Path = "/app";
            return Task.CompletedTask;
        });
        var cookie = await app.SignInAsync();

        store.Finds = false;
        var signOut = await app.SignOutAsync(cookie);

        Assert.Equal(["removed", "app"], order);
        Assert.Contains("path=/app", signOut.Response.Headers.SetCookie.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Events_of_a_type_that_overrides_SigningOut_still_remove_the_ticket_and_keep_every_other_event()
    {
        var store = new RecordingTicketStore();
        var events = new OverridingEvents();
        using var app = App.Create(store, configure: o => o.Events = events);
        var cookie = await app.SignInAsync();
        Assert.Equal(1, events.SignedInCount);
        Assert.True(await app.IsSignedInAsync(cookie));
        Assert.Equal(1, events.Validated);

        store.Finds = false;
        await app.SignOutAsync(cookie);

        Assert.Single(store.Removed);
        Assert.Equal(1, events.SignedOut);
    }

    [Theory]
    [InlineData(ServiceLifetime.Transient)]
    [InlineData(ServiceLifetime.Scoped)]
    [InlineData(ServiceLifetime.Singleton)]
    public async Task Events_resolved_from_the_services_by_EventsType_still_remove_the_ticket_and_keep_every_other_event(ServiceLifetime lifetime)
    {
        var store = new RecordingTicketStore();
        using var app = App.Create(
            store,
            configure: o => o.EventsType = typeof(ServiceEvents),
            services: s =>
            {
                s.Add(ServiceDescriptor.Describe(typeof(ServiceEvents), typeof(ServiceEvents), lifetime));
                s.AddSingleton<ServiceEventsLog>();
            });
        var log = app.Services.GetRequiredService<ServiceEventsLog>();
        var cookie = await app.SignInAsync();
        Assert.True(await app.IsSignedInAsync(cookie));

        store.Finds = false;
        await app.SignOutAsync(cookie);

        Assert.Single(store.Removed);
        Assert.Equal(["SignedIn", "ValidatePrincipal", "SigningOut"], log.Events);
        Assert.Equal(typeof(TicketStoreSignOutEvents<ServiceEvents>), app.Options.EventsType);
    }

    [Fact]
    public async Task Events_shared_by_two_schemes_remove_once_per_sign_out()
    {
        var store = new RecordingTicketStore();
        var shared = new CookieAuthenticationEvents();
        using var app = App.Create(store, configure: o => o.Events = shared, secondScheme: "second");
        var cookie = await app.SignInAsync();
        _ = app.Services.GetRequiredService<IOptionsMonitor<CookieAuthenticationOptions>>().Get("second");

        store.Finds = false;
        await app.SignOutAsync(cookie);

        Assert.Single(store.Removed);
    }

    [Fact]
    public async Task A_store_that_fails_to_remove_fails_no_sign_out_and_is_logged()
    {
        var store = new RecordingTicketStore { RemoveThrows = new InvalidOperationException("the store is down") };
        var appRan = false;
        using var app = App.Create(store, configure: o => o.Events.OnSigningOut = _ =>
        {
            appRan = true;
            return Task.CompletedTask;
        });
        var cookie = await app.SignInAsync();

        store.Finds = false;
        var signOut = await app.SignOutAsync(cookie);

        Assert.True(appRan);
        Assert.Contains(".AspNetCore.Cookies=;", signOut.Response.Headers.SetCookie.ToString(), StringComparison.Ordinal);
        var record = Assert.Single(app.Logs.GetSnapshot(), r => r.Id.Id == Log.IdSignOutTicketNotRemoved);
        Assert.Equal(LogLevel.Warning, record.Level);
        Assert.IsType<InvalidOperationException>(record.Exception);
    }

    [Fact]
    public async Task A_scheme_without_a_ticket_store_does_nothing_more_than_before()
    {
        var manager = new CountingCookieManager();
        var options = new CookieAuthenticationOptions
        {
            CookieManager = manager,
            TicketDataFormat = new TicketDataFormat(new EphemeralDataProtectionProvider().CreateProtector("test")),
        };
        options.Cookie.Name = "c";
        var appRan = false;
        options.Events.OnSigningOut = _ =>
        {
            appRan = true;
            return Task.CompletedTask;
        };
        new TicketStoreSignOut(new SignOutTicketRemoval()).PostConfigure(Scheme, options);

        var http = new DefaultHttpContext();
        http.Request.Headers.Cookie = "c=anything";
        await options.Events.SigningOut(new CookieSigningOutContext(
            http, new AuthenticationScheme(Scheme, null, typeof(CookieAuthenticationHandler)), options, new AuthenticationProperties(), new CookieOptions()));

        Assert.Equal(0, manager.Reads);
        Assert.True(appRan);
    }

    [Fact]
    public void The_hook_is_registered_once_by_every_cache_registration_keyed_or_not()
    {
        var services = new ServiceCollection();
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
        services.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
        services.AddKeyedResilientStackExchangeRedisCache("data", o => o.Configuration = "localhost");
        Assert.Single(services, d => d.ServiceType == typeof(IPostConfigureOptions<CookieAuthenticationOptions>) && d.ImplementationType == typeof(TicketStoreSignOut));

        var keyedOnly = new ServiceCollection();
        keyedOnly.AddKeyedResilientStackExchangeRedisCache("data", o => o.Configuration = "localhost");
        Assert.Single(keyedOnly, d => d.ImplementationType == typeof(TicketStoreSignOut));
    }

    [Fact]
    public void Post_configuring_the_same_events_twice_adds_the_hook_once()
    {
        var options = new CookieAuthenticationOptions();
        var hook = new TicketStoreSignOut(new SignOutTicketRemoval());
        hook.PostConfigure(Scheme, options);
        var chained = options.Events.OnSigningOut;
        hook.PostConfigure(Scheme, options);
        Assert.Same(chained, options.Events.OnSigningOut);

        options.EventsType = typeof(ServiceEvents);
        hook.PostConfigure(Scheme, options);
        hook.PostConfigure(Scheme, options);
        Assert.Equal(typeof(TicketStoreSignOutEvents<ServiceEvents>), options.EventsType);
    }

    /// <summary>A cookie as the browser sends it back.</summary>
    private sealed record CookiePair(string Name, string Value);

    /// <summary>Cookie authentication with a ticket store, our cache registered, driven without a server.</summary>
    private sealed class App : IDisposable
    {
        private readonly ServiceProvider _provider;

        private App(ServiceProvider provider, FakeLogCollector logs)
        {
            _provider = provider;
            Logs = logs;
        }

        public IServiceProvider Services => _provider;

        public FakeLogCollector Logs { get; }

        public CookieAuthenticationOptions Options => _provider.GetRequiredService<IOptionsMonitor<CookieAuthenticationOptions>>().Get(Scheme);

        public static App Create(
            RecordingTicketStore store,
            bool cacheRegisteredFirst = true,
            Action<CookieAuthenticationOptions>? configure = null,
            Action<IServiceCollection>? services = null,
            string? secondScheme = null)
        {
            var logs = new FakeLogCollector();
            var collection = new ServiceCollection();
            collection.AddLogging(b => b.AddProvider(new FakeLoggerProvider(logs)));
            collection.AddDataProtection().UseEphemeralDataProtectionProvider();
            if (cacheRegisteredFirst)
            {
                collection.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
            }

            var authentication = collection.AddAuthentication(Scheme).AddCookie(o =>
            {
                o.SessionStore = store;
                configure?.Invoke(o);
            });
            if (secondScheme is not null)
            {
                authentication.AddCookie(secondScheme, o =>
                {
                    o.SessionStore = store;
                    configure?.Invoke(o);
                });
            }

            if (!cacheRegisteredFirst)
            {
                collection.AddResilientStackExchangeRedisCache(o => o.Configuration = "localhost");
            }

            services?.Invoke(collection);
            return new App(collection.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true }), logs);
        }

        public async Task<CookiePair> SignInAsync()
        {
            var context = NewContext(cookie: null, out var scope);
            using (scope)
            {
                await context.SignInAsync(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, "alice")], "test")));
            }

            var header = SetCookieHeaderValue.Parse(context.Response.Headers.SetCookie.Single());
            return new CookiePair(header.Name.Value!, header.Value.Value!);
        }

        public async Task<bool> IsSignedInAsync(CookiePair cookie)
        {
            var context = NewContext(cookie, out var scope);
            using (scope)
            {
                return (await context.AuthenticateAsync()).Succeeded;
            }
        }

        public async Task<HttpContext> SignOutAsync(CookiePair? cookie)
        {
            var context = NewContext(cookie, out var scope);
            using (scope)
            {
                await context.SignOutAsync();
            }

            return context;
        }

        public void Dispose() => _provider.Dispose();

        private DefaultHttpContext NewContext(CookiePair? cookie, out IServiceScope scope)
        {
            scope = _provider.CreateScope();
            var context = new DefaultHttpContext { RequestServices = scope.ServiceProvider };
            context.Request.Scheme = "https";
            context.Request.Host = new HostString("localhost");
            context.Request.Path = "/";
            if (cookie is not null)
            {
                context.Request.Headers.Cookie = $"{cookie.Name}={cookie.Value}";
            }

            return context;
        }
    }

    /// <summary>The usual hand-written ticket store, in memory, recording its removals.</summary>
    private sealed class RecordingTicketStore : ITicketStore
    {
        private readonly ConcurrentDictionary<string, AuthenticationTicket> _tickets = new();

        /// <summary>Whether a read finds the ticket (false: a miss, as a read made up during an outage).</summary>
        public bool Finds { get; set; } = true;

        public Exception? RemoveThrows { get; init; }

        public Action<string>? OnRemove { get; set; }

        public List<string> Stored { get; } = [];

        public List<(string Key, HttpContext HttpContext, CancellationToken CancellationToken)> Removed { get; } = [];

        public Task<string> StoreAsync(AuthenticationTicket ticket)
        {
            var key = "AuthSessionStore-" + Guid.NewGuid();
            _tickets[key] = ticket;
            Stored.Add(key);
            return Task.FromResult(key);
        }

        public Task RenewAsync(string key, AuthenticationTicket ticket)
        {
            _tickets[key] = ticket;
            return Task.CompletedTask;
        }

        public Task<AuthenticationTicket?> RetrieveAsync(string key) =>
            Task.FromResult(Finds && _tickets.TryGetValue(key, out var ticket) ? ticket : null);

        public Task RemoveAsync(string key) => throw new InvalidOperationException("the handler calls the overload with the context");

        public Task RemoveAsync(string key, HttpContext httpContext, CancellationToken cancellationToken)
        {
            if (RemoveThrows is { } exception)
            {
                throw exception;
            }

            Removed.Add((key, httpContext, cancellationToken));
            OnRemove?.Invoke(key);
            _tickets.TryRemove(key, out _);
            return Task.CompletedTask;
        }
    }

    /// <summary>Events of the application's own type that override SigningOut without calling the delegate.</summary>
    private sealed class OverridingEvents : CookieAuthenticationEvents
    {
        public int SignedInCount { get; private set; }

        public int Validated { get; private set; }

        public int SignedOut { get; private set; }

        public override Task SignedIn(CookieSignedInContext context)
        {
            SignedInCount++;
            return Task.CompletedTask;
        }

        public override Task ValidatePrincipal(CookieValidatePrincipalContext context)
        {
            Validated++;
            return Task.CompletedTask;
        }

        public override Task SigningOut(CookieSigningOutContext context)
        {
            SignedOut++;
            return Task.CompletedTask;
        }
    }

    private sealed class ServiceEventsLog
    {
        public ConcurrentQueue<string> Events { get; } = new();
    }

    /// <summary>Events resolved from the services (EventsType), with a dependency of their own.</summary>
    private sealed class ServiceEvents(ServiceEventsLog log) : CookieAuthenticationEvents
    {
        public override Task SignedIn(CookieSignedInContext context)
        {
            log.Events.Enqueue(nameof(SignedIn));
            return Task.CompletedTask;
        }

        public override Task ValidatePrincipal(CookieValidatePrincipalContext context)
        {
            log.Events.Enqueue(nameof(ValidatePrincipal));
            return Task.CompletedTask;
        }

        public override Task SigningOut(CookieSigningOutContext context)
        {
            log.Events.Enqueue(nameof(SigningOut));
            return Task.CompletedTask;
        }
    }

    private sealed class CountingCookieManager : ICookieManager
    {
        public int Reads { get; private set; }

        public string? GetRequestCookie(HttpContext context, string key)
        {
            Reads++;
            return context.Request.Cookies[key];
        }

        public void AppendResponseCookie(HttpContext context, string key, string? value, CookieOptions options)
        {
        }

        public void DeleteCookie(HttpContext context, string key, CookieOptions options)
        {
        }
    }
}

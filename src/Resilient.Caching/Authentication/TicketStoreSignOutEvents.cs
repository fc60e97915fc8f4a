using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.DependencyInjection;

namespace Resilient.Caching.Authentication;

/// <summary>
/// The application's cookie events with the ticket's removal added to the sign-out: every event is the application's
/// own (<paramref name="inner"/>); <see cref="SigningOut"/> removes the ticket first, then runs the application's.
/// Used where chaining <see cref="CookieAuthenticationEvents.OnSigningOut"/> would not be called: events of a type
/// that overrides <see cref="CookieAuthenticationEvents.SigningOut"/>, and events resolved from the services
/// (<see cref="AuthenticationSchemeOptions.EventsType"/>, see <see cref="TicketStoreSignOutEvents{TEvents}"/>).
/// </summary>
/// <param name="inner">The application's events.</param>
/// <param name="removal">The ticket's removal.</param>
internal class TicketStoreSignOutEvents(CookieAuthenticationEvents inner, SignOutTicketRemoval removal) : CookieAuthenticationEvents
{
    /// <summary>Gets the application's events.</summary>
    public CookieAuthenticationEvents Inner { get; } = inner;

    /// <inheritdoc />
    public override async Task SigningOut(CookieSigningOutContext context)
    {
        await removal.RemoveAsync(context).ConfigureAwait(false);
        await Inner.SigningOut(context).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override Task ValidatePrincipal(CookieValidatePrincipalContext context) => Inner.ValidatePrincipal(context);

    /// <inheritdoc />
    public override Task CheckSlidingExpiration(CookieSlidingExpirationContext context) => Inner.CheckSlidingExpiration(context);

    /// <inheritdoc />
    public override Task SigningIn(CookieSigningInContext context) => Inner.SigningIn(context);

    /// <inheritdoc />
    public override Task SignedIn(CookieSignedInContext context) => Inner.SignedIn(context);

    /// <inheritdoc />
    public override Task RedirectToLogout(RedirectContext<CookieAuthenticationOptions> context) => Inner.RedirectToLogout(context);

    /// <inheritdoc />
    public override Task RedirectToLogin(RedirectContext<CookieAuthenticationOptions> context) => Inner.RedirectToLogin(context);

    /// <inheritdoc />
    public override Task RedirectToReturnUrl(RedirectContext<CookieAuthenticationOptions> context) => Inner.RedirectToReturnUrl(context);

    /// <inheritdoc />
    public override Task RedirectToAccessDenied(RedirectContext<CookieAuthenticationOptions> context) => Inner.RedirectToAccessDenied(context);
}

/// <summary>
/// The events of a scheme whose application sets <see cref="AuthenticationSchemeOptions.EventsType"/>: the handler
/// resolves this type instead (from the request's services, once per request, as it would the application's), and
/// this resolves the application's <typeparamref name="TEvents"/> the same way, with its own lifetime.
/// </summary>
/// <typeparam name="TEvents">The application's events type.</typeparam>
internal sealed class TicketStoreSignOutEvents<TEvents>(IServiceProvider services, SignOutTicketRemoval removal)
    : TicketStoreSignOutEvents(services.GetRequiredService<TEvents>(), removal)
    where TEvents : CookieAuthenticationEvents;

using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.Options;

namespace Resilient.Caching.Authentication;

/// <summary>
/// Adds <see cref="SignOutTicketRemoval"/> to the sign-out of every cookie scheme, named or not, so that a sign-out
/// during an outage is honoured once Redis is back. Whether the scheme has a ticket store is asked at sign-out time:
/// a scheme without one does nothing more than before.
/// </summary>
/// <remarks>
/// <para>How the removal is added depends on where the handler takes its events from:</para>
/// <list type="bullet">
/// <item><see cref="CookieAuthenticationOptions.Events"/> (the usual case): its
/// <see cref="CookieAuthenticationEvents.OnSigningOut"/> is chained (the removal, then the application's delegate). If
/// the events' type overrides <see cref="CookieAuthenticationEvents.SigningOut"/>, which may not call that delegate,
/// the events are wrapped in a <see cref="TicketStoreSignOutEvents"/> instead.</item>
/// <item><see cref="AuthenticationSchemeOptions.EventsType"/>: the handler resolves that type from the services and
/// ignores <c>Events</c>, so the type is replaced with <see cref="TicketStoreSignOutEvents{TEvents}"/>, which resolves
/// the application's.</item>
/// </list>
/// <para>
/// Runs as a post-configure, after every <c>Configure</c>; a post-configure of the application's that runs later and
/// replaces <c>Events</c> or <c>EventsType</c>, or assigns <c>OnSigningOut</c> without calling the delegate it found,
/// replaces the removal too. Adding it twice to the same events (an application that shares one events instance
/// between schemes or option rebuilds) adds it once.
/// </para>
/// </remarks>
/// <param name="removal">The ticket's removal.</param>
internal sealed class TicketStoreSignOut(SignOutTicketRemoval removal) : IPostConfigureOptions<CookieAuthenticationOptions>
{
    /// <inheritdoc />
    public void PostConfigure(string? name, CookieAuthenticationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);

        if (options.EventsType is { } eventsType)
        {
            if (Decorates(eventsType))
            {
                options.EventsType = typeof(TicketStoreSignOutEvents<>).MakeGenericType(eventsType);
            }

            return;
        }

        // Without events the handler would make default ones of its own: default ones here do the same, with the removal.
        var events = options.Events ?? (options.Events = new CookieAuthenticationEvents());
        if (events is TicketStoreSignOutEvents || events.OnSigningOut?.Target is ChainedSigningOut)
        {
            return;
        }

        if (OverridesSigningOut(events.GetType()))
        {
            options.Events = new TicketStoreSignOutEvents(events, removal);
            return;
        }

        events.OnSigningOut = new ChainedSigningOut(removal, events.OnSigningOut).InvokeAsync;
    }

    /// <summary>An events type we can stand in for: a closed cookie-events type that is not already ours.</summary>
    private static bool Decorates(Type eventsType) =>
        typeof(CookieAuthenticationEvents).IsAssignableFrom(eventsType)
        && !eventsType.ContainsGenericParameters
        && !typeof(TicketStoreSignOutEvents).IsAssignableFrom(eventsType);

    private static bool OverridesSigningOut(Type eventsType) =>
        eventsType.GetMethod(nameof(CookieAuthenticationEvents.SigningOut), [typeof(CookieSigningOutContext)])?.DeclaringType
            is { } declaring && declaring != typeof(CookieAuthenticationEvents);

    /// <summary>The removal, then the application's own delegate (if any); recognisable, so that it is added once.</summary>
    private sealed class ChainedSigningOut(SignOutTicketRemoval removal, Func<CookieSigningOutContext, Task>? next)
    {
        public async Task InvokeAsync(CookieSigningOutContext context)
        {
            await removal.RemoveAsync(context).ConfigureAwait(false);
            if (next is not null)
            {
                await next(context).ConfigureAwait(false);
            }
        }
    }
}

using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Resilient.Caching.Diagnostics;

namespace Resilient.Caching.Authentication;

/// <summary>
/// What a sign-out of a cookie scheme with a ticket store (<see cref="CookieAuthenticationOptions.SessionStore"/>)
/// adds: the ticket named by the request's cookie is removed through the application's own store, whether or not
/// the handler found it.
/// </summary>
/// <remarks>
/// <para>
/// <c>CookieAuthenticationHandler</c> removes a ticket on sign-out only when its read of that request found it. During
/// an outage that read is a made-up miss, so the handler removes nothing, and once Redis is back the ticket, still
/// there, lets a copy of the signed-out cookie in again. This removal does not depend on the read: the key is the
/// cookie's own <c>SessionId</c> claim, the store is the application's (its key mapping holds), and a removal that
/// cannot reach Redis is remembered by the cache and applied before Redis is used again.
/// </para>
/// <para>
/// Everything is read from the scheme's options at sign-out time (the framework's own post-configure sets the cookie
/// manager and the ticket format). With Redis up the ticket is removed twice (by the handler, then here): one more
/// <c>RemoveAsync</c> per sign-out. Nothing here throws: a request without the cookie, a cookie that does not
/// unprotect or carries no key, and a store that fails are left as they are (a failing store is logged).
/// </para>
/// </remarks>
internal sealed class SignOutTicketRemoval(ILoggerFactory? loggerFactory = null)
{
    /// <summary>The claim in which the cookie handler keeps the ticket's key in the store (its own constant).</summary>
    internal const string SessionIdClaim = "Microsoft.AspNetCore.Authentication.Cookies-SessionId";

    private readonly ILogger _logger = loggerFactory?.CreateLogger<SignOutTicketRemoval>() ?? (ILogger)NullLogger.Instance;

    /// <summary>Removes the ticket named by the request's cookie from the scheme's store, if it has one.</summary>
    public async Task RemoveAsync(CookieSigningOutContext context)
    {
        if (context.Options.SessionStore is not { } store || SessionKeyOf(context.HttpContext, context.Options) is not { } key)
        {
            return;
        }

        var aborted = context.HttpContext.RequestAborted;
        try
        {
            await store.RemoveAsync(key, context.HttpContext, aborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away; the handler's own calls see the same token.
        }
        catch (Exception exception)
        {
            Log.SignOutTicketNotRemoved(_logger, Redaction.ForOutput(exception), context.Scheme.Name);
        }
    }

    /// <summary>
    /// The ticket's key in the store, as the handler reads it: the request's cookie, unprotected with the scheme's
    /// ticket format (bound to the connection's TLS token binding, if any), its <see cref="SessionIdClaim"/>. Null
    /// when any step finds nothing.
    /// </summary>
    internal static string? SessionKeyOf(HttpContext httpContext, CookieAuthenticationOptions options)
    {
        try
        {
            if (options.Cookie.Name is not { Length: > 0 } name
                || options.CookieManager?.GetRequestCookie(httpContext, name) is not { Length: > 0 } cookie
                || options.TicketDataFormat?.Unprotect(cookie, TlsTokenBinding(httpContext)) is not { } ticket)
            {
                return null;
            }

            foreach (var claim in ticket.Principal.Claims)
            {
                if (string.Equals(claim.Type, SessionIdClaim, StringComparison.Ordinal))
                {
                    return claim.Value is { Length: > 0 } key ? key : null;
                }
            }
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // A cookie that does not unprotect names no ticket: nothing to remove.
        }

        return null;
    }

    private static string? TlsTokenBinding(HttpContext httpContext) =>
        httpContext.Features.Get<ITlsTokenBindingFeature>()?.GetProvidedTokenBindingId() is { } binding ? Convert.ToBase64String(binding) : null;
}

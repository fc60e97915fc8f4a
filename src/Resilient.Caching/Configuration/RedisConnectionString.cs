using System.Globalization;
using System.Net;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Resilient.Caching.Diagnostics;
using StackExchange.Redis;

namespace Resilient.Caching.Configuration;

/// <summary>
/// Reads <see cref="RedisCacheOptions.Configuration"/>: StackExchange.Redis's own format (<c>host:port,password=…</c>)
/// or a Redis URI, <c>redis://[[user]:password@]host[:port][/db]</c> (<c>rediss://</c> for TLS), the form many
/// platforms hand out as <c>REDIS_URL</c>. StackExchange.Redis does not read URIs: it would take the whole text,
/// credentials included, for a host name. StackExchange.Redis options may follow the URI after a comma.
/// </summary>
/// <remarks>
/// The user name and password of a URI end up in <see cref="ConfigurationOptions.User"/> and
/// <see cref="ConfigurationOptions.Password"/>, never in an endpoint. Every password read is handed to
/// <see cref="Redaction"/>. Error messages never repeat the text: it may hold a password.
/// </remarks>
internal static class RedisConnectionString
{
    private const int DefaultPort = 6379;

    /// <summary>The configuration the connection is built from: a clone of <c>ConfigurationOptions</c> (which wins, as in the stock provider) or the parsed string.</summary>
    public static ConfigurationOptions Build(RedisCacheOptions options)
    {
        if (options.ConfigurationOptions is { } supplied)
        {
            Redaction.AddKnownSecret(supplied.Password);
            return supplied.Clone();
        }

        return Parse(options.Configuration ?? string.Empty);
    }

    public static bool IsUri(string text)
    {
        var trimmed = text.AsSpan().TrimStart();
        return trimmed.StartsWith("redis://", StringComparison.OrdinalIgnoreCase) || trimmed.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase);
    }

    /// <exception cref="FormatException">The text is not a valid connection string or URI (the message does not repeat it).</exception>
    public static ConfigurationOptions Parse(string text)
    {
        if (!IsUri(text))
        {
            var parsed = ConfigurationOptions.Parse(text);
            Redaction.AddKnownSecret(parsed.Password);
            return parsed;
        }

        text = text.Trim();

        var schemeEnd = text.IndexOf("://", StringComparison.Ordinal) + 3;
        var comma = FirstOptionSeparator(text, schemeEnd);
        var uri = comma < 0 ? text : text[..comma];
        var configuration = comma < 0 ? new ConfigurationOptions() : ConfigurationOptions.Parse(text[(comma + 1)..]);
        Redaction.AddKnownSecret(configuration.Password);

        var secure = text[..schemeEnd].Equals("rediss://", StringComparison.OrdinalIgnoreCase);
        var rest = uri[schemeEnd..];

        // User-info runs to the last '@', so that an unencoded '@' or '/' in a password does not end it early.
        var userInfoEnd = rest.LastIndexOf('@');
        if (userInfoEnd >= 0)
        {
            ReadUserInfo(rest[..userInfoEnd], configuration);
            rest = rest[(userInfoEnd + 1)..];
        }

        if (rest.IndexOfAny(['?', '#']) >= 0)
        {
            throw new FormatException("The Redis URI has a query or fragment, which is not supported: append StackExchange.Redis options after a comma instead (redis://host:6379,abortConnect=false).");
        }

        var slash = rest.IndexOf('/');
        var authority = slash < 0 ? rest : rest[..slash];
        var database = slash < 0 ? string.Empty : rest[(slash + 1)..];
        configuration.EndPoints.Add(ReadEndPoint(authority));
        if (database.Length > 0)
        {
            configuration.DefaultDatabase = int.TryParse(database, NumberStyles.None, CultureInfo.InvariantCulture, out var number)
                ? number
                : throw new FormatException("The Redis URI's path is not a database number (redis://host:6379/0).");
        }

        if (secure)
        {
            configuration.Ssl = true;
        }

        return configuration;
    }

    /// <summary>
    /// Where StackExchange.Redis options (<c>,key=value</c>) begin after the URI, or -1. A comma followed by text
    /// without '=' still belongs to the URI: RFC 3986 allows an unencoded comma in a password.
    /// </summary>
    private static int FirstOptionSeparator(string text, int start)
    {
        for (var comma = text.IndexOf(',', start); comma >= 0; comma = text.IndexOf(',', comma + 1))
        {
            var next = text.IndexOf(',', comma + 1);
            var option = next < 0 ? text.AsSpan(comma + 1) : text.AsSpan(comma + 1, next - comma - 1);
            if (option.Contains('='))
            {
                return comma;
            }
        }

        return -1;
    }

    private static void ReadUserInfo(string userInfo, ConfigurationOptions configuration)
    {
        // redis://user:password@, redis://:password@, and redis://password@ (a lone value is a password, as in
        // Lettuce and Jedis: masked like one, and refused by Redis loudly if it was meant as a user name).
        var colon = userInfo.IndexOf(':');
        var user = colon < 0 ? string.Empty : Unescape(userInfo[..colon]);
        var password = Unescape(colon < 0 ? userInfo : userInfo[(colon + 1)..]);
        Redaction.AddKnownSecret(password);
        if (user.Length > 0)
        {
            configuration.User = user;
        }

        if (password.Length > 0)
        {
            configuration.Password = password;
        }
    }

    private static EndPoint ReadEndPoint(string authority)
    {
        string host;
        var port = DefaultPort;
        string? portText = null;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                throw new FormatException("The Redis URI's IPv6 host has no closing ']'.");
            }

            host = authority[1..close];
            var after = authority[(close + 1)..];
            if (after.Length > 0)
            {
                portText = after.StartsWith(':') ? after[1..] : throw new FormatException("The Redis URI has text after its IPv6 host that is not a port.");
            }
        }
        else
        {
            var colon = authority.LastIndexOf(':');
            host = colon < 0 ? authority : authority[..colon];
            portText = colon < 0 ? null : authority[(colon + 1)..];
        }

        if (portText is not null
            && (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > IPEndPoint.MaxPort))
        {
            throw new FormatException("The Redis URI's port is not a number from 1 to 65535.");
        }

        if (host.Length == 0)
        {
            throw new FormatException("The Redis URI names no host (redis://host:6379).");
        }

        return IPAddress.TryParse(host, out var address) ? new IPEndPoint(address, port) : new DnsEndPoint(host, port);
    }

    private static string Unescape(string text)
    {
        try
        {
            return Uri.UnescapeDataString(text);
        }
        catch (UriFormatException)
        {
            return text;
        }
    }
}

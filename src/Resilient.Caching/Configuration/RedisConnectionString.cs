using System.Globalization;
using System.Net;
using System.Text;
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
/// <para>
/// The user name and password of a URI are read here and set on <see cref="ConfigurationOptions.User"/> and
/// <see cref="ConfigurationOptions.Password"/>; they never pass through StackExchange.Redis's comma-separated format,
/// which would cut them at a ',' and read the rest as options. So any character works in them:
/// </para>
/// <list type="bullet">
/// <item>The user-info runs to the last '@' before the host: '@', '/', ',' and '=' may stand in it unencoded.</item>
/// <item>The first ':' of the user-info ends the user name: a ':' in the password may stand unencoded, one in the user name is written %3A.</item>
/// <item>'%' and two hex digits is a percent-encoded byte (the bytes must be UTF-8 text); any other '%' is the character itself.</item>
/// </list>
/// <para>
/// An '@' in an option after the URI (<c>redis://host,password=p@ss</c>) could also end a user-info: a URI that reads
/// validly both ways is refused rather than guessed, since either guess could send part of a password to a log as a
/// host name. In StackExchange.Redis's format a password cannot hold ','; what follows one is refused rather than
/// read as an option or an endpoint.
/// </para>
/// <para>
/// Every password read is handed to <see cref="Redaction"/>. Error messages never repeat the text: it may hold a
/// password. They name an option only when no user or password option comes before it.
/// </para>
/// </remarks>
internal static class RedisConnectionString
{
    private const int DefaultPort = 6379;

    private const string CommaInCredential =
        "a user name or password cannot hold ',' in the StackExchange.Redis format: write it in a redis:// URI, "
        + "percent-encoded (',' as %2C), or set ConfigurationOptions; endpoints go before the options (the text is not shown: it may be part of a password)";

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The configuration the connection is built from: a clone of <c>ConfigurationOptions</c> (which wins, as in the stock provider) or the parsed string.</summary>
    public static ConfigurationOptions Build(RedisCacheOptions options)
    {
        if (options.ConfigurationOptions is { } supplied)
        {
            RememberSecrets(supplied);
            return supplied.Clone();
        }

        return Parse(options.Configuration ?? string.Empty);
    }

    public static bool IsUri(string text)
    {
        var trimmed = text.AsSpan().TrimStart();
        return trimmed.StartsWith("redis://", StringComparison.OrdinalIgnoreCase) || trimmed.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase);
    }

    /// <exception cref="FormatException">The text is not a valid connection string or URI (the message does not repeat any of it).</exception>
    public static ConfigurationOptions Parse(string text)
    {
        var parsed = IsUri(text) ? ParseUri(text.Trim()) : ParseOptions(text, 0, afterUri: false);
        RememberSecrets(parsed);
        return parsed;
    }

    private static void RememberSecrets(ConfigurationOptions configuration)
    {
        Redaction.AddKnownSecret(configuration.Password);

        // A user name is masked by its key (user=…) up to the next separator: one that holds a separator (only a URI
        // can give one a ',') is masked whole. Not every user name: "default" or "cache" would vanish from every log.
        if (configuration.User is { } user && user.AsSpan().IndexOfAny(",;&\r\n") >= 0)
        {
            Redaction.AddKnownSecret(user);
        }
    }

    private static ConfigurationOptions ParseUri(string text)
    {
        var schemeEnd = text.IndexOf("://", StringComparison.Ordinal) + 3;
        var secure = text[..schemeEnd].Equals("rediss://", StringComparison.OrdinalIgnoreCase);

        // The user-info runs to the last '@'. An earlier '@' (or none) ends it too if what follows reads as a URI:
        // redis://host,name=a@b is host "host" with an option, or user-info "host,name=a" before host "b".
        var last = text.LastIndexOf('@');
        var userInfoEnd = last < schemeEnd ? -1 : last;
        for (var at = -1; at < userInfoEnd; at = text.IndexOf('@', at < 0 ? schemeEnd : at + 1))
        {
            if (ReadsAsUri(text, schemeEnd, at, secure))
            {
                throw new FormatException(
                    "The Redis URI can be read more than one way: an '@' after a comma may end the user-info or belong to an option. "
                    + "Put the password in the URI, with every '@' of the user name and password percent-encoded (%40), or give options holding '@' in the StackExchange.Redis format or ConfigurationOptions.");
            }
        }

        return Read(text, schemeEnd, userInfoEnd, secure);
    }

    private static bool ReadsAsUri(string text, int schemeEnd, int userInfoEnd, bool secure)
    {
        try
        {
            Read(text, schemeEnd, userInfoEnd, secure);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>The URI read with its user-info ending at <paramref name="userInfoEnd"/> (-1: none).</summary>
    private static ConfigurationOptions Read(string text, int schemeEnd, int userInfoEnd, bool secure)
    {
        var hostStart = userInfoEnd < 0 ? schemeEnd : userInfoEnd + 1;

        // A host, port and database hold no ','; the first one after the host starts the options.
        var comma = text.IndexOf(',', hostStart);
        var location = comma < 0 ? text[hostStart..] : text[hostStart..comma];
        if (location.IndexOfAny(['?', '#']) >= 0)
        {
            throw new FormatException("The Redis URI has a query or fragment, which is not supported: append StackExchange.Redis options after a comma instead (redis://host:6379,abortConnect=false).");
        }

        var slash = location.IndexOf('/');
        var endPoint = ReadEndPoint(slash < 0 ? location : location[..slash]);
        var database = slash < 0 ? string.Empty : location[(slash + 1)..];
        int? number = null;
        if (database.Length > 0)
        {
            number = int.TryParse(database, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
                ? value
                : throw new FormatException("The Redis URI's path is not a database number (redis://host:6379/0).");
        }

        var configuration = comma < 0 ? new ConfigurationOptions() : ParseOptions(text, comma + 1, afterUri: true);
        configuration.EndPoints.Add(endPoint);
        if (number is not null)
        {
            configuration.DefaultDatabase = number;
        }

        if (userInfoEnd >= 0)
        {
            ReadUserInfo(text[schemeEnd..userInfoEnd], configuration);
        }

        if (secure)
        {
            configuration.Ssl = true;
        }

        return configuration;
    }

    private static void ReadUserInfo(string userInfo, ConfigurationOptions configuration)
    {
        // redis://user:password@, redis://:password@, and redis://password@ (a lone value is a password, as in
        // Lettuce and Jedis: masked like one, and refused by Redis loudly if it was meant as a user name).
        var colon = userInfo.IndexOf(':');
        var user = colon < 0 ? string.Empty : Decode(userInfo[..colon], "user name");
        var password = Decode(colon < 0 ? userInfo : userInfo[(colon + 1)..], "password");
        if (user.Length > 0)
        {
            configuration.User = user;
        }

        if (password.Length > 0)
        {
            configuration.Password = password;
        }
    }

    /// <summary>Percent-decodes: '%' and two hex digits is a byte of UTF-8 text; any other '%' is itself.</summary>
    private static string Decode(string text, string part)
    {
        if (!text.Contains('%', StringComparison.Ordinal))
        {
            return text;
        }

        var decoded = new StringBuilder(text.Length);
        var bytes = new List<byte>();
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '%' && i + 2 < text.Length && char.IsAsciiHexDigit(text[i + 1]) && char.IsAsciiHexDigit(text[i + 2]))
            {
                bytes.Add(byte.Parse(text.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture));
                i += 2;
                continue;
            }

            Flush();
            decoded.Append(text[i]);
        }

        Flush();
        return decoded.ToString();

        void Flush()
        {
            if (bytes.Count == 0)
            {
                return;
            }

            try
            {
                decoded.Append(s_strictUtf8.GetString([.. bytes]));
            }
            catch (DecoderFallbackException)
            {
                throw new FormatException($"The Redis URI's {part} has percent-encoded bytes that are not UTF-8 text (a '%' of its own is written %25).");
            }

            bytes.Clear();
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

            if (!IPAddress.TryParse(host, out _))
            {
                throw new FormatException("The Redis URI's host in [] is not an IPv6 address.");
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

        if (IPAddress.TryParse(host, out var address))
        {
            return new IPEndPoint(address, port);
        }

        // Not shown: with an '@' in an option after the URI, what stands here may be part of a password.
        return CanBeHostName(host)
            ? new DnsEndPoint(host, port)
            : throw new FormatException("The Redis URI's host is not a host name or IP address (redis://[user:password@]host[:port][/db]).");
    }

    // As the start-up check of StackExchange.Redis endpoints: the characters of a host name, underscores included.
    private static bool CanBeHostName(string host) =>
        host.Length is > 0 and <= 253 && host[0] is not ('-' or '.')
        && host.All(static c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' || (c > 127 && char.IsLetterOrDigit(c)));

    /// <summary>
    /// StackExchange.Redis's format from <paramref name="start"/> on: <c>host:port,…,key=value,…</c>, or only
    /// <c>key=value</c> pairs <paramref name="afterUri"/>. Its own errors repeat the text ("Keyword 'x' is not
    /// supported", "the value 'y' is not recognised"), and what follows a ',' in a password is such text: they are
    /// replaced.
    /// </summary>
    private static ConfigurationOptions ParseOptions(string text, int start, bool afterUri)
    {
        var credentialBefore = HasCredentialOption(text.AsSpan(0, start));
        foreach (var token in text[start..].Split(','))
        {
            var option = token.Trim();
            var equals = option.IndexOf('=');
            if (option.Length > 0 && equals <= 0)
            {
                // An endpoint, or a word StackExchange.Redis would silently drop.
                if (afterUri)
                {
                    throw new FormatException("Only option=value pairs may follow the Redis URI after a comma (redis://host:6379,abortConnect=false): give further endpoints in ConfigurationOptions or in the StackExchange.Redis format.");
                }

                if (credentialBefore)
                {
                    throw new FormatException($"Text after a user or password option is not an option=value pair: {CommaInCredential}.");
                }
            }

            credentialBefore |= equals > 0 && IsCredentialKey(option.AsSpan(0, equals));
        }

        if (string.IsNullOrWhiteSpace(text[start..]))
        {
            return new ConfigurationOptions();
        }

        try
        {
            return ConfigurationOptions.Parse(text[start..]);
        }
        catch (Exception exception) when (exception is ArgumentException or FormatException or InvalidOperationException or NotSupportedException or OverflowException)
        {
            // Not attached as the inner exception: its message is the text being kept out.
            throw new FormatException(DescribeBadOption(text, start));
        }
    }

    /// <summary>Which option StackExchange.Redis refused: named only when no user or password option comes before it.</summary>
    private static string DescribeBadOption(string text, int start)
    {
        var credentialBefore = HasCredentialOption(text.AsSpan(0, start));
        foreach (var token in text[start..].Split(','))
        {
            var option = token.Trim();
            var equals = option.IndexOf('=');
            if (equals <= 0)
            {
                continue;
            }

            var key = option[..equals].Trim();
            if (!Accepts(option))
            {
                return credentialBefore
                    ? $"An option after a user or password option is not one StackExchange.Redis can read: {CommaInCredential}."
                    : $"StackExchange.Redis does not support the option '{key}' or cannot read its value (the value is not shown).";
            }

            credentialBefore |= IsCredentialKey(key);
        }

        return "StackExchange.Redis could not read the options (they are not shown: they may hold a password).";

        static bool Accepts(string option)
        {
            try
            {
                ConfigurationOptions.Parse(option);
                return true;
            }
            catch (Exception exception) when (exception is ArgumentException or FormatException or InvalidOperationException or NotSupportedException or OverflowException)
            {
                return false;
            }
        }
    }

    private static bool HasCredentialOption(ReadOnlySpan<char> text)
    {
        foreach (var range in text.Split(','))
        {
            var option = text[range];
            var equals = option.IndexOf('=');
            if (equals > 0 && IsCredentialKey(option[..equals]))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsCredentialKey(ReadOnlySpan<char> key)
    {
        key = key.Trim();
        return key.Equals("password", StringComparison.OrdinalIgnoreCase) || key.Equals("user", StringComparison.OrdinalIgnoreCase);
    }
}

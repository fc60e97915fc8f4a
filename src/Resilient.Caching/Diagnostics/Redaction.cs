using System.Collections;
using System.Text.RegularExpressions;

namespace Resilient.Caching.Diagnostics;

/// <summary>
/// The one path by which text leaves the library — log messages and the exceptions attached to them, health-check
/// data, <see cref="CacheAvailability.LastError"/>, the messages of exceptions we throw: no password, no URI
/// user-info, no user name of a connection string, ever.
/// </summary>
/// <remarks>
/// Three layers, so that a secret that slipped into an unexpected place is still caught: the keys of the
/// StackExchange.Redis format (<c>password=</c>, <c>user=</c>, …), the user-info of any URI
/// (<c>redis://user:password@host</c>, also when StackExchange.Redis took the whole URI for a host name), and, as a
/// last line of defence, the very passwords this process was configured with, wherever they appear.
/// </remarks>
internal static partial class Redaction
{
    internal const string Mask = "***";

    // Shorter ones would mask ordinary words everywhere; the key and URI patterns still cover them.
    private const int MinimumKnownSecretLength = 4;
    private const int MaximumDescriptionLength = 240;

    private static readonly Lock s_gate = new();
    private static string[] s_knownSecrets = [];

    /// <summary>Remembers a configured password, so that it is masked wherever it appears.</summary>
    public static void AddKnownSecret(string? secret)
    {
        if (secret is null || secret.Length < MinimumKnownSecretLength)
        {
            return;
        }

        lock (s_gate)
        {
            if (Array.IndexOf(s_knownSecrets, secret) < 0)
            {
                // Longest first, so that a secret containing another is masked whole.
                s_knownSecrets = [.. s_knownSecrets.Append(secret).OrderByDescending(static s => s.Length)];
            }
        }
    }

    /// <summary>Any text, with every secret masked.</summary>
    public static string Redact(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text ?? string.Empty;
        }

        foreach (var secret in Volatile.Read(ref s_knownSecrets))
        {
            text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }

        text = UserInfoPattern().Replace(text, "$1" + Mask + "@");
        return KeyPattern().Replace(text, "$1=" + Mask);
    }

    /// <summary>"Type: first line of the message", secrets masked: for log messages and health-check data.</summary>
    public static string Describe(Exception exception)
    {
        // Masked before it is cut, so that a cut never leaves half a secret unmatched.
        var message = Redact(exception.Message);
        var newline = message.IndexOfAny(['\r', '\n']);
        if (newline >= 0)
        {
            message = message[..newline];
        }

        if (message.Length > MaximumDescriptionLength)
        {
            message = message[..MaximumDescriptionLength] + "…";
        }

        var type = exception is RedactedException redacted ? redacted.OriginalType : exception.GetType();
        return $"{type.Name}: {message}";
    }

    /// <summary>
    /// The exception to attach to a log line or to hand out: the exception itself when nothing in it carries a
    /// secret (loggers write <see cref="Exception.ToString"/>, inner exceptions included), otherwise a
    /// <see cref="RedactedException"/> with the same type name, masked message and text, and the same stack trace.
    /// </summary>
    public static Exception? ForOutput(Exception? exception)
    {
        if (exception is null or RedactedException)
        {
            return exception;
        }

        var text = exception.ToString();
        return Redact(text) != text || CarriesSecretInData(exception) ? new RedactedException(exception, Redact(text)) : exception;
    }

    private static bool CarriesSecretInData(Exception exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            foreach (DictionaryEntry entry in current.Data)
            {
                if (entry.Value?.ToString() is { } value && Redact(value) != value)
                {
                    return true;
                }
            }
        }

        return false;
    }

    // The StackExchange.Redis keys that carry a credential, and the usual spellings elsewhere. A value runs to the
    // next separator of that format (a password may hold spaces).
    [GeneratedRegex(@"\b(password|pwd|passwd|pass|user|username|uid|secret|token|auth)\s*=\s*[^,;&\r\n]*", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex KeyPattern();

    // scheme://user-info@ — up to the last '@' before white space, so an unencoded '@', '/' or ':' in a password is
    // masked too.
    [GeneratedRegex(@"\b([a-z][a-z0-9+.\-]*://)[^\s]*@", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex UserInfoPattern();
}

/// <summary>
/// Stands in for an exception whose text carried a secret: same type name (<see cref="OriginalType"/>), same stack
/// trace, message and <see cref="ToString"/> masked. Logged instead of the original, and handed out by
/// <see cref="CacheAvailability.LastError"/>.
/// </summary>
#pragma warning disable CA1032 // Only ever made from the exception it stands in for.
internal sealed class RedactedException : Exception
#pragma warning restore CA1032
{
    private readonly string _text;
    private readonly string? _stackTrace;

    public RedactedException(Exception original, string redactedText)
        : base(Redaction.Redact(original.Message))
    {
        OriginalType = original.GetType();
        HResult = original.HResult;
        Source = original.Source;
        _stackTrace = original.StackTrace;
        _text = redactedText;
    }

    /// <summary>Gets the type of the exception this one stands in for.</summary>
    public Type OriginalType { get; }

    public override string? StackTrace => _stackTrace;

    public override string ToString() => _text;
}

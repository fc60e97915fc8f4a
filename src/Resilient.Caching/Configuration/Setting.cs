using System.Globalization;

namespace Resilient.Caching.Configuration;

/// <summary>
/// One tunable setting: its path in the configuration section, its flat environment variable, how its text is
/// read, and how it is validated. The table in <see cref="All"/> drives binding, overrides, validation and the
/// settings log line, so a setting is described once.
/// </summary>
internal sealed class Setting
{
    private Setting(string path, string environmentVariable, SettingKind kind, Func<ResilientRedisCacheOptions, object> get, Action<ResilientRedisCacheOptions, object> set)
    {
        Path = path;
        EnvironmentVariable = environmentVariable;
        Kind = kind;
        Get = get;
        Set = set;
    }

    /// <summary>The most records <see cref="ResilientRedisCacheOptions.MaxPendingInvalidations"/> allows (about 1 GB of bookkeeping with both sets full).</summary>
    internal const int MaxRecords = 10_000_000;

    public static IReadOnlyList<Setting> All { get; } =
    [
        new("SocketKeepAlive", "REDIS_CACHE_SOCKET_KEEPALIVE", SettingKind.Boolean, o => o.SocketKeepAlive, (o, v) => o.SocketKeepAlive = (bool)v),
        new("TcpKeepAlive:Idle", "TCP_KEEPALIVE_IDLE", SettingKind.KeepAliveSeconds, o => o.TcpKeepAlive.Idle, (o, v) => o.TcpKeepAlive.Idle = (TimeSpan)v),
        new("TcpKeepAlive:Interval", "TCP_KEEPALIVE_INTVL", SettingKind.KeepAliveSeconds, o => o.TcpKeepAlive.Interval, (o, v) => o.TcpKeepAlive.Interval = (TimeSpan)v),
        new("TcpKeepAlive:Count", "TCP_KEEPALIVE_CNT", SettingKind.KeepAliveCount, o => o.TcpKeepAlive.Count, (o, v) => o.TcpKeepAlive.Count = (int)v),
        new("ConnectTimeout", "REDIS_CACHE_SOCKET_CONNECT_TIMEOUT", SettingKind.Timeout, o => o.ConnectTimeout, (o, v) => o.ConnectTimeout = (TimeSpan)v),
        new("OperationTimeout", "REDIS_CACHE_SOCKET_TIMEOUT", SettingKind.Timeout, o => o.OperationTimeout, (o, v) => o.OperationTimeout = (TimeSpan)v),
        new("UnavailableWindow", "REDIS_CACHE_UNAVAILABLE_WINDOW", SettingKind.Window, o => o.UnavailableWindow, (o, v) => o.UnavailableWindow = (TimeSpan)v),
        new("IgnoreExceptions", "REDIS_CACHE_IGNORE_EXCEPTIONS", SettingKind.Boolean, o => o.IgnoreExceptions, (o, v) => o.IgnoreExceptions = (bool)v),
        new("LogIgnoredExceptions", "REDIS_CACHE_LOG_IGNORED_EXCEPTIONS", SettingKind.Boolean, o => o.LogIgnoredExceptions, (o, v) => o.LogIgnoredExceptions = (bool)v),
        new("MaxPendingInvalidations", "REDIS_CACHE_MAX_PENDING_INVALIDATIONS", SettingKind.RecordCount, o => o.MaxPendingInvalidations, (o, v) => o.MaxPendingInvalidations = (int)v),
        new("PurgeInstanceOnOverflow", "REDIS_CACHE_PURGE_INSTANCE_ON_OVERFLOW", SettingKind.Boolean, o => o.PurgeInstanceOnOverflow, (o, v) => o.PurgeInstanceOnOverflow = (bool)v),
        new("DedicatedThreads", "REDIS_CACHE_DEDICATED_THREADS", SettingKind.Boolean, o => o.DedicatedThreads, (o, v) => o.DedicatedThreads = (bool)v),
        new("InvalidateKeysReadDuringOutage", "REDIS_CACHE_INVALIDATE_KEYS_READ_DURING_OUTAGE", SettingKind.Boolean, o => o.InvalidateKeysReadDuringOutage, (o, v) => o.InvalidateKeysReadDuringOutage = (bool)v),
        new("InvalidateKeyPrefixesReadDuringOutage", "REDIS_CACHE_INVALIDATE_KEY_PREFIXES_READ_DURING_OUTAGE", SettingKind.Text,
            o => o.InvalidateKeyPrefixesReadDuringOutage ?? string.Empty, (o, v) => o.InvalidateKeyPrefixesReadDuringOutage = (string)v),
    ];

    /// <summary>Gets the path under the configuration section, e.g. <c>TcpKeepAlive:Idle</c>.</summary>
    public string Path { get; }

    public string EnvironmentVariable { get; }

    public SettingKind Kind { get; }

    public Func<ResilientRedisCacheOptions, object> Get { get; }

    public Action<ResilientRedisCacheOptions, object> Set { get; }

    /// <summary>The setting as users write it in code, e.g. <c>TcpKeepAlive.Idle</c>.</summary>
    public string Name => Path.Replace(':', '.');

    /// <summary>Reads a value from text. Durations in environment variables are seconds; in configuration either seconds or a TimeSpan ("00:01:00").</summary>
    public bool TryParse(string text, bool fromEnvironment, out object value, out string expected)
    {
        text = text.Trim();
        switch (Kind)
        {
            case SettingKind.Text:
                expected = "text";
                value = text;
                return true;
            case SettingKind.Boolean:
                expected = "true or false (also 1/0, yes/no, on/off)";
                if (TryParseBoolean(text, out var flag))
                {
                    value = flag;
                    return true;
                }

                break;
            case SettingKind.KeepAliveCount or SettingKind.RecordCount:
                expected = Kind == SettingKind.RecordCount ? "a whole number of records" : "a whole number of probes";
                if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var count))
                {
                    value = count;
                    return true;
                }

                break;
            default:
                expected = fromEnvironment ? "a number of seconds" : "a number of seconds or a TimeSpan such as 00:00:30";
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && double.IsFinite(seconds)
                    && Math.Abs(seconds) < TimeSpan.MaxValue.TotalSeconds)
                {
                    value = TimeSpan.FromSeconds(seconds);
                    return true;
                }

                // "60" must not mean sixty days, which is what TimeSpan.Parse makes of it: only text with a colon is a TimeSpan.
                if (!fromEnvironment && text.Contains(':', StringComparison.Ordinal)
                    && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span))
                {
                    value = span;
                    return true;
                }

                break;
        }

        value = null!;
        return false;
    }

    /// <summary>Returns null when the value is acceptable, else what is wrong with it.</summary>
    public string? Validate(object value) => Kind switch
    {
        SettingKind.KeepAliveSeconds when value is TimeSpan span && (span.Ticks % TimeSpan.TicksPerSecond != 0 || span.TotalSeconds < 1 || span.TotalSeconds > 32767)
            => "must be a whole number of seconds from 1 to 32767 (the range the operating system accepts)",
        SettingKind.KeepAliveCount when value is int count && count is < 1 or > 127
            => "must be from 1 to 127 probes (the range the operating system accepts)",
        SettingKind.Timeout when value is TimeSpan span && (span <= TimeSpan.Zero || span.TotalMilliseconds > int.MaxValue)
            => "must be greater than zero and at most 24 days",
        SettingKind.Window when value is TimeSpan span && (span < TimeSpan.Zero || span > TimeSpan.FromDays(1))
            => "must be from zero to one day",
        SettingKind.RecordCount when value is int count && count is < 1 or > MaxRecords
            => "must be from 1 to 10000000 records",
        _ => null,
    };

    public static string Format(object value) => value switch
    {
        TimeSpan span => span.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + " s",
        bool flag => flag ? "true" : "false",
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? string.Empty,
    };

    private static bool TryParseBoolean(string text, out bool value)
    {
        switch (text.ToUpperInvariant())
        {
            case "TRUE" or "1" or "YES" or "ON":
                value = true;
                return true;
            case "FALSE" or "0" or "NO" or "OFF":
                value = false;
                return true;
            default:
                value = false;
                return false;
        }
    }
}

internal enum SettingKind
{
    Boolean,
    KeepAliveSeconds,
    KeepAliveCount,
    Timeout,
    Window,
    RecordCount,

    /// <summary>Free text (a comma-separated list, for one).</summary>
    Text,
}

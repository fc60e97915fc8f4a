using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using Resilient.Caching.Diagnostics;
using StackExchange.Redis;

namespace Resilient.Caching.Configuration;

/// <summary>
/// Validates the effective settings at start-up (<c>ValidateOnStart</c>). Every message names the setting, where
/// its value came from and the value, so that a typo in an environment variable is found from the first log line.
/// </summary>
/// <param name="registrations">Which of our registrations the application made, when it made any that records them.</param>
internal sealed class ResilientRedisCacheOptionsValidator(ResilientRegistrations? registrations = null) : IValidateOptions<ResilientRedisCacheOptions>
{
    /// <summary>What start-up says when the output cache was registered and the cache it shares was not.</summary>
    internal const string OutputCacheWithoutCache =
        "AddResilientStackExchangeRedisOutputCache was called, but AddResilientStackExchangeRedisCache was not: the output-cache store "
        + "uses the connection and settings of the (unkeyed) resilient distributed cache. Call services.AddResilientStackExchangeRedisCache(...) "
        + "(or builder.AddResilientStackExchangeRedisCache(connectionName)) with the Redis connection as well.";

    public ValidateOptionsResult Validate(string? name, ResilientRedisCacheOptions options)
    {
        var failures = new List<string>(options.ParseErrors);
        var keepAliveValid = true;
        foreach (var setting in Setting.All)
        {
            var value = setting.Get(options);
            if (setting.Validate(value) is { } problem)
            {
                failures.Add(Describe(options, setting, value, problem));
                keepAliveValid &= setting.Kind is not (SettingKind.KeepAliveSeconds or SettingKind.KeepAliveCount);
            }
        }

        if (keepAliveValid && options.SocketKeepAlive && options.ConnectionMultiplexerFactory is null)
        {
            CheckOperatingSystemAccepts(options, failures);
        }

        if (options.PurgeInstanceOnOverflow && string.IsNullOrEmpty(options.InstanceName))
        {
            // Without a prefix the purge would delete every key of the database, other applications' included.
            failures.Add("PurgeInstanceOnOverflow = 'true' needs an InstanceName (the key prefix whose keys it deletes).");
        }

        var outputCacheAlone = string.IsNullOrEmpty(name) && registrations is { OutputCacheStore: true, DistributedCache: false };
        CheckConnection(options, failures, outputCacheAlone);
        if (failures.Count == 0)
        {
            return ValidateOptionsResult.Success;
        }

        // A keyed cache's problems say which cache they belong to.
        return ValidateOptionsResult.Fail(string.IsNullOrEmpty(name) ? failures : failures.Select(f => $"Redis cache '{name}': {f}"));
    }

    internal static string Describe(ResilientRedisCacheOptions options, Setting setting, object value, string problem) =>
        $"{setting.Name} = '{Setting.Format(value)}' (from {SourceOf(options, setting)}) is not valid: {problem}.";

    internal static string SourceOf(ResilientRedisCacheOptions options, Setting setting) =>
        options.Sources.TryGetValue(setting.Path, out var source) ? source : "the default";

    /// <summary>Sets the keepalive values on a throwaway socket: what this kernel refuses fails here, not on a connect.</summary>
    private static void CheckOperatingSystemAccepts(ResilientRedisCacheOptions options, List<string> failures)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        Check(SocketOptionName.TcpKeepAliveTime, (int)options.TcpKeepAlive.Idle.TotalSeconds, 1);
        Check(SocketOptionName.TcpKeepAliveInterval, (int)options.TcpKeepAlive.Interval.TotalSeconds, 2);
        Check(SocketOptionName.TcpKeepAliveRetryCount, options.TcpKeepAlive.Count, 3);

        void Check(SocketOptionName option, int value, int settingIndex)
        {
            try
            {
                socket.SetSocketOption(SocketOptionLevel.Tcp, option, value);
            }
            catch (Exception exception) when (exception is SocketException or PlatformNotSupportedException)
            {
                var setting = Setting.All[settingIndex];
                failures.Add(Describe(options, setting, setting.Get(options), $"the operating system rejected it ({exception.Message})"));
            }
        }
    }

    private static void CheckConnection(ResilientRedisCacheOptions options, List<string> failures, bool outputCacheAlone)
    {
        if (options.ConnectionMultiplexerFactory is not null)
        {
            return;
        }

        if (options.ConfigurationOptions is { } supplied)
        {
            // As in the stock provider, ConfigurationOptions wins over the Configuration string.
            CheckEndPoints(supplied, $"ConfigurationOptions (from {options.Sources.GetValueOrDefault(nameof(options.ConfigurationOptions), "code")})", failures);
            return;
        }

        var source = options.Sources.GetValueOrDefault(ResilientRedisCacheOptionsSetup.ConfigurationKey)
            ?? (string.IsNullOrEmpty(options.Configuration) ? "the default" : "code");
        var subject = $"Configuration (from {source})";
        if (string.IsNullOrWhiteSpace(options.Configuration))
        {
            // Without the cache's registration nothing set the connection: name the missing call, not the empty value.
            failures.Add(outputCacheAlone
                ? OutputCacheWithoutCache
                : $"{subject} is empty: set the Redis connection string (e.g. \"localhost:6379\" or \"redis://user:password@host:6379/0\"), ConfigurationOptions or ConnectionMultiplexerFactory.");
            return;
        }

        ConfigurationOptions parsed;
        try
        {
            parsed = RedisConnectionString.Parse(options.Configuration);
        }
        catch (Exception exception) when (exception is ArgumentException or FormatException or NotSupportedException or RedisException)
        {
            // The connection string itself is not repeated: it may hold a password.
            failures.Add($"{subject} could not be parsed: {Redaction.Redact(exception.Message)}");
            return;
        }

        CheckEndPoints(parsed, subject, failures);
    }

    /// <summary>
    /// StackExchange.Redis takes any text without '=' for an endpoint (a URI it cannot read, a stray word): what cannot
    /// be a host name or address would only fail on every connect, so it stops start-up instead.
    /// </summary>
    private static void CheckEndPoints(ConfigurationOptions configuration, string subject, List<string> failures)
    {
        if (configuration.EndPoints.Count == 0)
        {
            failures.Add($"{subject} names no Redis endpoint (host:port).");
            return;
        }

        foreach (var endPoint in configuration.EndPoints)
        {
            if (endPoint is DnsEndPoint dns && !CanBeHostName(dns.Host))
            {
                // Shown only when it cannot be a credential.
                var shown = dns.Host.Contains('@', StringComparison.Ordinal) || dns.Host.Contains("://", StringComparison.Ordinal) || Redaction.Redact(dns.Host) != dns.Host
                    ? "an endpoint"
                    : $"'{dns.Host}'";
                failures.Add($"{subject} is not valid: {shown} is not a host name or IP address. Expected host:port[,option=value…] or a URI "
                    + "redis://[user:password@]host[:port][/db] (rediss:// for TLS).");
            }
        }
    }

    // The characters of a host name (underscores too: container and service names have them), nothing about
    // whether it resolves: a name that does not resolve yet is an outage to ride out, not a configuration error.
    private static bool CanBeHostName(string host) =>
        host.Length is > 0 and <= 253 && host[0] is not ('-' or '.')
        && host.All(static c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' || (c > 127 && char.IsLetterOrDigit(c)));
}

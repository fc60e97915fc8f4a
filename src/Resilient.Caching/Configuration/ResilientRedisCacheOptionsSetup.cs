using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Resilient.Caching.Configuration;

/// <summary>
/// The three layers above the defaults, in precedence order, each recording where a value came from so that a
/// bad one can be reported with its source. <c>RedisCacheOptions</c> configuration is placed among them by
/// <see cref="RedisCacheOptionsBridge"/>.
/// </summary>
internal static class ResilientRedisCacheOptionsSetup
{
    internal const string DelegateSource = "code (the AddResilientStackExchangeRedisCache delegate)";
    internal const string ConfigurationKey = "Configuration";
    private const string InstanceNameKey = "InstanceName";
    private const string TcpKeepAliveKey = "TcpKeepAlive";

    /// <summary>Every key the section may hold (top level).</summary>
    private static readonly string[] s_knownKeys =
        [ConfigurationKey, InstanceNameKey, .. Setting.All.Select(static s => s.Path.Split(':')[0]).Distinct()];

    /// <summary>Layer 1: the configuration section (appsettings.json, Section__Key environment variables, …).</summary>
    /// <param name="section">The section.</param>
    /// <param name="otherKeys">Keys the section may also hold that are not cache settings (the host one-liner's switches).</param>
    public sealed class FromSection(IConfiguration section, IReadOnlyCollection<string>? otherKeys = null) : IConfigureOptions<ResilientRedisCacheOptions>
    {
        public void Configure(ResilientRedisCacheOptions options)
        {
            var prefix = section is IConfigurationSection named ? named.Path + ":" : string.Empty;
            if (section[ConfigurationKey] is { } configuration)
            {
                options.Configuration = configuration;
                options.Sources[ConfigurationKey] = $"configuration key '{prefix}{ConfigurationKey}'";
            }

            if (section[InstanceNameKey] is { } instanceName)
            {
                options.InstanceName = instanceName;
            }

            // A section of its own only: the application's whole configuration, passed by mistake, holds other keys.
            if (section is IConfigurationSection)
            {
                ReportUnknownKeys(section, prefix, options, otherKeys ?? []);
            }

            foreach (var setting in Setting.All)
            {
                if (section[setting.Path] is { } text)
                {
                    Apply(options, setting, text, fromEnvironment: false, $"configuration key '{prefix}{setting.Path}'");
                }
            }
        }
    }

    /// <summary>Layer 2: the code delegate; values it changes are attributed to it.</summary>
    public sealed class FromDelegate(Action<ResilientRedisCacheOptions> setup) : IConfigureOptions<ResilientRedisCacheOptions>
    {
        public void Configure(ResilientRedisCacheOptions options) => Attribute(options, DelegateSource, setup);
    }

    /// <summary>Layer 3: the flat environment variables, which win so operators can tune without a code change.</summary>
    public sealed class FromEnvironment(EnvironmentVariables environment) : IPostConfigureOptions<ResilientRedisCacheOptions>
    {
        public void PostConfigure(string? name, ResilientRedisCacheOptions options)
        {
            foreach (var setting in Setting.All)
            {
                if (environment.Get(setting.EnvironmentVariable) is { } text)
                {
                    Apply(options, setting, text, fromEnvironment: true, $"environment variable {setting.EnvironmentVariable}");
                }
            }
        }
    }

    /// <summary>Runs <paramref name="setup"/> and attributes to <paramref name="source"/> the values it changes.</summary>
    internal static void Attribute(ResilientRedisCacheOptions options, string source, Action<ResilientRedisCacheOptions> setup)
    {
        var before = new object[Setting.All.Count];
        for (var i = 0; i < before.Length; i++)
        {
            before[i] = Setting.All[i].Get(options);
        }

        var configuration = options.Configuration;
        var configurationOptions = options.ConfigurationOptions;
        setup(options);
        if (!Equals(configuration, options.Configuration))
        {
            options.Sources[ConfigurationKey] = source;
        }

        if (!ReferenceEquals(configurationOptions, options.ConfigurationOptions))
        {
            options.Sources[nameof(options.ConfigurationOptions)] = source;
        }

        for (var i = 0; i < before.Length; i++)
        {
            if (!Equals(before[i], Setting.All[i].Get(options)))
            {
                options.Sources[Setting.All[i].Path] = source;
            }
        }
    }

    /// <summary>
    /// A key of the section that no setting reads (a typo such as <c>OperationTimout</c>) would otherwise be ignored
    /// in silence, leaving the default in force: it fails start-up, named, instead.
    /// </summary>
    private static void ReportUnknownKeys(IConfiguration section, string prefix, ResilientRedisCacheOptions options, IReadOnlyCollection<string> otherKeys)
    {
        foreach (var child in section.GetChildren().Where(c => !otherKeys.Contains(c.Key, StringComparer.OrdinalIgnoreCase)))
        {
            var known = s_knownKeys.FirstOrDefault(k => k.Equals(child.Key, StringComparison.OrdinalIgnoreCase));
            if (known is null)
            {
                options.ParseErrors.Add($"'{prefix}{child.Key}' (configuration key) is not a setting of the Redis cache{Suggest(child.Key)}. "
                    + $"The settings are: {string.Join(", ", s_knownKeys.Select(static k => k == TcpKeepAliveKey ? "TcpKeepAlive:Idle, TcpKeepAlive:Interval, TcpKeepAlive:Count" : k))}.");
            }
            else if (known == TcpKeepAliveKey)
            {
                foreach (var grandchild in child.GetChildren())
                {
                    if (!Setting.All.Any(s => s.Path.Equals($"{TcpKeepAliveKey}:{grandchild.Key}", StringComparison.OrdinalIgnoreCase)))
                    {
                        options.ParseErrors.Add($"'{prefix}{child.Key}:{grandchild.Key}' (configuration key) is not a setting of the Redis cache: "
                            + "TcpKeepAlive has Idle, Interval and Count.");
                    }
                }
            }
        }
    }

    private static string Suggest(string key)
    {
        var closest = s_knownKeys.MinBy(k => Distance(k.ToUpperInvariant(), key.ToUpperInvariant()))!;
        return Distance(closest.ToUpperInvariant(), key.ToUpperInvariant()) <= 3 ? $" (did you mean '{closest}'?)" : string.Empty;
    }

    private static int Distance(string a, string b)
    {
        var row = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            row[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            var diagonal = row[0];
            row[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }

        return row[b.Length];
    }

    private static void Apply(ResilientRedisCacheOptions options, Setting setting, string text, bool fromEnvironment, string source)
    {
        if (setting.TryParse(text, fromEnvironment, out var value, out var expected))
        {
            setting.Set(options, value);
            options.Sources[setting.Path] = source;
        }
        else
        {
            // Reported by the validator at start-up, together with every other problem.
            options.ParseErrors.Add($"{setting.Name} = '{text}' (from {source}) is not valid: expected {expected}.");
        }
    }
}

using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Resilient.Caching.Configuration;

/// <summary>
/// The three layers above the defaults, in precedence order, each recording where a value came from so that a
/// bad one can be reported with its source.
/// </summary>
internal static class ResilientRedisCacheOptionsSetup
{
    internal const string DelegateSource = "code (the AddResilientStackExchangeRedisCache delegate)";

    /// <summary>Layer 1: the configuration section (appsettings.json, Section__Key environment variables, …).</summary>
    public sealed class FromSection(IConfiguration section) : IConfigureOptions<ResilientRedisCacheOptions>
    {
        public void Configure(ResilientRedisCacheOptions options)
        {
            if (section["Configuration"] is { } configuration)
            {
                options.Configuration = configuration;
            }

            if (section["InstanceName"] is { } instanceName)
            {
                options.InstanceName = instanceName;
            }

            var prefix = section is IConfigurationSection named ? named.Path + ":" : string.Empty;
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
        public void Configure(ResilientRedisCacheOptions options)
        {
            var before = new object[Setting.All.Count];
            for (var i = 0; i < before.Length; i++)
            {
                before[i] = Setting.All[i].Get(options);
            }

            setup(options);
            for (var i = 0; i < before.Length; i++)
            {
                if (!Equals(before[i], Setting.All[i].Get(options)))
                {
                    options.Sources[Setting.All[i].Path] = DelegateSource;
                }
            }
        }
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

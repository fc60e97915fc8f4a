using System.Globalization;
using System.Runtime.InteropServices;

namespace Resilient.Caching.Benchmarks.Shared;

/// <summary>The facts every results file states: machine, load, runtime and package versions.</summary>
internal static class MachineInfo
{
    public static string CpuModel => ReadFirst("/proc/cpuinfo", "model name") ?? RuntimeInformation.ProcessArchitecture.ToString();

    public static string OperatingSystem => ReadFirst("/etc/os-release", "PRETTY_NAME")?.Trim('"') ?? RuntimeInformation.OSDescription;

    public static string Kernel => File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : Environment.OSVersion.VersionString;

    public static string LoadAverage => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    /// <summary>Versions of the assemblies that matter for the comparison, read from the loaded assemblies.</summary>
    public static string PackageVersions =>
        string.Join(", ",
            Describe("StackExchange.Redis", typeof(StackExchange.Redis.ConnectionMultiplexer)),
            Describe("Microsoft.Extensions.Caching.StackExchangeRedis", typeof(Microsoft.Extensions.Caching.StackExchangeRedis.RedisCache)),
            Describe("Resilient.Caching", typeof(CacheAvailability)));

    public static string Summary(string command) => string.Join('\n',
        $"- Machine: {Environment.ProcessorCount} cores (`nproc`), {CpuModel}, {OperatingSystem}, kernel {Kernel}",
        $"- Date: {DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC; load average at start: {LoadAverage}",
        $"- .NET: {RuntimeInformation.FrameworkDescription}; packages: {PackageVersions}",
        $"- Command: `{command}`");

    private static string Describe(string name, Type type)
    {
        var informational = type.Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion;
        var version = informational?.Split('+')[0] ?? type.Assembly.GetName().Version?.ToString() ?? "?";
        return $"{name} {version}";
    }

    private static string? ReadFirst(string path, string key)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        foreach (var line in File.ReadLines(path))
        {
            var separator = line.IndexOfAny([':', '=']);
            if (separator > 0 && line[..separator].Trim() == key)
            {
                return line[(separator + 1)..].Trim();
            }
        }

        return null;
    }
}

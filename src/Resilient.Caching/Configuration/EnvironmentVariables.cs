namespace Resilient.Caching.Configuration;

/// <summary>Where the flat environment variables are read from; replaced in tests, which run in parallel in one process.</summary>
internal sealed class EnvironmentVariables(Func<string, string?> read)
{
    public static EnvironmentVariables Process { get; } = new(Environment.GetEnvironmentVariable);

    public string? Get(string name) => read(name);
}

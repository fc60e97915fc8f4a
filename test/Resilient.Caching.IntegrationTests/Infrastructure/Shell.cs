using System.Diagnostics;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>Result of a finished external command.</summary>
public sealed record ShellResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>
/// Runs short external commands (ip, iptables, ...) for the fixtures. Every run has a timeout so a hung
/// tool can never hang the test run, and failures carry stdout+stderr so the cause is visible in the test log.
/// </summary>
public static class Shell
{
    /// <summary>Upper bound for one command; the fixtures only run quick administrative tools.</summary>
    public static TimeSpan DefaultTimeout { get; } = TimeSpan.FromSeconds(30);

    /// <summary>Runs <paramref name="file"/> and throws <see cref="InvalidOperationException"/> on a non-zero exit code.</summary>
    public static async Task<ShellResult> RunAsync(string file, params string[] args)
    {
        var result = await TryRunAsync(file, args);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"`{Describe(file, args)}` exited with code {result.ExitCode}.\nstdout: {result.StandardOutput}\nstderr: {result.StandardError}");
        }

        return result;
    }

    /// <summary>
    /// Runs <paramref name="file"/> and returns its result whatever the exit code (used by best-effort cleanup).
    /// Still throws when the command cannot be started or exceeds <see cref="DefaultTimeout"/>.
    /// </summary>
    public static async Task<ShellResult> TryRunAsync(string file, params string[] args)
    {
        var startInfo = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            // ArgumentList passes each argument verbatim: no shell, no quoting or injection issues.
            startInfo.ArgumentList.Add(arg);
        }

        using var process = Process.Start(startInfo)
            ?? throw new InvalidOperationException($"Could not start `{Describe(file, args)}`.");
        using var timeout = new CancellationTokenSource(DefaultTimeout);

        // Both pipes are drained concurrently with the wait: a chatty tool can never block on a full pipe.
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
            return new ShellResult(process.ExitCode, await stdout, await stderr);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`{Describe(file, args)}` did not finish within {DefaultTimeout.TotalSeconds:0} s.");
        }
    }

    /// <summary>
    /// Finds an executable by name on PATH, also looking in the sbin directories, which are often missing
    /// from the PATH of non-login shells and CI runners although ip/iptables live there.
    /// </summary>
    public static string? FindExecutable(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        var directories = path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/sbin", "/sbin"]);
        foreach (var directory in directories)
        {
            var candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>
    /// True if a process with this id exists and is not a zombie (a killed process that its parent has not reaped
    /// yet still has a /proc entry). Used by the stale-resource clean-ups; pid reuse makes it conservative only.
    /// </summary>
    public static bool IsProcessAlive(int pid)
    {
        try
        {
            // /proc/<pid>/stat: "pid (comm) S ..."; comm may contain spaces or ')', so look after the last ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat.AsSpan(stat.LastIndexOf(')') + 1).TrimStart();
            return state.Length > 0 && state[0] is not ('Z' or 'X');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static string Describe(string file, string[] args) => string.Join(' ', [file, .. args]);
}

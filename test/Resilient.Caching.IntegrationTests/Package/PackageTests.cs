using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Package;

/// <summary>
/// The package as users get it: packed (validated, with symbols, README and license, deterministic), installed from
/// a local folder feed into a fresh <c>dotnet new web</c> app as <c>dotnet add package</c> does, built, and run
/// against a real redis-server.
/// </summary>
public sealed class PackageTests
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(4);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task PackedLibrary_InstalledIntoAFreshWebApp_CachesAResponseInRedis()
    {
        var repository = FindRepository();
        CleanUpAfterCrashedRuns();
        var version = $"0.0.0-packagetest.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        var work = Directory.CreateTempSubdirectory($"rctest-package-{Environment.ProcessId}-").FullName;
        try
        {
            // Built twice from nothing: a deterministic build gives the same assembly, byte for byte.
            var library = Path.Combine(repository, "src", "Resilient.Caching", "Resilient.Caching.csproj");
            var feed = Path.Combine(work, "feed");
            var build = Path.Combine(work, "build");
            await PackAsync(library, version, feed, build);
            Directory.Delete(build, recursive: true);
            await PackAsync(library, version, Path.Combine(work, "feed2"), build);
            var package = Path.Combine(feed, $"Resilient.Caching.{version}.nupkg");
            var first = ReadEntries(package);
            var second = ReadEntries(Path.Combine(work, "feed2", $"Resilient.Caching.{version}.nupkg"));
            Assert.Equal(Hash(first["lib/net10.0/Resilient.Caching.dll"]), Hash(second["lib/net10.0/Resilient.Caching.dll"]));

            // What a user sees of it: README, license, XML docs, and a symbols package with the PDB.
            Assert.Contains("README.md", first.Keys);
            Assert.Contains("LICENSE", first.Keys);
            Assert.Contains("lib/net10.0/Resilient.Caching.xml", first.Keys);
            var nuspec = Encoding.UTF8.GetString(first["Resilient.Caching.nuspec"]);
            Assert.Contains("<license type=\"expression\">MIT</license>", nuspec, StringComparison.Ordinal);
            Assert.Contains("<readme>README.md</readme>", nuspec, StringComparison.Ordinal);
            Assert.Contains("id=\"StackExchange.Redis\"", nuspec, StringComparison.Ordinal);
            Assert.Contains("lib/net10.0/Resilient.Caching.pdb", ReadEntries(Path.Combine(feed, $"Resilient.Caching.{version}.snupkg")).Keys);

            // A fresh web app, the package added from the folder feed next to the configured registry.
            var app = Path.Combine(work, "app");
            await DotnetAsync(work, "new", "web", "--name", "PackageSmoke", "--output", app, "--no-restore");
            await File.WriteAllTextAsync(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="local" value="{feed}" />
                  </packageSources>
                </configuration>
                """, Ct);
            await DotnetAsync(app, "add", "package", "Resilient.Caching", "--version", version);
            await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), """
                using Microsoft.Extensions.Caching.Distributed;

                var builder = WebApplication.CreateBuilder(args);
                builder.Services.AddResilientStackExchangeRedisCache(builder.Configuration.GetSection("Redis"));
                var app = builder.Build();
                app.MapGet("/", async (IDistributedCache cache) =>
                {
                    if (await cache.GetStringAsync("smoke") is { } cached)
                    {
                        return "cached " + cached;
                    }

                    var made = Guid.NewGuid().ToString("N");
                    await cache.SetStringAsync("smoke", made);
                    return "fresh " + made;
                });
                app.Run();
                """, Ct);
            await DotnetAsync(app, "build", "-c", "Release", "-nodeReuse:false");

            await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
            var port = FreePort();
            using var process = Start(Path.Combine(app, "bin", "Release", "net10.0", "PackageSmoke.dll"), app, redis.ConnectionString, port);
            try
            {
                using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(10) };
                var fresh = await FirstAnswerAsync(client, process);
                Assert.StartsWith("fresh ", fresh, StringComparison.Ordinal);
                Assert.Equal("cached " + fresh["fresh ".Length..], await client.GetStringAsync("/", Ct));
                Assert.Contains("smoke", await redis.ExecuteAsync("KEYS", "*"), StringComparison.Ordinal);
            }
            finally
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
            var installed = Path.Combine(InstalledVersions, version);
            if (Directory.Exists(installed))
            {
                Directory.Delete(installed, recursive: true);
            }
        }
    }

    private static string InstalledVersions => Path.Combine(
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"),
        "resilient.caching");

    /// <summary>A run that crashed left its folder and its installed test version behind, both named with its process id.</summary>
    private static void CleanUpAfterCrashedRuns()
    {
        static bool OfDeadProcess(string pid) =>
            int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id != Environment.ProcessId && !Shell.IsProcessAlive(id);

        // rctest-package-{pid}-{random}
        foreach (var stale in Directory.EnumerateDirectories(Path.GetTempPath(), "rctest-package-*").Where(d => OfDeadProcess(Path.GetFileName(d).Split('-')[2])))
        {
            Directory.Delete(stale, recursive: true);
        }

        // 0.0.0-packagetest.{time}.{pid}
        if (Directory.Exists(InstalledVersions))
        {
            foreach (var stale in Directory.EnumerateDirectories(InstalledVersions, "0.0.0-packagetest.*").Where(d => OfDeadProcess(Path.GetFileName(d).Split('.')[^1])))
            {
                Directory.Delete(stale, recursive: true);
            }
        }
    }

    private static async Task PackAsync(string project, string version, string output, string build)
    {
        // Outputs of its own, so that the pack neither races with nor disturbs the solution's own build.
        await DotnetAsync(Path.GetDirectoryName(project)!, "pack", project, "-c", "Release", "-o", output, "--no-restore", "-nodeReuse:false",
            $"-p:Version={version}", "-p:ContinuousIntegrationBuild=true",
            $"-p:OutputPath={build}/bin/", $"-p:IntermediateOutputPath={build}/obj/");
    }

    private static async Task<string> FirstAnswerAsync(HttpClient client, Process process)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            Assert.False(process.HasExited, "the app exited before answering");
            try
            {
                return await client.GetStringAsync("/", Ct);
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, Ct);
            }
        }
    }

    private static Process Start(string dll, string directory, string redis, int port)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        Clean(start);
        start.Environment["Redis__Configuration"] = redis;
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task DotnetAsync(string directory, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        Clean(start);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(Ct);
        var error = process.StandardError.ReadToEndAsync(Ct);
        try
        {
            await process.WaitForExitAsync(Ct).WaitAsync(CommandTimeout, Ct);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        Assert.True(process.ExitCode == 0, $"`dotnet {string.Join(' ', args)}` exited with {process.ExitCode}:\n{await output}\n{await error}");
    }

    /// <summary>As a user's shell would run it: none of the test host's MSBuild or runner variables.</summary>
    private static void Clean(ProcessStartInfo start)
    {
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("DOTNET_HOST", StringComparison.OrdinalIgnoreCase) || k.StartsWith("TESTINGPLATFORM", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
    }

    private static Dictionary<string, byte[]> ReadEntries(string package)
    {
        using var zip = ZipFile.OpenRead(package);
        return zip.Entries.ToDictionary(e => e.FullName, e =>
        {
            using var stream = e.Open();
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            return copy.ToArray();
        });
    }

    private static string Hash(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));

    private static string FindRepository()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Resilient.Caching.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("The repository (Resilient.Caching.sln) was not found above " + AppContext.BaseDirectory);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

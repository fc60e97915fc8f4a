using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>
/// redis-server inside its own Linux network namespace, reachable from the host over a veth pair on a private /30
/// (host 10.200.X.1, redis 10.200.X.2:6379). Unlike <see cref="FaultProxy"/>, <see cref="DropTrafficAsync"/> makes
/// the kernel silently drop every packet (iptables DROP in the namespace: no RST, no ICMP), so even new TCP
/// handshakes hang - the real "network partition / firewall drop" case. Linux + root only: call
/// <see cref="SkipIfUnavailable"/> first. Always use with <c>await using</c>: dispose removes the namespace and veth.
/// </summary>
public sealed partial class NetworkNamespaceRedis : IAsyncDisposable
{
    private const string NamePrefix = "rctest-";

    // In-process reservations of 10.200.X.0/30 subnets, so parallel tests never pick the same one.
    private static readonly ConcurrentDictionary<int, byte> ReservedSubnets = new();
    private static readonly ConcurrentDictionary<NetworkNamespaceRedis, byte> Live = new();
    private static readonly Lazy<string?> LazySkipReason = new(ComputeSkipReason);
    private static int s_processExitHooked;
    private static int s_staleCleanupDone;

    // Serialises Drop/Restore/Dispose. Deliberately never disposed (it holds no OS handle) so a second
    // DisposeAsync stays a harmless no-op.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly string _ip;
    private readonly string _iptables;
    private readonly string _suffix;
    private readonly int _subnet;
    private RedisServer? _redis;
    private bool _trafficDropped;
    private bool _disposed;

    private NetworkNamespaceRedis(string ip, string iptables, string suffix, int subnet)
    {
        _ip = ip;
        _iptables = iptables;
        _suffix = suffix;
        _subnet = subnet;

        // The creating pid is part of the name so a later run can tell that this namespace's owner is dead.
        Name = $"{NamePrefix}{Environment.ProcessId}-{suffix}";
    }

    /// <summary>Null when this fixture can run here; otherwise why not.</summary>
    public static string? SkipReason => LazySkipReason.Value;

    /// <summary>Network namespace name, "rctest-&lt;pid&gt;-&lt;random&gt;".</summary>
    public string Name { get; }

    /// <summary>Host-side veth interface ("rcth&lt;random&gt;").</summary>
    public string HostInterface => $"rcth{_suffix}";

    /// <summary>Namespace-side veth interface ("rctn&lt;random&gt;").</summary>
    public string NamespaceInterface => $"rctn{_suffix}";

    /// <summary>Address redis listens on inside the namespace; clients on the host connect here.</summary>
    public string Host => $"10.200.{_subnet}.2";

    /// <summary>Host side of the veth pair.</summary>
    public string HostSideAddress => $"10.200.{_subnet}.1";

    /// <summary>Redis port inside the namespace.</summary>
    public int Port { get; } = 6379;

    /// <summary>StackExchange.Redis configuration string ("10.200.X.2:6379[,password=...]").</summary>
    public string ConnectionString => Redis.ConnectionString;

    /// <summary>The redis process (Kill/Pause/Resume/ExecuteAsync/stats work as on a loopback server).</summary>
    public RedisServer Redis => _redis ?? throw new InvalidOperationException("Not started.");

    /// <summary>Skips the calling test where this fixture cannot run (<see cref="SkipReason"/>).</summary>
    public static void SkipIfUnavailable()
    {
        // Assert.SkipWhen(condition, reason) rejects a null reason even when the condition is false.
        if (SkipReason is { } reason)
        {
            Assert.Skip(reason);
        }
    }

    /// <summary>
    /// Creates the namespace and veth pair and starts redis in it. <paramref name="options"/> may set memory limits,
    /// a password etc.; bind address, port and launcher are set by this fixture.
    /// </summary>
    public static async Task<NetworkNamespaceRedis> StartAsync(RedisServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        if (SkipReason is { } reason)
        {
            throw new InvalidOperationException($"NetworkNamespaceRedis cannot run here: {reason}.");
        }

        var ip = Shell.FindExecutable("ip")!;
        var iptables = Shell.FindExecutable("iptables")!;
        HookProcessExit();
        await CleanUpStaleNamespacesAsync(ip);

        var subnet = await ReserveSubnetAsync(ip);
        var fixture = new NetworkNamespaceRedis(ip, iptables, RandomNumberGenerator.GetHexString(6, lowercase: true), subnet);
        Live[fixture] = 0;
        try
        {
            await fixture.CreateNetworkAsync();
            var redisOptions = (options ?? new RedisServerOptions()) with
            {
                BindAddress = fixture.Host,
                Port = fixture.Port,
                WrapperCommand = [ip, "netns", "exec", fixture.Name],

                // Protected mode would refuse non-loopback clients when no password is set.
                ExtraArgs = [.. options?.ExtraArgs ?? [], "--protected-mode", "no"],
            };
            fixture._redis = new RedisServer(redisOptions);
            await fixture._redis.StartAsync(cancellationToken);
            return fixture;
        }
        catch
        {
            await fixture.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Silently drops all traffic in and out of the namespace (iptables -j DROP on INPUT and OUTPUT inside it):
    /// established connections stall, new connects hang. Idempotent.
    /// </summary>
    public async Task DropTrafficAsync()
    {
        await _gate.WaitAsync();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_trafficDropped)
            {
                await Shell.RunAsync(_ip, "netns", "exec", Name, _iptables, "-w", "-I", "INPUT", "-j", "DROP");
                _trafficDropped = true; // Set before OUTPUT so a failure there still lets Restore remove INPUT.
                await Shell.RunAsync(_ip, "netns", "exec", Name, _iptables, "-w", "-I", "OUTPUT", "-j", "DROP");
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Removes the DROP rules. New connections work at once; stalled ones recover only when TCP retransmits
    /// (exponential back-off), which is what a client sees after a real partition heals. Idempotent.
    /// </summary>
    public async Task RestoreTrafficAsync()
    {
        await _gate.WaitAsync();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_trafficDropped)
            {
                // TryRun: a rule may be missing if DropTrafficAsync failed half-way.
                await Shell.TryRunAsync(_ip, "netns", "exec", Name, _iptables, "-w", "-D", "INPUT", "-j", "DROP");
                await Shell.TryRunAsync(_ip, "netns", "exec", Name, _iptables, "-w", "-D", "OUTPUT", "-j", "DROP");
                _trafficDropped = false;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Kills redis and deletes the veth pair and namespace (with any iptables rules in it). Idempotent, best effort.</summary>
    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (_redis is not null)
            {
                await _redis.DisposeAsync();
            }

            await DeleteNamespaceAsync(_ip, Name, HostInterface);
            ReservedSubnets.TryRemove(_subnet, out _);
            Live.TryRemove(this, out _);
        }
        finally
        {
            _gate.Release();
        }
    }

    private static string? ComputeSkipReason()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "requires Linux";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "requires root (uid 0)";
        }

        if (Shell.FindExecutable("iptables") is null)
        {
            return "iptables not found";
        }

        return Shell.FindExecutable("ip") is null ? "ip (iproute2) not found" : null;
    }

    private async Task CreateNetworkAsync()
    {
        await Shell.RunAsync(_ip, "netns", "add", Name);

        // Creating the peer directly in the namespace avoids a window where it exists on the host.
        await Shell.RunAsync(_ip, "link", "add", HostInterface, "type", "veth", "peer", "name", NamespaceInterface, "netns", Name);
        await Shell.RunAsync(_ip, "addr", "add", $"{HostSideAddress}/30", "dev", HostInterface);
        await Shell.RunAsync(_ip, "link", "set", HostInterface, "up");
        await Shell.RunAsync(_ip, "-n", Name, "addr", "add", $"{Host}/30", "dev", NamespaceInterface);
        await Shell.RunAsync(_ip, "-n", Name, "link", "set", NamespaceInterface, "up");
        await Shell.RunAsync(_ip, "-n", Name, "link", "set", "lo", "up");
    }

    /// <summary>Picks a random 10.200.X.0/30 not configured on any host interface nor reserved by this process.</summary>
    private static async Task<int> ReserveSubnetAsync(string ip)
    {
        var addresses = (await Shell.RunAsync(ip, "-o", "addr")).StandardOutput;
        var used = SubnetRegex().Matches(addresses).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToHashSet();
        var free = Enumerable.Range(0, 256).Where(x => !used.Contains(x) && !ReservedSubnets.ContainsKey(x)).ToList();
        while (free.Count > 0)
        {
            var index = RandomNumberGenerator.GetInt32(free.Count);
            if (ReservedSubnets.TryAdd(free[index], 0))
            {
                return free[index];
            }

            free.RemoveAt(index);
        }

        throw new InvalidOperationException("No free 10.200.X.0/30 subnet is left.");
    }

    private static async Task DeleteNamespaceAsync(string ip, string name, string hostInterface)
    {
        // Anything still running in the namespace (e.g. an orphaned redis after a crash) would keep it alive.
        var pids = await Shell.TryRunAsync(ip, "netns", "pids", name);
        foreach (var line in pids.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(line, out var pid))
            {
                try
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill();
                    process.WaitForExit(TimeSpan.FromSeconds(5));
                }
                catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
                {
                    // Already gone.
                }
            }
        }

        // Deleting the host end removes the pair synchronously; `ip netns del` alone frees the veth only later,
        // asynchronously in the kernel. Failures are fine: the interface or namespace may already be gone.
        await Shell.TryRunAsync(ip, "link", "del", hostInterface);
        await Shell.TryRunAsync(ip, "netns", "del", name);
    }

    /// <summary>
    /// Best effort, once per test process: removes namespaces (and their veth pairs) left by crashed runs, i.e.
    /// "rctest-&lt;pid&gt;-&lt;suffix&gt;" whose creating process no longer exists.
    /// </summary>
    private static async Task CleanUpStaleNamespacesAsync(string ip)
    {
        if (Interlocked.Exchange(ref s_staleCleanupDone, 1) != 0)
        {
            return;
        }

        var list = await Shell.TryRunAsync(ip, "netns", "list");
        foreach (Match match in StaleNameRegex().Matches(list.StandardOutput))
        {
            var owner = int.Parse(match.Groups["pid"].Value, CultureInfo.InvariantCulture);
            if (owner != Environment.ProcessId && !Shell.IsProcessAlive(owner))
            {
                await DeleteNamespaceAsync(ip, match.Value, $"rcth{match.Groups["suffix"].Value}");
            }
        }
    }

    private static void HookProcessExit()
    {
        if (Interlocked.Exchange(ref s_processExitHooked, 1) == 0)
        {
            // Covers runs that end without disposing (e.g. aborted); a hard crash is covered by the stale cleanup.
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                foreach (var fixture in Live.Keys)
                {
                    fixture.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
                }
            };
        }
    }

    [GeneratedRegex(@"\b10\.200\.(\d{1,3})\.\d{1,3}")]
    private static partial Regex SubnetRegex();

    [GeneratedRegex(@"^rctest-(?<pid>\d+)-(?<suffix>[0-9a-f]{6})\b", RegexOptions.Multiline)]
    private static partial Regex StaleNameRegex();
}

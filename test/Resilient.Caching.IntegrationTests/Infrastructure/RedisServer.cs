using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>Settings for one <see cref="RedisServer"/>.</summary>
public sealed record RedisServerOptions
{
    /// <summary>Address redis binds to (<c>--bind</c>) and that clients connect to.</summary>
    public string BindAddress { get; init; } = "127.0.0.1";

    /// <summary>Fixed port, or null to pick a free port on <see cref="BindAddress"/>.</summary>
    public int? Port { get; init; }

    /// <summary><c>maxmemory</c>, e.g. "2mb"; null leaves redis' default (no limit).</summary>
    public string? MaxMemory { get; init; }

    /// <summary><c>maxmemory-policy</c>, e.g. "noeviction" or "allkeys-lru".</summary>
    public string? MaxMemoryPolicy { get; init; }

    /// <summary><c>requirepass</c>; when set, <see cref="RedisServer.ConnectionString"/> and <see cref="RedisServer.ExecuteAsync(string[])"/> authenticate.</summary>
    public string? RequirePass { get; init; }

    /// <summary>Primary host for <c>replicaof</c>; set together with <see cref="ReplicaOfPort"/>.</summary>
    public string? ReplicaOfHost { get; init; }

    /// <summary>Primary port for <c>replicaof</c>.</summary>
    public int? ReplicaOfPort { get; init; }

    /// <summary>
    /// Lines of a configuration file written to the server's directory and passed as the first argument (before the
    /// command-line options), or null for none. Sentinel needs one: it saves its state there.
    /// </summary>
    public IReadOnlyList<string>? ConfigFileLines { get; init; }

    /// <summary>
    /// Persistence in an append-only file (<c>appendonly yes</c>, each write synced to the file): the data survives
    /// <see cref="RedisServer.Kill"/> and <see cref="RedisServer.RestartAsync"/>, as a production Redis restarted by its
    /// supervisor keeps it. Off by default: a restart comes back empty.
    /// </summary>
    public bool AppendOnly { get; init; }

    /// <summary>Further raw arguments appended to the command line, e.g. ["--maxclients", "10"].</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary>
    /// Command prefix that launches redis-server, e.g. ["ip", "netns", "exec", "ns1"]. The prefix must
    /// <c>exec</c> redis-server (as <c>ip netns exec</c> does) so the started process id stays redis' own:
    /// <see cref="RedisServer.Pause"/>/<see cref="RedisServer.Kill"/> signal that pid.
    /// </summary>
    public IReadOnlyList<string> WrapperCommand { get; init; } = [];
}

/// <summary>
/// A real, throw-away <c>redis-server</c> process (no persistence unless <see cref="RedisServerOptions.AppendOnly"/>,
/// own temp dir) that tests can kill,
/// freeze (SIGSTOP), thaw and restart on the same port to produce genuine server-side failures.
/// Always use with <c>await using</c>: dispose kills the process and deletes its directory even when the test fails.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private const string NotInstalledMessage =
        "redis-server was not found on PATH; install it with `apt-get install -y redis-server` (Debian/Ubuntu)";

    private const int SigCont = 18;
    private const int SigStop = 19;
    private const int MaxLogLines = 200;

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(10);

    // Live servers, so a test run that exits without disposing (e.g. aborted) still kills its redis processes.
    private static readonly ConcurrentDictionary<RedisServer, byte> LiveServers = new();
    private static int s_processExitHooked;
    private static int s_staleCleanupDone;

    private readonly RedisServerOptions _options;
    private readonly ConcurrentQueue<string> _log = new();
    private Process? _process;
    private string? _directory;
    private string? _executable;
    private bool _disposed;

    /// <summary>Creates the fixture; nothing runs until <see cref="StartAsync"/>.</summary>
    public RedisServer(RedisServerOptions? options = null) => _options = options ?? new RedisServerOptions();

    /// <summary>Host clients connect to.</summary>
    public string Host => _options.BindAddress is "0.0.0.0" or "*" ? "127.0.0.1" : _options.BindAddress;

    /// <summary>Port redis listens on (valid after <see cref="StartAsync"/>; stays the same across <see cref="RestartAsync"/>).</summary>
    public int Port { get; private set; }

    /// <summary>StackExchange.Redis configuration string, e.g. "127.0.0.1:6379" or "127.0.0.1:6379,password=x".</summary>
    public string ConnectionString =>
        _options.RequirePass is null ? $"{Host}:{Port}" : $"{Host}:{Port},password={_options.RequirePass}";

    /// <summary>Process id of the running redis-server, or null when not running.</summary>
    public int? ProcessId => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>Reply time-out used by <see cref="ExecuteAsync(string[])"/>.</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The last lines redis printed (stdout and stderr), for diagnosing failures.</summary>
    public string RecentOutput => string.Join('\n', _log);

    /// <summary>Convenience: creates and starts a server.</summary>
    public static async Task<RedisServer> StartNewAsync(RedisServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        var server = new RedisServer(options);
        try
        {
            await server.StartAsync(cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Starts redis-server and returns once it answers PING (deadline 10 s) and INFO confirms that the answering
    /// server is this process (not another one already holding the port).
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_process is not null)
        {
            throw new InvalidOperationException("The server was already started; use RestartAsync.");
        }

        // Resolved to a full path so it also works behind a wrapper such as `ip netns exec`.
        _executable ??= Shell.FindExecutable("redis-server") ?? throw new InvalidOperationException(NotInstalledMessage);

        HookProcessExit();
        CleanUpStaleServers();

        // The pid in the name lets a later run recognise (and clean up after) a crashed one.
        _directory ??= Directory.CreateTempSubdirectory($"rctest-redis-{Environment.ProcessId}-").FullName;
        if (_options.ConfigFileLines is { } lines)
        {
            await File.WriteAllLinesAsync(ConfigFilePath, lines, cancellationToken);
        }

        if (_options.Port is { } fixedPort)
        {
            Port = fixedPort;
            await LaunchRetryingBindAsync(cancellationToken);
            return;
        }

        // A port found free can be taken by someone else before redis binds it, so retry with a new one.
        const int attempts = 5;
        for (var attempt = 1; ; attempt++)
        {
            Port = FindFreePort(_options.BindAddress);
            if (await LaunchAsync(cancellationToken) || attempt == attempts)
            {
                EnsureStarted();
                return;
            }
        }
    }

    /// <summary>Kills the process with SIGKILL (no shutdown, like a crash or OOM kill) and waits until it is gone.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(); // SIGKILL on Unix.
            process.WaitForExit();
        }
    }

    /// <summary>
    /// Freezes the process (SIGSTOP). The kernel still completes TCP handshakes and buffers requests, but nothing is
    /// answered: the classic "server hangs" failure. Undo with <see cref="Resume"/>.
    /// </summary>
    public void Pause() => Signal(SigStop);

    /// <summary>Continues a paused process (SIGCONT); buffered requests are then answered.</summary>
    public void Resume() => Signal(SigCont);

    /// <summary>
    /// Starts redis again on the same port (killing it first if it still runs), in the same directory. Data is gone,
    /// as after a crash without persistence, unless <see cref="RedisServerOptions.AppendOnly"/> is set (the server then
    /// loads its append-only file before it answers PING). Bind failures are retried for a few seconds in case the port
    /// is briefly unavailable.
    /// </summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_process is null)
        {
            throw new InvalidOperationException("The server was never started.");
        }

        Kill();
        _process.Dispose();
        _process = null;
        await LaunchRetryingBindAsync(cancellationToken);
    }

    /// <summary>
    /// Sends one command on a fresh connection (authenticating first when a password is set) and returns the raw RESP
    /// reply, e.g. "+OK\r\n" or "$1234\r\n# Commandstats\r\n...". Error replies are returned, not thrown.
    /// </summary>
    public Task<string> ExecuteAsync(params string[] args) => ExecuteAsync(CommandTimeout, args);

    /// <summary>As <see cref="ExecuteAsync(string[])"/> with an explicit reply time-out (e.g. for DEBUG SLEEP).</summary>
    public async Task<string> ExecuteAsync(TimeSpan timeout, params string[] args)
    {
        using var connection = await RespConnection.ConnectAsync(Host, Port, TimeSpan.FromSeconds(5));
        if (_options.RequirePass is { } password)
        {
            var auth = await connection.ExecuteAsync(["AUTH", password], TimeSpan.FromSeconds(5));
            if (!auth.StartsWith("+OK", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"AUTH failed: {auth}");
            }
        }

        return await connection.ExecuteAsync(args, timeout);
    }

    /// <summary>
    /// Calls per command from <c>INFO commandstats</c>, keyed by lower-case command name ("hget", "config|set", ...).
    /// The fixture's own commands (auth, info, config|resetstat) may appear too.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, long>> GetCommandCallsAsync()
    {
        var reply = await ExecuteAsync("INFO", "commandstats");
        var calls = new Dictionary<string, long>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in reply.Split("\r\n"))
        {
            // Format: cmdstat_hget:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0
            const string prefix = "cmdstat_";
            const string callsKey = ":calls=";
            var colon = line.IndexOf(callsKey, StringComparison.Ordinal);
            if (!line.StartsWith(prefix, StringComparison.Ordinal) || colon < 0)
            {
                continue;
            }

            var valueStart = colon + callsKey.Length;
            var comma = line.IndexOf(',', valueStart);
            var value = comma < 0 ? line[valueStart..] : line[valueStart..comma];
            calls[line[prefix.Length..colon].ToLowerInvariant()] = long.Parse(value, CultureInfo.InvariantCulture);
        }

        return calls;
    }

    /// <summary>Resets INFO statistics (CONFIG RESETSTAT), e.g. before counting the commands a test causes.</summary>
    public async Task ResetStatsAsync()
    {
        var reply = await ExecuteAsync("CONFIG", "RESETSTAT");
        if (!reply.StartsWith("+OK", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"CONFIG RESETSTAT failed: {reply}");
        }
    }

    /// <summary>Kills the process (whatever state it is in) and deletes its directory. Idempotent.</summary>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    // Everything here is synchronous (SIGKILL + wait is quick), which also lets the ProcessExit hook use it.
    private void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        LiveServers.TryRemove(this, out _);
        try
        {
            Kill();
        }
        catch (InvalidOperationException)
        {
            // The process already exited and was reaped between the check and the kill.
        }

        _process?.Dispose();
        _process = null;
        if (_directory is not null)
        {
            TryDeleteDirectory(_directory);
        }
    }

    // kill(2): .NET has no API to send SIGSTOP/SIGCONT.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    private string ConfigFilePath => Path.Combine(_directory!, "redis.conf");

    /// <summary>A port that was free on <paramref name="bindAddress"/> a moment ago (it can be taken before it is used).</summary>
    internal static int FindFreePort(string bindAddress)
    {
        // Binding to port 0 lets the kernel choose a free port; we release it right away for redis to take.
        // Another process could grab it in between, which StartAsync handles by retrying.
        for (var attempt = 1; ; attempt++)
        {
            var listener = new TcpListener(IPAddress.Parse(bindAddress), 0);
            try
            {
                listener.Start();
                return ((IPEndPoint)listener.LocalEndpoint).Port;
            }
            catch (SocketException) when (attempt < 5)
            {
            }
            finally
            {
                listener.Stop();
            }
        }
    }

    private void Signal(int signal)
    {
        var pid = ProcessId ?? throw new InvalidOperationException("redis-server is not running.");
        if (SendSignal(pid, signal) != 0)
        {
            throw new InvalidOperationException($"kill({pid}, {signal}) failed with errno {Marshal.GetLastPInvokeError()}.");
        }
    }

    private async Task LaunchRetryingBindAsync(CancellationToken cancellationToken)
    {
        // redis sets SO_REUSEADDR, so TIME_WAIT normally does not block the bind; this covers the remaining
        // short window (e.g. a killed process whose socket the kernel has not released yet).
        var deadline = Stopwatch.StartNew();
        while (!await LaunchAsync(cancellationToken) && deadline.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(100, cancellationToken);
        }

        EnsureStarted();
    }

    private void EnsureStarted()
    {
        if (_process is not { HasExited: false })
        {
            throw new InvalidOperationException($"redis-server could not bind {Host}:{Port}.\n{RecentOutput}");
        }
    }

    /// <summary>Starts the process; true once it answers PING, false if it exited because the port was taken.</summary>
    private async Task<bool> LaunchAsync(CancellationToken cancellationToken)
    {
        _process?.Dispose();
        _process = null;
        _log.Clear();

        // A restart reuses the file as the server left it (Sentinel rewrites it with what it learnt).
        string[] command = _options.ConfigFileLines is null
            ? [.. _options.WrapperCommand, _executable!]
            : [.. _options.WrapperCommand, _executable!, ConfigFilePath];
        var startInfo = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in command.Skip(1).Concat(BuildArguments()))
        {
            startInfo.ArgumentList.Add(arg);
        }

        var process = new Process { StartInfo = startInfo };
        process.OutputDataReceived += (_, e) => AppendLog(e.Data);
        process.ErrorDataReceived += (_, e) => AppendLog(e.Data);
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            process.Dispose();
            throw new InvalidOperationException($"Could not start {command[0]}: {ex.Message}", ex);
        }

        _process = process;
        LiveServers[this] = 0;

        // Drain both pipes asynchronously so redis can never block writing its log.
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                process.WaitForExit(); // Flushes the remaining output into the log.
                if (RecentOutput.Contains("Address already in use", StringComparison.Ordinal))
                {
                    return false;
                }

                throw new InvalidOperationException(
                    $"redis-server exited with code {process.ExitCode} during start-up.\n{RecentOutput}");
            }

            // The PING could come from another server that already holds the port (ours then fails to bind and
            // exits), so readiness also requires that the answering server is our process.
            if (await AnswersPingAsync(cancellationToken) && await IsServedByAsync(process.Id))
            {
                return true;
            }

            if (deadline.Elapsed > ReadyTimeout)
            {
                Kill();
                throw new TimeoutException(
                    $"redis-server did not answer PING on {Host}:{Port} within {ReadyTimeout.TotalSeconds:0} s.\n{RecentOutput}");
            }

            // Polling interval while redis initialises (usually a few ms); readiness itself is the PING reply.
            await Task.Delay(20, cancellationToken);
        }
    }

    private async Task<bool> AnswersPingAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var connection = await RespConnection.ConnectAsync(Host, Port, TimeSpan.FromSeconds(1), cancellationToken);
            var reply = await connection.ExecuteAsync(["PING"], TimeSpan.FromSeconds(1), cancellationToken);

            // -NOAUTH: alive but protected by requirepass, which is ready enough.
            return reply.StartsWith("+PONG", StringComparison.Ordinal) || reply.StartsWith("-NOAUTH", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is SocketException or TimeoutException or IOException)
        {
            return false;
        }
    }

    private async Task<bool> IsServedByAsync(int pid)
    {
        try
        {
            var info = await ExecuteAsync(TimeSpan.FromSeconds(1), "INFO", "server");
            return info.Contains($"\r\nprocess_id:{pid}\r\n", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is SocketException or TimeoutException or IOException or InvalidOperationException)
        {
            return false; // E.g. a foreign server with another password.
        }
    }

    private List<string> BuildArguments()
    {
        List<string> args =
        [
            "--port", Port.ToString(CultureInfo.InvariantCulture),
            "--bind", _options.BindAddress,
            "--save", string.Empty, // No RDB snapshots: a restart comes back empty (unless AppendOnly), and no disk I/O.
            "--appendonly", _options.AppendOnly ? "yes" : "no",
            "--daemonize", "no", // Stay our child so we can signal and kill it.
            "--dir", _directory!,
            "--enable-debug-command", "yes", // DEBUG SLEEP etc.; redis 7 disables DEBUG by default.
        ];
        if (_options.AppendOnly)
        {
            // Every write in the file before it is answered: a SIGKILL right after a write loses nothing.
            args.AddRange(["--appendfsync", "always"]);
        }

        if (_options.MaxMemory is { } maxMemory)
        {
            args.AddRange(["--maxmemory", maxMemory]);
        }

        if (_options.MaxMemoryPolicy is { } policy)
        {
            args.AddRange(["--maxmemory-policy", policy]);
        }

        if (_options.RequirePass is { } password)
        {
            args.AddRange(["--requirepass", password]);
        }

        if (_options.ReplicaOfHost is { } primaryHost)
        {
            var primaryPort = _options.ReplicaOfPort ?? throw new InvalidOperationException("ReplicaOfPort is required with ReplicaOfHost.");
            args.AddRange(["--replicaof", primaryHost, primaryPort.ToString(CultureInfo.InvariantCulture)]);
        }

        args.AddRange(_options.ExtraArgs);
        return args;
    }

    private void AppendLog(string? line)
    {
        if (line is null)
        {
            return;
        }

        _log.Enqueue(line);
        while (_log.Count > MaxLogLines && _log.TryDequeue(out _))
        {
        }
    }

    private static void HookProcessExit()
    {
        if (Interlocked.Exchange(ref s_processExitHooked, 1) == 0)
        {
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                foreach (var server in LiveServers.Keys)
                {
                    server.Dispose();
                }
            };
        }
    }

    /// <summary>
    /// Best effort, once per test process: kills redis-servers left behind by crashed earlier runs and removes their
    /// directories. They are recognised by their working directory (redis chdirs to --dir), whose name carries the
    /// pid of the test process that created it; only those whose creator is no longer alive are touched.
    /// </summary>
    private static void CleanUpStaleServers()
    {
        if (Interlocked.Exchange(ref s_staleCleanupDone, 1) != 0 || !OperatingSystem.IsLinux())
        {
            return;
        }

        var tempRoot = Path.GetTempPath();
        try
        {
            foreach (var procDir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(procDir), out var pid))
                {
                    continue;
                }

                try
                {
                    var cwd = new DirectoryInfo(Path.Combine(procDir, "cwd")).LinkTarget;
                    if (cwd is not null && IsStale(Path.GetFileName(cwd.Replace(" (deleted)", string.Empty, StringComparison.Ordinal))))
                    {
                        using var orphan = Process.GetProcessById(pid);
                        orphan.Kill();
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
                {
                    // Process vanished or is not ours to inspect.
                }
            }

            foreach (var directory in Directory.EnumerateDirectories(tempRoot, "rctest-redis-*"))
            {
                if (IsStale(Path.GetFileName(directory)))
                {
                    TryDeleteDirectory(directory);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        static bool IsStale(string name)
        {
            // rctest-redis-<pid>-<random>
            var parts = name.Split('-');
            return parts.Length == 4 && parts[0] == "rctest" && parts[1] == "redis"
                && int.TryParse(parts[2], out var owner) && owner != Environment.ProcessId
                && !Shell.IsProcessAlive(owner);
        }
    }

    private static void TryDeleteDirectory(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: a leftover empty temp directory is harmless.
        }
    }
}

using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>What <see cref="FaultProxy"/> does with traffic; switch at run time with <see cref="FaultProxy.SetMode"/>.</summary>
public sealed record FaultMode
{
    private FaultMode(string name, TimeSpan delay)
    {
        Name = name;
        Delay = delay;
    }

    /// <summary>Forward everything unchanged.</summary>
    public static FaultMode PassThrough { get; } = new(nameof(PassThrough), TimeSpan.Zero);

    /// <summary>
    /// Silent drop: existing connections stop forwarding in both directions but stay open; new connections are
    /// accepted but never connected upstream. Nothing is ever answered, closed or reset.
    /// </summary>
    public static FaultMode Blackhole { get; } = new(nameof(Blackhole), TimeSpan.Zero);

    /// <summary>Existing connections are reset (RST) when this mode is set; new connections are reset on accept.</summary>
    public static FaultMode Reset { get; } = new(nameof(Reset), TimeSpan.Zero);

    /// <summary>Name of the mode, for test output.</summary>
    public string Name { get; }

    /// <summary>Delay added before forwarding each chunk (only for <see cref="Latency"/>).</summary>
    public TimeSpan Delay { get; }

    /// <summary>Forward everything, but delay every forwarded chunk (in each direction) by <paramref name="delay"/>.</summary>
    public static FaultMode Latency(TimeSpan delay) => new(nameof(Latency), delay);

    /// <inheritdoc />
    public override string ToString() => Delay > TimeSpan.Zero ? $"{Name}({Delay.TotalMilliseconds:0} ms)" : Name;
}

/// <summary>
/// In-process TCP proxy on 127.0.0.1 that sits between the client under test and redis and injects network faults
/// without root: silent drops (<see cref="FaultMode.Blackhole"/>), resets and latency. Point the client at
/// <see cref="Host"/>:<see cref="Port"/>.
/// <para>
/// Blackhole semantics: switching to Blackhole freezes the existing connections for good. Switching back to
/// PassThrough does NOT revive them - like connections whose packets a firewall dropped for a while, they stay
/// open but dead, and the client must detect that itself (time-outs, keep-alive) and reconnect; only connections
/// accepted afterwards forward again. Unlike a real firewall drop, the TCP handshake of a new connection still
/// succeeds here (the kernel accepts it on the proxy's listener); use <see cref="NetworkNamespaceRedis"/> where the
/// connect itself must hang.
/// </para>
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private const int BufferSize = 16 * 1024;
    private static readonly TimeSpan UpstreamConnectTimeout = TimeSpan.FromSeconds(5);

    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _disposing = new();
    private readonly ConcurrentDictionary<long, ProxyConnection> _connections = new();
    private readonly ConcurrentDictionary<Task, byte> _connectionTasks = new();
    private readonly Lock _modeLock = new();
    private readonly Task _acceptLoop;
    private FaultMode _mode = FaultMode.PassThrough;
    private long _nextId;
    private long _bytesToServer;
    private long _bytesToClient;
    private long _connectionsAccepted;
    private int _disposed;

    /// <summary>Starts listening on a free port of 127.0.0.1 and forwarding to <paramref name="targetHost"/>:<paramref name="targetPort"/>.</summary>
    public FaultProxy(string targetHost, int targetPort)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(128);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>Address clients connect to.</summary>
    public string Host { get; } = "127.0.0.1";

    /// <summary>Port clients connect to.</summary>
    public int Port { get; }

    /// <summary>"127.0.0.1:PORT", for StackExchange.Redis.</summary>
    public string ConnectionString => $"{Host}:{Port}";

    /// <summary>Current mode.</summary>
    public FaultMode Mode
    {
        get
        {
            lock (_modeLock)
            {
                return _mode;
            }
        }
    }

    /// <summary>Bytes forwarded client → server.</summary>
    public long BytesToServer => Interlocked.Read(ref _bytesToServer);

    /// <summary>Bytes forwarded server → client.</summary>
    public long BytesToClient => Interlocked.Read(ref _bytesToClient);

    /// <summary>Client connections accepted so far, in any mode.</summary>
    public long ConnectionsAccepted => Interlocked.Read(ref _connectionsAccepted);

    /// <summary>Client connections currently open (forwarding or blackholed).</summary>
    public int ActiveConnections => _connections.Count;

    /// <summary>
    /// Switches mode. Blackhole freezes existing connections (permanently, see the class remarks); Reset resets
    /// them; PassThrough/Latency apply to every still-forwarding connection from its next chunk on.
    /// </summary>
    public void SetMode(FaultMode mode)
    {
        ArgumentNullException.ThrowIfNull(mode);
        List<ProxyConnection> affected;
        lock (_modeLock)
        {
            _mode = mode;
            affected = [.. _connections.Values];

            // Under the lock, so a connection being accepted concurrently sees either the old mode (and is in
            // 'affected') or the new one.
            if (mode == FaultMode.Blackhole)
            {
                foreach (var connection in affected)
                {
                    connection.Freeze();
                }
            }
        }

        if (mode == FaultMode.Reset)
        {
            foreach (var connection in affected)
            {
                Abort(connection);
            }
        }
    }

    /// <summary>Resets (RST) every currently open connection, whatever the mode; new connections are unaffected.</summary>
    public void ResetAllConnections()
    {
        foreach (var connection in _connections.Values)
        {
            Abort(connection);
        }
    }

    /// <summary>Stops listening, closes every connection and waits for all forwarding loops to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _disposing.CancelAsync();
        _listener.Dispose();
        foreach (var connection in _connections.Values)
        {
            Abort(connection);
        }

        await Task.WhenAll([_acceptLoop, .. _connectionTasks.Keys]).WaitAsync(TimeSpan.FromSeconds(10));
        _disposing.Dispose();
    }

    /// <summary>RST instead of FIN: linger on with a zero timeout makes close() send a reset.</summary>
    private static void ResetSocket(Socket? socket)
    {
        if (socket is null)
        {
            return;
        }

        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed: nothing to reset.
        }

        socket.Dispose();
    }

    private void Abort(ProxyConnection connection)
    {
        _connections.TryRemove(connection.Id, out _);
        connection.Freeze(); // Stops the pumps before their sockets go away.
        ResetSocket(connection.Client);
        ResetSocket(connection.Upstream);
    }

    private async Task AcceptLoopAsync()
    {
        // Ends when DisposeAsync cancels the token / disposes the listener.
        while (!_disposing.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_disposing.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_disposing.IsCancellationRequested)
                {
                    return;
                }

                continue; // E.g. a client that reset before accept completed.
            }

            Interlocked.Increment(ref _connectionsAccepted);
            client.NoDelay = true;
            var connection = new ProxyConnection(Interlocked.Increment(ref _nextId), client, _disposing.Token);
            FaultMode mode;
            lock (_modeLock)
            {
                mode = _mode;
                if (mode == FaultMode.Blackhole)
                {
                    connection.Freeze();
                }

                if (mode != FaultMode.Reset)
                {
                    _connections[connection.Id] = connection;
                }
            }

            if (mode == FaultMode.Reset)
            {
                ResetSocket(client);
            }
            else if (mode != FaultMode.Blackhole)
            {
                // Blackholed connections just sit in _connections, open and unread, until dispose or a reset.
                var task = HandleConnectionAsync(connection);
                _connectionTasks[task] = 0;
                _ = task.ContinueWith(t => _connectionTasks.TryRemove(t, out _), TaskScheduler.Default);
            }
        }
    }

    private async Task HandleConnectionAsync(ProxyConnection connection)
    {
        var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        connection.Upstream = upstream;
        try
        {
            using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(connection.Forwarding))
            {
                connectTimeout.CancelAfter(UpstreamConnectTimeout);
                await upstream.ConnectAsync(_targetHost, _targetPort, connectTimeout.Token);
            }

            await Task.WhenAll(
                PumpAsync(connection, connection.Client, upstream, toServer: true),
                PumpAsync(connection, upstream, connection.Client, toServer: false));
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Frozen, reset, disposed or upstream unreachable: handled below.
        }

        if (connection.IsFrozen && !_disposing.IsCancellationRequested && _connections.ContainsKey(connection.Id))
        {
            // Blackholed: leave the client socket open and silent; only drop our upstream side.
            upstream.Dispose();
            return;
        }

        if (_connections.TryRemove(connection.Id, out _))
        {
            // The connection ended on its own (both directions closed, upstream unreachable or a socket error).
            // Any error means the byte stream is broken, so the safe equivalent for the client is a reset; after a
            // clean close of both directions the reset is harmless.
            connection.Freeze();
            ResetSocket(connection.Client);
        }

        // Always, also when Abort ran before Upstream was assigned.
        ResetSocket(upstream);
    }

    private async Task PumpAsync(ProxyConnection connection, Socket source, Socket destination, bool toServer)
    {
        var buffer = new byte[BufferSize];
        var token = connection.Forwarding;
        try
        {
            while (true)
            {
                var read = await source.ReceiveAsync(buffer.AsMemory(), SocketFlags.None, token);
                if (read == 0)
                {
                    // Half-close: pass the FIN on and let the other direction finish.
                    destination.Shutdown(SocketShutdown.Send);
                    return;
                }

                var delay = Mode.Delay;
                if (delay > TimeSpan.Zero)
                {
                    await Task.Delay(delay, token);
                }

                // Counted before sending, so a test that has just received the bytes always sees them counted.
                Interlocked.Add(ref toServer ? ref _bytesToServer : ref _bytesToClient, read);

                // Data read just before a freeze is dropped (the token is checked by SendAsync), like packets
                // in flight when a firewall rule goes up.
                var sent = 0;
                while (sent < read)
                {
                    sent += await destination.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None, token);
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException && !token.IsCancellationRequested)
        {
            // One side broke: abort the whole connection so the other pump ends too.
            if (_connections.TryRemove(connection.Id, out _))
            {
                connection.Freeze();
                ResetSocket(connection.Client);
                ResetSocket(connection.Upstream);
            }
        }
    }

    private sealed class ProxyConnection(long id, Socket client, CancellationToken disposing)
    {
        // Cancelled to freeze (blackhole) or tear down the connection; linked to the proxy's dispose token.
        private readonly CancellationTokenSource _forwarding = CancellationTokenSource.CreateLinkedTokenSource(disposing);

        public long Id { get; } = id;

        public Socket Client { get; } = client;

        public Socket? Upstream { get; set; }

        public CancellationToken Forwarding => _forwarding.Token;

        public bool IsFrozen => _forwarding.IsCancellationRequested;

        // Cancelling pending socket operations leaves the sockets open, which is exactly the blackhole behaviour.
        public void Freeze()
        {
            try
            {
                _forwarding.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }
}

using Resilient.Caching.Outages;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Resilient.Caching.Connection;

/// <summary>What a waiter learns without waiting: a refused port, refused credentials, a connection made in the background.</summary>
internal sealed partial class RedisConnection
{
    /// <summary>
    /// The client keeps the reason a connect failed (refused credentials, for one) for the commands it then refuses:
    /// ask it with a PING that fails at once (the backlog is fail-fast), so a waiter can say why.
    /// </summary>
    private void NoteWhyNotConnected(IConnectionMultiplexer multiplexer)
    {
        if (Volatile.Read(ref _connectFailure) is not null)
        {
            return;
        }

        _ = multiplexer.GetDatabase().PingAsync().ContinueWith(
            static (task, state) =>
            {
                if (task.Exception?.InnerException is { } exception)
                {
                    var connection = (RedisConnection)state!;
                    Volatile.Write(ref connection._connectFailure, exception);
                    if (RedisErrorClassifier.Classify(exception) == RedisFailureKind.Authentication)
                    {
                        // The client raises no event for credentials refused while connecting: reported from here.
                        connection.CredentialsRejected?.Invoke(exception);
                    }
                }
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>
    /// Whether anything listens on the one endpoint (a single server): a refused TCP connect is known in a round trip,
    /// while the client's own connect may take its whole connect timeout to give up. At most once per reconnect
    /// interval, and only while nothing is connected; a refusal ends every wait at once (<see cref="RefusedAlready"/>).
    /// </summary>
    private async Task CheckRefusedAsync()
    {
        var last = Volatile.Read(ref _refusalCheckedAt);
        var now = _timeProvider.GetTimestamp();
        if (_configuration is not { EndPoints.Count: 1 } || _configuration.EndPoints[0] is not (IPEndPoint or DnsEndPoint)
            || (last != 0 && _timeProvider.GetElapsedTime(last, now) < ConnectionSettings.ReconnectInterval)
            || Interlocked.CompareExchange(ref _refusalCheckedAt, now, last) != last)
        {
            return;
        }

        try
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(_configuration.ConnectTimeout), _timeProvider);
            await socket.ConnectAsync(_configuration.EndPoints[0], timeout.Token).ConfigureAwait(false);

            // Listening again: a refusal noted earlier no longer ends anyone's wait for the client's own reconnect.
            if (Volatile.Read(ref _connectFailure) is { } earlier && IsRefusal(earlier))
            {
                Interlocked.CompareExchange(ref _connectFailure, null, earlier);
            }
        }
        catch (SocketException refused) when (refused.SocketErrorCode == SocketError.ConnectionRefused)
        {
            if (!IsReady)
            {
                Volatile.Write(ref _connectFailure, new RedisConnectionException(
                    ConnectionFailureType.UnableToConnect, CommandFlags.None, $"UnableToConnect: ConnectionRefused on {ShardMapFormat(_configuration.EndPoints[0])}", refused, CommandStatus.Unknown));
            }
        }
        catch (Exception unknown) when (unknown is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Listening, unreachable or slow: the client's own connect decides.
        }
    }

    private static string ShardMapFormat(EndPoint endPoint) => Topology.ShardMap.Format(endPoint);

    /// <summary>
    /// Until a multiplexer that is not connected yet connects (in the background, nobody waiting), looks every half
    /// second whether it has: the client does not always say so (a first connection is no "restored" one). Ends when it
    /// connects, or is replaced or shut down.
    /// </summary>
    private async Task WatchUntilConnectedAsync(Task<IConnectionMultiplexer> connecting)
    {
        try
        {
            // The client's own connect may hang for its whole connect timeout although the port started answering
            // meanwhile (a server restarted): that attempt is given up for a fresh one as soon as the port answers.
            while (!connecting.IsCompleted)
            {
                await Task.WhenAny(connecting, Task.Delay(ConnectionSettings.ReconnectInterval, _timeProvider)).ConfigureAwait(false);
                if (!connecting.IsCompleted && IsStillConnecting(connecting) && await PortAnswersAsync().ConfigureAwait(false) && IsStillConnecting(connecting))
                {
                    Reset(connectAgain: true);
                    return;
                }
            }

            var multiplexer = await connecting.ConfigureAwait(false);
            while (IsStillConnecting(connecting))
            {
                if (multiplexer.IsConnected)
                {
                    OnConnectionRestored(multiplexer);
                    return;
                }

                await Task.Delay(ConnectionSettings.ReconnectInterval, _timeProvider).ConfigureAwait(false);
            }
        }
        catch (Exception exception) when (exception is RedisException or ObjectDisposedException or SocketException or IOException or OperationCanceledException)
        {
            // The connect failed for good (a waiter sees it), or the multiplexer was closed.
        }
    }

    private bool IsStillConnecting(Task<IConnectionMultiplexer> connecting) =>
        ReferenceEquals(Volatile.Read(ref _current), connecting) && !ReferenceEquals(Volatile.Read(ref _ready), connecting) && !Volatile.Read(ref _disposed);

    /// <summary>Whether the one endpoint (a single server) accepts a TCP connection now; false when there is more than one, or it does not.</summary>
    private async Task<bool> PortAnswersAsync()
    {
        if (!IsOwned || _configuration is not { EndPoints.Count: 1 } || _configuration.EndPoints[0] is not (IPEndPoint or DnsEndPoint))
        {
            return false;
        }

        try
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            using var timeout = new CancellationTokenSource(ConnectionSettings.ReconnectInterval, _timeProvider);
            await socket.ConnectAsync(_configuration.EndPoints[0], timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception unknown) when (unknown is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Credentials refused while a connect is under way: waiters stop waiting, and it is reported (event 7), once per connect.</summary>
    private void OnCredentialsRefusedWhileConnecting(string reply)
    {
        if (IsReady || Volatile.Read(ref _disposed))
        {
            return;
        }

        var refused = new RedisConnectionException(
            ConnectionFailureType.AuthenticationFailure, CommandFlags.None, $"{reply}: the Redis server refused the credentials while connecting.", null, CommandStatus.Unknown);
        Volatile.Write(ref _connectFailure, refused);
        CredentialsRejected?.Invoke(refused);
    }

    /// <summary>
    /// The client's connect log, read for one thing: the server refusing the credentials. The client raises no event
    /// for that while connecting, and its connect may take its whole connect timeout to return. Nothing is kept or
    /// written anywhere.
    /// </summary>
    private sealed class ConnectLog(RedisConnection connection) : TextWriter
    {
        private int _reported;

        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

        public override void Write(char value)
        {
        }

        public override void WriteLine(string? value)
        {
            // Only the reply's name is kept: the line itself is never repeated (it may name the configuration).
            var reply = value is null ? null
                : value.Contains("WRONGPASS", StringComparison.Ordinal) ? "WRONGPASS"
                : value.Contains("NOAUTH", StringComparison.Ordinal) ? "NOAUTH"
                : value.Contains(nameof(ConnectionFailureType.AuthenticationFailure), StringComparison.Ordinal) ? "NOAUTH or WRONGPASS (AuthenticationFailure)"
                : null;
            if (reply is not null && Interlocked.Exchange(ref _reported, 1) == 0)
            {
                connection.OnCredentialsRefusedWhileConnecting(reply);
            }
        }
    }

    /// <summary>
    /// The client notices a cluster failover only when it reads the topology again, which it does on its own schedule:
    /// when a connection drops, after a few refused reconnects, when a periodic check happens to see a role change, or
    /// when the old primary answers again. Until then it routes the shard's slots to the old primary, dead or not. Here
    /// each replica is asked its role (<c>ROLE</c>, which the client sends to a replica; it refuses to send it a write):
    /// one that says it is a primary now was promoted. Then the client reads the topology again at once (its slot map
    /// moves to the new primary; the events it raises meanwhile reach <see cref="TopologyChanged"/>), and the change is
    /// reported once more when that read ends. The probe that follows, through the client's routing, checks that the
    /// new primary takes writes.
    /// </summary>
    public async Task<bool> TakenOverAsync(TimeSpan budget, IReadOnlyList<EndPoint> replicas)
    {
        if (Volatile.Read(ref _ready) is not { IsCompletedSuccessfully: true } ready)
        {
            return false;
        }

        var multiplexer = ready.Result;
        foreach (var endPoint in replicas)
        {
            IServer server;
            try
            {
                server = multiplexer.GetServer(endPoint);
            }
            catch (Exception unknown) when (unknown is ArgumentException or ObjectDisposedException)
            {
                continue;
            }

            if (!server.IsConnected)
            {
                continue;
            }

            var asked = server.RoleAsync();
            try
            {
                if (await asked.WaitAsync(budget, _timeProvider).ConfigureAwait(false) is not Role.Master)
                {
                    continue;
                }
            }
            catch (Exception unanswered) when (unanswered is RedisException or TimeoutException or ObjectDisposedException)
            {
                // Says nothing about a promotion.
                _ = asked.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                continue;
            }

            _ = multiplexer.ConfigureAsync().ContinueWith(
                (read, state) =>
                {
                    _ = read.Exception;
                    OnTopologyChanged((IConnectionMultiplexer)state!);
                },
                multiplexer,
                CancellationToken.None,
                TaskContinuationOptions.None,
                TaskScheduler.Default);
            return true;
        }

        return false;
    }
}

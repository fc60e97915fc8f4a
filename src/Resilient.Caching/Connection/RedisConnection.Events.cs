using Resilient.Caching.Outages;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Resilient.Caching.Connection;

/// <summary>The client's events: what they tell the rest of the cache, and what a waiter learns from them at once.</summary>
internal sealed partial class RedisConnection
{
    /// <summary>
    /// A connected multiplexer is handed out for the first time, or its client reports a change of topology (a
    /// failover seen, a server's role changed, a slot moved, a connection restored). Raised on the client's threads.
    /// </summary>
    public event Action<IConnectionMultiplexer>? TopologyChanged;

    /// <summary>
    /// The client lost its connection to a primary (closed, reset, refused): raised at once, before any command to it
    /// times out. Replicas' connections and subscriptions are not reported. Raised on the client's threads.
    /// </summary>
    public event Action<IConnectionMultiplexer, EndPoint, Exception>? PrimaryConnectionFailed;

    /// <summary>
    /// Redis refused the credentials while connecting (none of the callers needs to have asked): raised once per
    /// connection attempt that the server refused, on the client's threads.
    /// </summary>
    public event Action<Exception>? CredentialsRejected;

    /// <summary>
    /// Hooks the client's events of a multiplexer as soon as it exists (connected or still trying): a connection made
    /// again in the background hands it out and reports it (which starts the check of an open window early); refused
    /// credentials and a refused connection are known at once, so that nobody waits for what the server refused.
    /// </summary>
    private void Attach(IConnectionMultiplexer multiplexer)
    {
        multiplexer.ConfigurationChanged += (_, _) => OnTopologyChanged(multiplexer);
        multiplexer.ConfigurationChangedBroadcast += (_, _) => OnTopologyChanged(multiplexer);
        multiplexer.HashSlotMoved += (_, _) => OnTopologyChanged(multiplexer);
        multiplexer.ConnectionRestored += (_, _) => OnConnectionRestored(multiplexer);
        multiplexer.ConnectionFailed += (_, e) => OnConnectionFailed(multiplexer, e);
    }

    private void OnConnectionRestored(IConnectionMultiplexer multiplexer)
    {
        if (Volatile.Read(ref _current) is { IsCompletedSuccessfully: true } current && ReferenceEquals(current.Result, multiplexer))
        {
            Volatile.Write(ref _connectFailure, null);

            // Not handed out yet (a cold start, or the connection made after a reset): it is now, and reported. Handed
            // out already: a connection restored may be a failover completed.
            if (!TryMarkReady(current) || ReferenceEquals(Volatile.Read(ref _ready), current))
            {
                OnTopologyChanged(multiplexer);
            }
        }
    }

    private void OnConnectionFailed(IConnectionMultiplexer multiplexer, ConnectionFailedEventArgs failure)
    {
        if (failure.ConnectionType != ConnectionType.Interactive || failure.EndPoint is not { } endPoint
            || Volatile.Read(ref _current) is not { IsCompletedSuccessfully: true } current || !ReferenceEquals(current.Result, multiplexer))
        {
            return;
        }

        var exception = failure.Exception
            ?? new RedisConnectionException(failure.FailureType, CommandFlags.None, $"{failure.FailureType} on {endPoint}", null, CommandStatus.Unknown);
        if (!ReferenceEquals(Volatile.Read(ref _ready), current))
        {
            // Still connecting: a refusal (of the connection or of the credentials) is what a waiter must hear at once.
            if (failure.FailureType == ConnectionFailureType.AuthenticationFailure || Outages.RedisErrorClassifier.Classify(exception) == Outages.RedisFailureKind.Authentication)
            {
                Volatile.Write(ref _connectFailure, exception);
                CredentialsRejected?.Invoke(exception);
            }
            else if (IsRefusal(exception))
            {
                Volatile.Write(ref _connectFailure, exception);
            }

            return;
        }

        try
        {
            if (multiplexer.GetServer(endPoint).IsReplica)
            {
                return;
            }
        }
        catch (Exception unknown) when (unknown is ArgumentException or ObjectDisposedException)
        {
            return;
        }

        PrimaryConnectionFailed?.Invoke(multiplexer, endPoint, exception);
    }

    /// <summary>Nothing listens there: the connection was refused (not a timeout, which may be a slow path).</summary>
    internal static bool IsRefusal(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is SocketException { SocketErrorCode: SocketError.ConnectionRefused }
                || current.Message.Contains("ConnectionRefused", StringComparison.Ordinal)
                || current.Message.Contains("Connection refused", StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private void OnTopologyChanged(IConnectionMultiplexer multiplexer)
    {
        if (ReferenceEquals(Volatile.Read(ref _ready)?.Result, multiplexer))
        {
            TopologyChanged?.Invoke(multiplexer);
        }
    }
}

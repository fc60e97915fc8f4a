using System.Net.Sockets;
using StackExchange.Redis;
using Resilient.Caching.Outages;

namespace Resilient.Caching.Tests;

public sealed class RedisErrorClassifierTests
{
    public static TheoryData<Exception, string> Cases => new()
    {
        { new RedisConnectionException(ConnectionFailureType.SocketFailure, CommandFlags.None, "x", null, CommandStatus.Sent), nameof(RedisFailureKind.Transport) },
        { new RedisConnectionException(ConnectionFailureType.AuthenticationFailure, CommandFlags.None, "x", null, CommandStatus.Sent), nameof(RedisFailureKind.Authentication) },
        { new RedisTimeoutException(CommandFlags.None, "Timeout performing HGET", CommandStatus.Sent), nameof(RedisFailureKind.Transport) },
        { new TimeoutException(), nameof(RedisFailureKind.Transport) },
        { new SocketException((int)SocketError.ConnectionReset), nameof(RedisFailureKind.Transport) },
        { new IOException("broken pipe"), nameof(RedisFailureKind.Transport) },
        { new ObjectDisposedException("ConnectionMultiplexer"), nameof(RedisFailureKind.None) },
        { new AggregateException(new TimeoutException(), new IOException()), nameof(RedisFailureKind.Transport) },
        { new AggregateException(new TimeoutException(), new InvalidOperationException()), nameof(RedisFailureKind.None) },
        { new RedisServerException(RedisErrorKind.Loading, CommandFlags.None, "LOADING Redis is loading the dataset in memory"), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "READONLY You can't write against a read only replica."), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "MASTERDOWN Link with MASTER is down"), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "TRYAGAIN Multiple keys request during rehashing of slot"), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "CLUSTERDOWN The cluster is down"), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "EXECABORT Transaction discarded because of: OOM command not allowed"), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "WRONGPASS invalid username-password pair"), nameof(RedisFailureKind.Authentication) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "BUSYKEY Target key name already exists."), nameof(RedisFailureKind.None) },
        { new RedisServerException(RedisErrorKind.Moved, CommandFlags.None, "Key has MOVED to Endpoint 127.0.0.1:7000 and hashslot 12079 but CommandFlags.NoRedirect was specified - redirect not followed for HMGET app:k."), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "Key has MOVED to Endpoint 127.0.0.1:7000 and hashslot 12079 but CommandFlags.NoRedirect was specified - redirect not followed for HMGET app:k."), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "MOVED 12079 127.0.0.1:7000"), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "ASK 12079 127.0.0.1:7000"), nameof(RedisFailureKind.ServerUnavailable) },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "ERR MOVED in a message"), nameof(RedisFailureKind.None) },
        { new RedisServerException(RedisErrorKind.WrongType, CommandFlags.None, "WRONGTYPE Operation against a key holding the wrong kind of value"), nameof(RedisFailureKind.None) },
        { new RedisCommandException("Command cannot be issued to a replica"), nameof(RedisFailureKind.None) },
        { new ArgumentNullException("key"), nameof(RedisFailureKind.None) },
        { new OperationCanceledException(), nameof(RedisFailureKind.None) },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Classify(Exception exception, string expected) => Assert.Equal(expected, RedisErrorClassifier.Classify(exception).ToString());

    [Fact]
    public void Disposed_IsJudgedByTheCodeThatThrew_NotByTheObjectName()
    {
        // A socket of the Redis stack, closed under a call: the connection going away.
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Dispose();
        var closedSocket = Assert.Throws<ObjectDisposedException>(() => socket.Send([1]));
        Assert.Equal(RedisFailureKind.Transport, RedisErrorClassifier.Classify(closedSocket));

        // The caller's own disposed object, whatever it is called: the caller's bug.
        var callers = Assert.Throws<ObjectDisposedException>(() => new ConnectionMultiplexer().Write());
        Assert.Contains("Multiplexer", callers.ObjectName, StringComparison.Ordinal);
        Assert.Equal(RedisFailureKind.None, RedisErrorClassifier.Classify(callers));
    }

    [Fact]
    public void Disposed_FromAConnectionTheCacheReset_IsTransport()
    {
        // Whatever a call in flight on a connection we reset throws on the way out is ours to swallow, however it is worded.
        var exception = new ObjectDisposedException("Connection is being disposed");
        Assert.Equal(RedisFailureKind.None, RedisErrorClassifier.Classify(exception));
        Assert.Equal(RedisFailureKind.Transport, RedisErrorClassifier.Classify(exception, connectionWasReset: true));
        Assert.Equal(RedisFailureKind.Transport, RedisErrorClassifier.Classify(new AggregateException(exception), connectionWasReset: true));
    }

    [Fact]
    public async Task Disposed_FaultingATaskTheCacheAwaits_IsTransport()
    {
        // The client tearing down a connection fails the commands on it with an exception it never throws: only the
        // await that observes it has frames, and that await is the cache's.
        using var h = new Harness();
        h.Inner.Error = static () => new ObjectDisposedException("Connection is being disposed");
        h.Inner.Fault = Fault.ReturnsFaultedTask;

        Assert.Null(await h.Cache.GetAsync("k", TestContext.Current.CancellationToken));
        Assert.False(h.Availability.IsAvailable);
    }

    // Named after the Redis client's type on purpose: the name must not decide.
    private sealed class ConnectionMultiplexer
    {
        private readonly bool _disposed = true;

        public void Write() => ObjectDisposedException.ThrowIf(_disposed, this);
    }

    [Theory]
    [InlineData("READONLY You can't write against a read only replica.", true)]
    [InlineData("EXECABORT Transaction discarded because of: READONLY You can't write against a read only replica.", true)]
    [InlineData("LOADING Redis is loading the dataset in memory", false)]
    [InlineData("ERR READONLY in a message", false)]
    public void ReadOnlyReply_IsKnown_AlsoInsideAnAbortedTransaction(string reply, bool readOnly) =>
        Assert.Equal(readOnly, RedisErrorClassifier.IsReadOnlyReply(new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, reply)));
}

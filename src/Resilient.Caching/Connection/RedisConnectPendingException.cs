namespace Resilient.Caching.Connection;

/// <summary>
/// There was no Redis connection for a call: either a caller waited a whole operation timeout for one
/// (<see cref="WaitedOut"/>: as good as a command timing out), or an inner component asked for one in the moment a
/// reset had dropped it. A timeout to the error classifier either way.
/// </summary>
internal sealed class RedisConnectPendingException : TimeoutException
{
    public RedisConnectPendingException()
    {
    }

    public RedisConnectPendingException(string message)
        : base(message)
    {
    }

    public RedisConnectPendingException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Gets a value indicating whether a caller waited a whole operation timeout for the connection.</summary>
    public bool WaitedOut { get; private init; }

    public static RedisConnectPendingException WaitedOutFor(TimeSpan timeout) =>
        new($"No Redis connection within {timeout.TotalMilliseconds:0} ms (the operation timeout); still connecting in the background.") { WaitedOut = true };
}

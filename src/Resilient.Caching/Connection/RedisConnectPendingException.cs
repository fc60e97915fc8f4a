namespace Resilient.Caching.Connection;

/// <summary>
/// A caller stopped waiting for a connection that is still being established. A timeout like any other for the
/// window, but the connection attempt is kept: resetting it would throw away the progress the next probe needs.
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
}

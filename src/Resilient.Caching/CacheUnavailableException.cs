namespace Resilient.Caching;

/// <summary>
/// Thrown instead of calling Redis while the unavailable window is open and
/// <see cref="ResilientRedisCacheOptions.IgnoreExceptions"/> is <see langword="false"/>.
/// </summary>
/// <remarks>The <see cref="Exception.InnerException"/> is the error that opened the window, when known.</remarks>
public sealed class CacheUnavailableException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="CacheUnavailableException"/> class.</summary>
    public CacheUnavailableException()
        : this("Redis is unavailable; the cache is skipping it until the unavailable window elapses.")
    {
    }

    /// <summary>Initializes a new instance of the <see cref="CacheUnavailableException"/> class with a message.</summary>
    /// <param name="message">The message.</param>
    public CacheUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="CacheUnavailableException"/> class with a message and the error that opened the window.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The error that opened the window.</param>
    public CacheUnavailableException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Gets how long until the cache tries Redis again.</summary>
    public TimeSpan RetryAfter { get; init; }
}

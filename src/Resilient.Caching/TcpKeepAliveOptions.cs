namespace Resilient.Caching;

/// <summary>TCP keepalive timings applied to every Redis socket (SO_KEEPALIVE with TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT).</summary>
/// <remarks>
/// A dead connection is noticed after about <see cref="Idle"/> + <see cref="Interval"/> × <see cref="Count"/>.
/// Values are whole seconds; the operating system accepts 1–32767 s for the times and 1–127 probes.
/// </remarks>
public sealed class TcpKeepAliveOptions
{
    /// <summary>Gets or sets how long a connection may be idle before the first keepalive probe.</summary>
    /// <value>The default value is 60 seconds. Environment variable: <c>TCP_KEEPALIVE_IDLE</c> (seconds).</value>
    public TimeSpan Idle { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Gets or sets the time between unanswered keepalive probes.</summary>
    /// <value>The default value is 10 seconds. Environment variable: <c>TCP_KEEPALIVE_INTVL</c> (seconds).</value>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets how many unanswered probes drop the connection.</summary>
    /// <value>The default value is 9. Environment variable: <c>TCP_KEEPALIVE_CNT</c>.</value>
    public int Count { get; set; } = 9;
}

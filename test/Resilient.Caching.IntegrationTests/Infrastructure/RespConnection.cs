using System.Net.Sockets;
using System.Text;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>
/// A deliberately tiny raw RESP2 client over one TCP socket. The fixtures use it instead of
/// StackExchange.Redis so that probing the server (readiness, stats, CONFIG SET, DEBUG SLEEP, ...) never
/// depends on, or is influenced by, the client library under test, and so tests can observe exactly what
/// happens on one socket (time-outs, resets) without reconnect logic getting in the way.
/// </summary>
public sealed class RespConnection : IDisposable
{
    private readonly byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    private RespConnection(Socket socket) => Socket = socket;

    /// <summary>The underlying socket (exposed so tests can inspect it, e.g. with <see cref="Socket.Poll(int, SelectMode)"/>).</summary>
    public Socket Socket { get; }

    /// <summary>Opens a TCP connection. Failures surface as the original <see cref="SocketException"/> (e.g. ConnectionRefused).</summary>
    public static async Task<RespConnection> ConnectAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            try
            {
                await socket.ConnectAsync(host, port, cts.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"Connecting to {host}:{port} did not complete within {timeout.TotalMilliseconds:0} ms.");
            }

            return new RespConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends one command encoded as a RESP array of bulk strings.</summary>
    public async Task SendAsync(IReadOnlyList<string> args, CancellationToken cancellationToken = default)
    {
        var builder = new StringBuilder().Append('*').Append(args.Count).Append("\r\n");
        foreach (var arg in args)
        {
            builder.Append('$').Append(Encoding.UTF8.GetByteCount(arg)).Append("\r\n").Append(arg).Append("\r\n");
        }

        var bytes = Encoding.UTF8.GetBytes(builder.ToString());
        var sent = 0;
        while (sent < bytes.Length)
        {
            sent += await Socket.SendAsync(bytes.AsMemory(sent), SocketFlags.None, cancellationToken);
        }
    }

    /// <summary>
    /// Reads exactly one complete reply and returns its raw RESP text (e.g. "+PONG\r\n", "-ERR ...\r\n",
    /// ":3\r\n", "$5\r\nhello\r\n", "*2\r\n..."). Throws <see cref="TimeoutException"/> if the reply is not complete
    /// within <paramref name="timeout"/>; after a time-out the connection is in an unknown state and should be disposed.
    /// Throws <see cref="EndOfStreamException"/> if the server closes the connection.
    /// </summary>
    public async Task<string> ReadReplyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var raw = new StringBuilder();
        try
        {
            await ReadValueAsync(raw, cts.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"No complete reply within {timeout.TotalMilliseconds:0} ms.");
        }

        return raw.ToString();
    }

    /// <summary>Sends one command and reads its reply.</summary>
    public async Task<string> ExecuteAsync(IReadOnlyList<string> args, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        await SendAsync(args, cancellationToken);
        return await ReadReplyAsync(timeout, cancellationToken);
    }

    /// <inheritdoc />
    public void Dispose() => Socket.Dispose();

    private async Task ReadValueAsync(StringBuilder raw, CancellationToken cancellationToken)
    {
        var line = await ReadLineAsync(cancellationToken);
        raw.Append(line).Append("\r\n");
        switch (line[0])
        {
            case '+' or '-' or ':':
                return;
            case '$':
                var length = int.Parse(line.AsSpan(1), System.Globalization.CultureInfo.InvariantCulture);
                if (length >= 0)
                {
                    // Payload plus its trailing CRLF.
                    raw.Append(Encoding.UTF8.GetString(await ReadExactAsync(length + 2, cancellationToken)));
                }

                return;
            case '*':
                var count = int.Parse(line.AsSpan(1), System.Globalization.CultureInfo.InvariantCulture);
                for (var i = 0; i < count; i++)
                {
                    await ReadValueAsync(raw, cancellationToken);
                }

                return;
            default:
                throw new InvalidDataException($"Unexpected RESP reply line: {line}");
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
    {
        var line = new List<byte>();
        while (true)
        {
            if (_start == _end)
            {
                await FillAsync(cancellationToken);
            }

            var b = _buffer[_start++];
            if (b == '\n' && line.Count > 0 && line[^1] == '\r')
            {
                return Encoding.UTF8.GetString([.. line[..^1]]);
            }

            line.Add(b);
        }
    }

    private async Task<byte[]> ReadExactAsync(int count, CancellationToken cancellationToken)
    {
        var result = new byte[count];
        var filled = 0;
        while (filled < count)
        {
            if (_start == _end)
            {
                await FillAsync(cancellationToken);
            }

            var chunk = Math.Min(count - filled, _end - _start);
            _buffer.AsSpan(_start, chunk).CopyTo(result.AsSpan(filled));
            _start += chunk;
            filled += chunk;
        }

        return result;
    }

    private async Task FillAsync(CancellationToken cancellationToken)
    {
        // Only called when the buffer is fully consumed. The indexes are updated after the receive, so a
        // cancelled (timed-out) receive leaves an empty buffer rather than stale bytes.
        var read = await Socket.ReceiveAsync(_buffer.AsMemory(), SocketFlags.None, cancellationToken);
        if (read == 0)
        {
            throw new EndOfStreamException("The server closed the connection.");
        }

        _start = 0;
        _end = read;
    }
}

using System.Globalization;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>
/// Reads the raw RESP2 text that <see cref="RespConnection"/> and <see cref="RedisServer.ExecuteAsync(string[])"/>
/// return, for fixtures that need structured replies (INFO, CLUSTER NODES, SENTINEL MASTER). The administrative
/// replies read here are ASCII, so a bulk string's byte length is its length in characters.
/// </summary>
internal static class RespReply
{
    /// <summary>
    /// The reply as .NET values: a simple or bulk string as <see cref="string"/>, an integer as <see cref="long"/>,
    /// a null bulk string or array as null, an array as a list of these. An error reply throws.
    /// </summary>
    public static object? Parse(string raw)
    {
        var position = 0;
        return ReadValue(raw, ref position);
    }

    /// <summary>The text of a simple or bulk string reply.</summary>
    public static string Text(string raw) =>
        Parse(raw) as string ?? throw new InvalidOperationException($"Expected a string reply, got: {raw}");

    /// <summary>The elements of an array reply.</summary>
    public static IReadOnlyList<object?> Array(string raw) =>
        Parse(raw) as IReadOnlyList<object?> ?? throw new InvalidOperationException($"Expected an array reply, got: {raw}");

    /// <summary>A flat array of name/value pairs (SENTINEL MASTER, SENTINEL REPLICAS' elements) as a dictionary.</summary>
    public static IReadOnlyDictionary<string, string> Pairs(object? array)
    {
        var items = array as IReadOnlyList<object?> ?? throw new InvalidOperationException("Expected an array of name/value pairs.");
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < items.Count; i += 2)
        {
            pairs[(string)items[i]!] = Convert.ToString(items[i + 1], CultureInfo.InvariantCulture) ?? string.Empty;
        }

        return pairs;
    }

    /// <summary>The "name:value" lines of an INFO reply.</summary>
    public static IReadOnlyDictionary<string, string> Info(string raw)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Text(raw).Split("\r\n"))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && !line.StartsWith('#'))
            {
                fields[line[..colon]] = line[(colon + 1)..];
            }
        }

        return fields;
    }

    private static object? ReadValue(string raw, ref int position)
    {
        var lineEnd = raw.IndexOf("\r\n", position, StringComparison.Ordinal);
        if (lineEnd < 0)
        {
            throw new FormatException($"Incomplete RESP reply: {raw}");
        }

        var type = raw[position];
        var header = raw[(position + 1)..lineEnd];
        position = lineEnd + 2;
        switch (type)
        {
            case '+':
                return header;
            case '-':
                throw new InvalidOperationException($"Redis replied with an error: {header}");
            case ':':
                return long.Parse(header, CultureInfo.InvariantCulture);
            case '$':
                var length = int.Parse(header, CultureInfo.InvariantCulture);
                if (length < 0)
                {
                    return null;
                }

                var text = raw.Substring(position, length);
                position += length + 2;
                return text;
            case '*':
                var count = int.Parse(header, CultureInfo.InvariantCulture);
                if (count < 0)
                {
                    return null;
                }

                var items = new List<object?>(count);
                for (var i = 0; i < count; i++)
                {
                    items.Add(ReadValue(raw, ref position));
                }

                return items;
            default:
                throw new FormatException($"Unknown RESP type '{type}' in: {raw}");
        }
    }
}

using System.Buffers;
using System.Text;

namespace Resilient.Caching.Topology;

/// <summary>
/// Redis Cluster's key-to-slot rule (CRC16-CCITT/XMODEM of the key, or of its first non-empty <c>{hash tag}</c>,
/// modulo 16384), for a key given as a prefix and the caller's key without concatenating them.
/// </summary>
internal static class HashSlot
{
    public const int Count = 16384;

    // Keys up to this many UTF-8 bytes are hashed from the stack.
    private const int StackLimit = 512;

    private static readonly ushort[] s_table = BuildTable();

    /// <summary>The slot of <paramref name="prefix"/> followed by <paramref name="key"/> (both as the stock cache writes them).</summary>
    public static int Of(ReadOnlySpan<byte> prefix, string key)
    {
        var length = prefix.Length + Encoding.UTF8.GetMaxByteCount(key.Length);
        byte[]? rented = null;
        var buffer = length <= StackLimit ? stackalloc byte[StackLimit] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            prefix.CopyTo(buffer);
            var written = prefix.Length + Encoding.UTF8.GetBytes(key, buffer[prefix.Length..]);
            return Of(buffer[..written]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The slot of a whole key.</summary>
    public static int Of(ReadOnlySpan<byte> key)
    {
        var open = key.IndexOf((byte)'{');
        if (open >= 0)
        {
            var close = key[(open + 1)..].IndexOf((byte)'}');
            if (close > 0)
            {
                key = key.Slice(open + 1, close);
            }
        }

        ushort crc = 0;
        foreach (var b in key)
        {
            crc = (ushort)((crc << 8) ^ s_table[((crc >> 8) ^ b) & 0xFF]);
        }

        return crc % Count;
    }

    private static ushort[] BuildTable()
    {
        var table = new ushort[256];
        for (var i = 0; i < 256; i++)
        {
            var crc = (ushort)(i << 8);
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc & 0x8000) != 0 ? (ushort)((crc << 1) ^ 0x1021) : (ushort)(crc << 1);
            }

            table[i] = crc;
        }

        return table;
    }
}

namespace Resilient.Caching.Benchmarks;

internal static class BenchmarkData
{
    /// <summary>A 1 KB value with varied bytes (a serialized session is about this size).</summary>
    public static byte[] Value1K()
    {
        var value = new byte[1024];
        new Random(42).NextBytes(value);
        return value;
    }
}

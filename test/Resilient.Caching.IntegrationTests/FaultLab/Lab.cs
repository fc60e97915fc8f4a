using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Options;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The settings every lab scenario runs with, and the timing bounds it asserts. The window and timeouts are real
/// (real Redis, real sockets), so they are short; the bounds carry generous slack for a loaded 2-core CI machine.
/// </summary>
internal static class Lab
{
    public static readonly TimeSpan OperationTimeout = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(1.5);

    /// <summary>Scheduling noise allowed on top of any bound that comes from the settings.</summary>
    public static readonly TimeSpan Slack = TimeSpan.FromSeconds(1.5);

    /// <summary>No call may take longer than this: the operation timeout, plus slack.</summary>
    public static readonly TimeSpan CallBound = OperationTimeout + Slack;

    /// <summary>A call counts as "waited out the operation timeout" above this (short-circuited calls take microseconds).</summary>
    public static readonly TimeSpan SlowCall = OperationTimeout * 0.6;

    /// <summary>
    /// A host name that can never resolve, and whose failure the resolver reports without sending a query: a label
    /// longer than 63 characters is refused locally by getaddrinfo, so no DNS traffic leaves the machine.
    /// </summary>
    public static readonly string UnresolvableHost = new string('x', 64) + ".invalid";

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static ITestOutputHelper? Output => TestContext.Current.TestOutputHelper;

    public static void Report(string line) => Output?.WriteLine(line);

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="timeout"/> passes; false on time-out.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan timeout, TimeSpan? every = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(every ?? TimeSpan.FromMilliseconds(20), Ct);
        }

        return true;
    }

    /// <summary>As <see cref="EventuallyAsync(Func{bool}, TimeSpan, TimeSpan?)"/> with an asynchronous condition.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(20, Ct);
        }

        return true;
    }

    public static byte[] Bytes(string text) => System.Text.Encoding.UTF8.GetBytes(text);

    public static string? Text(byte[]? bytes) => bytes is null ? null : System.Text.Encoding.UTF8.GetString(bytes);

    /// <summary>The stock provider with its defaults, as an application gets it from <c>AddStackExchangeRedisCache</c>.</summary>
    public static RedisCache CreateStock(string configuration, Action<RedisCacheOptions>? setup = null)
    {
        var options = new RedisCacheOptions { Configuration = configuration };
        setup?.Invoke(options);
        return new RedisCache(Options.Create(options));
    }
}

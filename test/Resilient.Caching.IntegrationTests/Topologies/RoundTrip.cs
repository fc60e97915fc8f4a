using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>
/// Every cache operation, sync and async, on keys placed on known servers, each checked on that server: the entry
/// is the stock provider's hash under InstanceName + key, a refresh slides its expiration back, a remove deletes it.
/// </summary>
internal static class RoundTrip
{
    private static readonly DistributedCacheEntryOptions Sliding = new() { SlidingExpiration = TimeSpan.FromMinutes(1) };

    /// <param name="cache">The cache under test.</param>
    /// <param name="placements">Each key with the server that must hold it; each is run sync or async in turn.</param>
    /// <param name="instanceName">The cache's InstanceName (the stored key's prefix).</param>
    public static async Task RunAsync(IDistributedCache cache, IReadOnlyList<(RedisServer Server, string Key)> placements, string instanceName)
    {
        for (var i = 0; i < placements.Count; i++)
        {
            var (server, key) = placements[i];
            // Async first: a synchronous call cannot be abandoned, so on a cold start it does not wait long for a connection.
            var sync = i % 2 == 1;
            var stored = instanceName + key;
            var value = Encoding.UTF8.GetBytes($"value of {key}");

            if (sync)
            {
                cache.Set(key, value, Sliding);
            }
            else
            {
                await cache.SetAsync(key, value, Sliding, Lab.Ct);
            }

            Assert.Equal(":1\r\n", await server.ExecuteAsync("EXISTS", stored));
            Assert.Equal(value, sync ? cache.Get(key) : await cache.GetAsync(key, Lab.Ct));

            // A refresh reaches the right server: the expiration slides back to its full length.
            Assert.Equal(":1\r\n", await server.ExecuteAsync("PEXPIRE", stored, "10000"));
            if (sync)
            {
                cache.Refresh(key);
            }
            else
            {
                await cache.RefreshAsync(key, Lab.Ct);
            }

            Assert.InRange(long.Parse(RespReply.Parse(await server.ExecuteAsync("PTTL", stored))!.ToString()!, CultureInfo.InvariantCulture), 50_000, 60_000);

            if (cache is IBufferDistributedCache buffers)
            {
                var writer = new ArrayBufferWriter<byte>();
                var sequence = new ReadOnlySequence<byte>(value.Reverse().ToArray());
                if (sync)
                {
                    buffers.Set(key, sequence, Sliding);
                    Assert.True(buffers.TryGet(key, writer));
                }
                else
                {
                    await buffers.SetAsync(key, sequence, Sliding, Lab.Ct);
                    Assert.True(await buffers.TryGetAsync(key, writer, Lab.Ct));
                }

                Assert.Equal(sequence.ToArray(), writer.WrittenSpan.ToArray());
            }

            if (sync)
            {
                cache.Remove(key);
                Assert.Null(cache.Get(key));
            }
            else
            {
                await cache.RemoveAsync(key, Lab.Ct);
                Assert.Null(await cache.GetAsync(key, Lab.Ct));
            }

            Assert.Equal(":0\r\n", await server.ExecuteAsync("EXISTS", stored));
        }
    }
}

using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Calls in flight on a connection the cache resets are the cache's to swallow: the client fails them with
/// "Connection is being disposed" (an <see cref="ObjectDisposedException"/> whose object name says nothing of Redis)
/// or a connection error, and none of that reaches a caller. The race is made certain: Redis is frozen, so every call
/// is still waiting when the reset comes.
/// </summary>
public sealed class ResetRaceTests
{
    [Fact]
    public async Task Calls_in_flight_when_the_connection_is_reset_get_their_fallback()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString, o => o.OperationTimeout = TimeSpan.FromSeconds(5));
        await lab.WarmUpAsync();
        var cache = lab.Cache;
        var entry = new DistributedCacheEntryOptions();

        server.Pause();
        try
        {
            var calls = Enumerable.Range(0, 32).Select(i => (i % 4) switch
            {
                0 => cache.GetAsync($"race:{i}", Lab.Ct),
                1 => cache.SetAsync($"race:{i}", [1], entry, Lab.Ct).ContinueWith(static _ => (byte[]?)null, TaskScheduler.Default),
                2 => Task.Run(() => cache.Get($"race:{i}")),
                _ => cache.RemoveAsync($"race:{i}", Lab.Ct).ContinueWith(static _ => (byte[]?)null, TaskScheduler.Default),
            }).ToArray();
            await Task.Delay(200, Lab.Ct); // The calls reach the frozen server: part of the scenario.
            Assert.All(calls, c => Assert.False(c.IsCompleted));

            // The window opens (a confirmed outage), and with it the connection is reset, as the guard does.
            lab.Services.Core.Deployment.RecordFailure(new TimeoutException("confirmed"), confirmed: true, fromProbe: false);
            lab.Services.Connection.Reset();

            // Released at once, long before the 5 s operation timeout, and none throws.
            var all = Task.WhenAll(calls);
            await all.WaitAsync(TimeSpan.FromSeconds(2), Lab.Ct);
            Assert.All(calls, c => Assert.True(c.IsCompletedSuccessfully, c.Exception?.ToString()));
            Assert.All(await all, Assert.Null);
        }
        finally
        {
            server.Resume();
        }
    }
}

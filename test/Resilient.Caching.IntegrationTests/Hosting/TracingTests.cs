using System.Diagnostics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Resilient.Caching.Configuration;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Hosting;

/// <summary>
/// An application with OpenTelemetry tracing (in-memory exporter) sees the Redis commands of our connections — also
/// of the fresh multiplexer made after an outage — and the window's transitions.
/// </summary>
public sealed class TracingTests
{
    private const string RedisInstrumentation = "OpenTelemetry.Instrumentation.StackExchangeRedis";
    private const string CacheName = "tracing";

    private static readonly ActivitySource s_app = new("Resilient.Caching.Tests.App");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RedisCommands_AreTracedOnEveryMultiplexer_AndTransitionsAreActivities()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        var exported = new List<Activity>();
        var live = 0;
        var reported = 0;
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddOpenTelemetry().WithTracing(tracing => tracing
            .AddSource(s_app.Name, ResilientCacheActivitySource.Name)
            .AddRedisInstrumentation(options => options.FlushInterval = TimeSpan.FromMilliseconds(100))
            .ConfigureRedisInstrumentation((services, instrumentation) => services.GetRequiredService<ResilientRedisConnections>()
                .Subscribe((_, connection) =>
                {
                    // As the README shows, plus a count of the multiplexers the instrumentation holds. Counted as
                    // reported once the instrumentation has it: the test sends its request's commands as soon as it
                    // sees the count, and commands sent before AddConnection returns are not traced.
                    var added = instrumentation.AddConnection(connection);
                    Interlocked.Increment(ref live);
                    Interlocked.Increment(ref reported);
                    return new Released(() =>
                    {
                        Interlocked.Decrement(ref live);
                        added.Dispose();
                    });
                }))
            .AddInMemoryExporter(exported));
        // Keyed, so that its name tells its transitions apart from those of other tests' caches in this process.
        builder.Services.AddKeyedResilientStackExchangeRedisCache(CacheName, o =>
        {
            o.Configuration = redis.ConnectionString;
            o.OperationTimeout = TimeSpan.FromSeconds(2);
            o.ConnectTimeout = TimeSpan.FromSeconds(2);
            o.UnavailableWindow = TimeSpan.FromSeconds(1);
        });
        using var host = builder.Build();
        await host.StartAsync(Ct);
        var cache = host.Services.GetRequiredKeyedService<IDistributedCache>(CacheName);
        var availability = host.Services.GetRequiredKeyedService<CacheAvailability>(CacheName);

        // A request's commands are children of the request. A multiplexer is reported once connected: commands sent in
        // the instant between the two are not traced, so the test waits for the report.
        await Lab.UntilAsync("the first multiplexer reported", TimeSpan.FromSeconds(20), () => Task.FromResult(Volatile.Read(ref reported) >= 1));
        var first = await InRequestAsync(cache, "first", "one");
        await WaitForCommandUnder(exported, first);

        // Redis dies and comes back: the cache resets its multiplexer, and the new one is traced too.
        redis.Kill();
        Assert.Null(await cache.GetAsync("k", Ct));
        // Confirmed by the probe on a fresh connection (until then it may be a blip).
        await Lab.UntilAsync("the outage confirmed", TimeSpan.FromSeconds(20), () => Task.FromResult(availability.Outages == 1));
        await redis.RestartAsync(Ct);
        await Lab.UntilAsync("the probe closed the window", TimeSpan.FromSeconds(20), async () =>
        {
            await cache.GetAsync("k", Ct);
            return availability.IsAvailable;
        });
        await Lab.UntilAsync("the new multiplexer reported", TimeSpan.FromSeconds(20), () => Task.FromResult(Volatile.Read(ref reported) >= 2));
        var second = await InRequestAsync(cache, "second", "two");
        await WaitForCommandUnder(exported, second);

        // The retired multiplexers were let go of: one is in use.
        Assert.True(Volatile.Read(ref reported) >= 2, $"{reported} multiplexers reported: the connection was never replaced");
        Assert.Equal(1, Volatile.Read(ref live));

        // The transitions, as activities of their own.
        Activity[] ours;
        lock (exported)
        {
            ours = [.. exported.Where(a => a.Source.Name == ResilientCacheActivitySource.Name && (string?)a.GetTagItem(ResilientCacheActivitySource.CacheNameTag) == CacheName)];
        }

        var opened = Assert.Single(ours, a => a.OperationName == ResilientCacheActivitySource.OpenedName);
        Assert.Equal(ActivityStatusCode.Error, opened.Status);
        Assert.Single(ours, a => a.OperationName == ResilientCacheActivitySource.ClosedName);
        await host.StopAsync(CancellationToken.None);
    }

    private static async Task<ActivityContext> InRequestAsync(IDistributedCache cache, string key, string value)
    {
        using var request = s_app.StartActivity("request")!;
        await cache.SetStringAsync(key, value, Ct);
        Assert.Equal(value, await cache.GetStringAsync(key, Ct));
        return request.Context;
    }

    private static async Task WaitForCommandUnder(List<Activity> exported, ActivityContext request)
    {
        var traced = await Lab.EventuallyAsync(
            () =>
            {
                lock (exported)
                {
                    return exported.Any(a => a.Source.Name == RedisInstrumentation && a.ParentSpanId == request.SpanId && a.TraceId == request.TraceId);
                }
            },
            TimeSpan.FromSeconds(20));
        if (!traced)
        {
            string commands;
            lock (exported)
            {
                commands = string.Join("\n", exported.Where(a => a.Source.Name == RedisInstrumentation).Select(a => $"  {a.DisplayName} at {a.StartTimeUtc:HH:mm:ss.fff}, parent {a.ParentSpanId}"));
            }

            Assert.Fail($"no Redis command traced under the request (span {request.SpanId}) within 20 s; Redis commands traced:\n{commands}");
        }
    }

    private sealed class Released(Action release) : IDisposable
    {
        public void Dispose() => release();
    }
}

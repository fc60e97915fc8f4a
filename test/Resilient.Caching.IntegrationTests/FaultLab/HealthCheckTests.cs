using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>The health check against a real Redis: its PING goes through the window and is bounded by the operation timeout.</summary>
public sealed class HealthCheckTests
{
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromMilliseconds(500);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Hung_redis_is_Degraded_within_the_operation_timeout_then_the_window_answers_without_calling_redis()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        using var lab = Build(redis.ConnectionString, window: TimeSpan.FromSeconds(30));
        var health = lab.Provider.GetRequiredService<HealthCheckService>();
        using var operations = new MetricCollector<long>(lab.Provider.GetRequiredService<IMeterFactory>(), ResilientCacheMetrics.MeterName, ResilientCacheMetrics.OperationsName);
        await lab.WaitForConnectionAsync();

        var healthy = Assert.Single((await health.CheckHealthAsync(Ct)).Entries).Value;
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.True(healthy.Data.ContainsKey("ping_ms"));
        Assert.Equal("ping", operations.LastMeasurement!.Tags[ResilientCacheMetrics.OperationTag]);
        Assert.Equal("hit", operations.LastMeasurement.Tags[ResilientCacheMetrics.OutcomeTag]);

        await redis.ResetStatsAsync();
        var timedOut = 0;
        redis.Pause();
        try
        {
            // Redis accepts the PING and never answers: the check gives up after the operation timeout, and the window
            // opens. On a busy machine the first such timeout may be taken for the application's own stall (the test
            // process's thread pool starved while Redis had just answered: event 24), which opens no window; a frozen
            // Redis gets at most that one round excused, so the next check opens it.
            long started;
            do
            {
                started = Stopwatch.GetTimestamp();
                var hung = Assert.Single((await health.CheckHealthAsync(Ct)).Entries).Value;
                var elapsed = Stopwatch.GetElapsedTime(started);
                timedOut++;
                Assert.Equal(HealthStatus.Degraded, hung.Status);
                Assert.InRange(elapsed, OperationTimeout * 0.8, OperationTimeout + TimeSpan.FromSeconds(1));
                Assert.Contains("Timeout", (string)hung.Data["last_error"], StringComparison.Ordinal);
            }
            while (lab.Availability.IsAvailable && timedOut < 3);

            Assert.False(lab.Availability.IsAvailable, lab.DescribeLogs());
            Assert.Equal(timedOut - 1, lab.LogCount(Log.IdApplicationStall));

            // Inside the window: Degraded at once, with the window's state, and no PING sent.
            for (var i = 0; i < 5; i++)
            {
                started = Stopwatch.GetTimestamp();
                var skipped = Assert.Single((await health.CheckHealthAsync(Ct)).Entries).Value;
                Assert.True(Stopwatch.GetElapsedTime(started) < TimeSpan.FromMilliseconds(200), "a check inside the window waited");
                Assert.Equal(HealthStatus.Degraded, skipped.Status);
                Assert.InRange((double)skipped.Data["retry_after_seconds"], 25, 30);
                Assert.IsType<double>(skipped.Data["outage_seconds"]);
                Assert.Equal((long)(i + 1), skipped.Data["skipped_operations"]);
                Assert.Equal(1L, skipped.Data["outages"]);
                Assert.Contains("Timeout", (string)skipped.Data["last_error"], StringComparison.Ordinal);
            }
        }
        finally
        {
            redis.Resume();
        }

        // Only the PINGs of the checks that timed out reached Redis (answered once Redis was resumed).
        var calls = await redis.GetCommandCallsAsync();
        Assert.Equal(timedOut, calls.GetValueOrDefault("ping"));
        Assert.Equal(5, operations.GetMeasurementSnapshot().Count(m => (string?)m.Tags[ResilientCacheMetrics.OutcomeTag] == "skipped"));
    }

    [Fact]
    public async Task Wrong_password_is_Degraded_and_the_password_is_never_shown()
    {
        const string wrongPassword = "not-the-Secret-123";
        await using var redis = await RedisServer.StartNewAsync(new RedisServerOptions { RequirePass = "the-real-Secret-456" }, Ct);
        using var lab = Build($"{redis.Host}:{redis.Port},password={wrongPassword}", window: TimeSpan.FromSeconds(30));
        var health = lab.Provider.GetRequiredService<HealthCheckService>();

        var report = await health.CheckHealthAsync(Ct);

        var entry = Assert.Single(report.Entries).Value;
        Assert.Equal(HealthStatus.Degraded, report.Status);
        Assert.Equal(HealthStatus.Degraded, entry.Status);
        var shown = string.Join('\n', [entry.Description, .. entry.Data.Select(d => $"{d.Key}={d.Value}")]);
        Assert.DoesNotContain(wrongPassword, shown, StringComparison.Ordinal);
        Assert.DoesNotContain("Secret", shown, StringComparison.Ordinal);
        Assert.True(entry.Data.ContainsKey("last_error"), shown);
        Assert.False(lab.Availability.IsAvailable);
    }

    [Fact]
    public void Describe_masks_passwords_in_error_messages()
    {
        var described = Redaction.Describe(
            new InvalidOperationException("connect failed: 127.0.0.1:6379,password=hunter2,ssl=false; Pwd = x1\nsecond line password=y"));

        Assert.Equal("InvalidOperationException: connect failed: 127.0.0.1:6379,password=***,ssl=false; Pwd=***", described);
    }

    private static LabCache Build(string configuration, TimeSpan window) =>
        new(
            configuration,
            o =>
            {
                o.ConnectTimeout = OperationTimeout;
                o.UnavailableWindow = window;
            },
            services: s => s.AddMetrics().AddHealthChecks().AddResilientStackExchangeRedisCache());
}

using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Resilient.Caching.IntegrationTests.Topologies;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// A wrong password, ten hosts out of ten: redis-server with <c>requirepass</c>, the cache configured with another
/// password and the library's defaults (5 s timeouts, 30 s window). Each fresh host reports the refused credentials
/// (an Error, event 7) while it connects, within the connect timeout, whether or not a request asked; and no request
/// waits out the operation timeout for a connection the server refused.
/// </summary>
public sealed class WrongPasswordTests
{
    private const int Hosts = 10;

    /// <summary>The connect timeout of the defaults: the refusal is reported within it.</summary>
    private static readonly TimeSpan ReportedWithin = new ResilientRedisCacheOptions().ConnectTimeout;

    /// <summary>A request answered "at once": well under the 5 s operation timeout, with room for a loaded machine.</summary>
    private static readonly TimeSpan AtOnce = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Ten_fresh_hosts_report_the_refused_credentials_without_a_request_and_answer_the_first_at_once()
    {
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { RequirePass = "right-password" }, Lab.Ct);
        var expect = new Expectations();
        var figures = new List<string>();
        for (var host = 0; host < Hosts; host++)
        {
            var async = host % 2 == 1;
            await using var lab = new LabCache($"127.0.0.1:{server.Port},password=wrong-password", Lab.UseDefaults);
            var clock = Stopwatch.StartNew();
            await lab.StartAsync();

            // No request: the host's start alone connects, and the refusal is reported.
            var reported = await Lab.EventuallyAsync(() => lab.LogCount(Log.IdAuthenticationFailed, LogLevel.Error) > 0, ReportedWithin + TimeSpan.FromSeconds(0.5));
            var reportedAfter = clock.Elapsed;

            var first = Stopwatch.StartNew();
            var value = await lab.Cache.GetAsync("wrong-password:k", async);
            first.Stop();

            figures.Add(string.Create(CultureInfo.InvariantCulture,
                $"host {host} ({(async ? "async" : "sync")}): event 7 {(reported ? $"after {reportedAfter.TotalMilliseconds:0} ms" : "never")}, first request {first.Elapsed.TotalMilliseconds:0} ms ({lab.DescribeOutageEvents()})"));
            expect.That(reported && reportedAfter <= ReportedWithin, $"host {host}: an Error with event 7 within {ReportedWithin.TotalSeconds:0} s of the start, without a request ({(reported ? $"{reportedAfter.TotalMilliseconds:0} ms" : "none")})");
            expect.That(value is null && first.Elapsed < AtOnce, $"host {host}: the first request's fallback within {AtOnce.TotalMilliseconds:0} ms ({first.Elapsed.TotalMilliseconds:0} ms)");
            if (!reported || first.Elapsed >= AtOnce)
            {
                Lab.Report($"host {host}:\n{lab.DescribeLogs()}");
            }
        }

        var summary = string.Join('\n', figures);
        Lab.Report(summary);
        TestContext.Current.SendDiagnosticMessage(summary);
        expect.Verify();
    }

    [Fact]
    public async Task Ten_fresh_hosts_asked_at_once_answer_without_waiting_for_the_refused_credentials()
    {
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { RequirePass = "right-password" }, Lab.Ct);
        var expect = new Expectations();
        var figures = new List<string>();
        for (var host = 0; host < Hosts; host++)
        {
            var async = host % 2 == 1;
            await using var lab = new LabCache($"127.0.0.1:{server.Port},password=wrong-password", Lab.UseDefaults);
            var clock = Stopwatch.StartNew();
            await lab.StartAsync();

            // The first request arrives while the host's first connect is under way.
            var first = Stopwatch.StartNew();
            var value = await lab.Cache.GetAsync("wrong-password:k", async);
            first.Stop();
            var reported = await Lab.EventuallyAsync(() => lab.LogCount(Log.IdAuthenticationFailed, LogLevel.Error) > 0, ReportedWithin + TimeSpan.FromSeconds(0.5));
            var reportedAfter = clock.Elapsed;

            figures.Add(string.Create(CultureInfo.InvariantCulture,
                $"host {host} ({(async ? "async" : "sync")}): first request at the start {first.Elapsed.TotalMilliseconds:0} ms, " +
                $"event 7 {(reported ? $"{reportedAfter.TotalMilliseconds:0} ms after the start" : "never")} ({lab.DescribeOutageEvents()})"));
            expect.That(value is null && first.Elapsed < AtOnce, $"host {host}: the first request's fallback within {AtOnce.TotalMilliseconds:0} ms ({first.Elapsed.TotalMilliseconds:0} ms)");
            expect.That(reported, $"host {host}: an Error with event 7");
            if (!reported || first.Elapsed >= AtOnce)
            {
                Lab.Report($"host {host}:\n{lab.DescribeLogs()}");
            }
        }

        var summary = string.Join('\n', figures);
        Lab.Report(summary);
        TestContext.Current.SendDiagnosticMessage(summary);
        expect.Verify();
    }
}

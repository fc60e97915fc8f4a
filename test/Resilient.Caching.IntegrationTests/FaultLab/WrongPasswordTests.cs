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
    public Task Ten_fresh_hosts_report_the_refused_credentials_without_a_request_and_answer_the_first_at_once() =>
        TenFreshHostsAsync(async (lab, host, async, expect) =>
        {
            var clock = Stopwatch.StartNew();
            await lab.StartAsync();

            // No request: the host's start alone connects, and the refusal is reported.
            var reported = await ReportedAsync(lab);
            var reportedAfter = clock.Elapsed;

            var first = Stopwatch.StartNew();
            var value = await lab.Cache.GetAsync("wrong-password:k", async);
            first.Stop();

            expect.That(reported && reportedAfter <= ReportedWithin, $"host {host}: an Error with event 7 within {ReportedWithin.TotalSeconds:0} s of the start, without a request ({(reported ? $"{reportedAfter.TotalMilliseconds:0} ms" : "none")})");
            ExpectFallbackAtOnce(expect, host, value, first.Elapsed);
            return (string.Create(CultureInfo.InvariantCulture,
                $"event 7 {(reported ? $"after {reportedAfter.TotalMilliseconds:0} ms" : "never")}, first request {first.Elapsed.TotalMilliseconds:0} ms"), reported && first.Elapsed < AtOnce);
        });

    [Fact]
    public Task Ten_fresh_hosts_asked_at_once_answer_without_waiting_for_the_refused_credentials() =>
        TenFreshHostsAsync(async (lab, host, async, expect) =>
        {
            var clock = Stopwatch.StartNew();
            await lab.StartAsync();

            // The first request arrives while the host's first connect is under way.
            var first = Stopwatch.StartNew();
            var value = await lab.Cache.GetAsync("wrong-password:k", async);
            first.Stop();
            var reported = await ReportedAsync(lab);
            var reportedAfter = clock.Elapsed;

            ExpectFallbackAtOnce(expect, host, value, first.Elapsed);
            expect.That(reported, $"host {host}: an Error with event 7");
            return (string.Create(CultureInfo.InvariantCulture,
                $"first request at the start {first.Elapsed.TotalMilliseconds:0} ms, event 7 {(reported ? $"{reportedAfter.TotalMilliseconds:0} ms after the start" : "never")}"), reported && first.Elapsed < AtOnce);
        });

    /// <summary>
    /// Ten hosts in turn (sync and async requests alternating), each a fresh cache with the wrong password against one
    /// server; each host's figures are reported, with its log when it missed a bound, and every missed bound at once.
    /// </summary>
    private static async Task TenFreshHostsAsync(Func<LabCache, int, bool, Expectations, Task<(string Figures, bool Kept)>> host)
    {
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { RequirePass = "right-password" }, Lab.Ct);
        var expect = new Expectations();
        var figures = new List<string>();
        for (var i = 0; i < Hosts; i++)
        {
            var async = i % 2 == 1;
            await using var lab = new LabCache($"127.0.0.1:{server.Port},password=wrong-password", Lab.UseDefaults);
            var (line, kept) = await host(lab, i, async, expect);
            figures.Add($"host {i} ({(async ? "async" : "sync")}): {line} ({lab.DescribeOutageEvents()})");
            if (!kept)
            {
                Lab.Report($"host {i}:\n{lab.DescribeLogs()}");
            }
        }

        var summary = string.Join('\n', figures);
        Lab.Report(summary);
        TestContext.Current.SendDiagnosticMessage(summary);
        expect.Verify();
    }

    private static Task<bool> ReportedAsync(LabCache lab) =>
        Lab.EventuallyAsync(() => lab.LogCount(Log.IdAuthenticationFailed, LogLevel.Error) > 0, ReportedWithin + TimeSpan.FromSeconds(0.5));

    private static void ExpectFallbackAtOnce(Expectations expect, int host, byte[]? value, TimeSpan elapsed) =>
        expect.That(value is null && elapsed < AtOnce, $"host {host}: the first request's fallback within {AtOnce.TotalMilliseconds:0} ms ({elapsed.TotalMilliseconds:0} ms)");
}

using System.Globalization;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Scenario 5: Redis hangs. The connection stays open and the kernel even accepts new ones, but nothing is answered:
/// the operation timeout, then the window, then recovery once Redis answers again.
/// </summary>
public sealed class PauseTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Redis_process_frozen_with_SIGSTOP(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);
        try
        {
            // Commands sent while frozen wait in the kernel and run on SIGCONT, so the count after it includes them.
            var report = await Outage.RunAsync(lab, async,
                new Fault("sigstop", () => { server.Pause(); return Task.CompletedTask; }, () => { server.Resume(); return Task.CompletedTask; }),
                new OutageOptions { CountCommands = () => CacheCommands.ReadsAndWritesAsync(server) });

            report.AssertSurvived();
        }
        finally
        {
            if (server.ProcessId is not null)
            {
                server.Resume(); // Harmless when running; never leave a stopped process behind.
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Redis_pauses_all_clients_with_CLIENT_PAUSE(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);

        // CLIENT PAUSE holds every client command (ours and the fixture's) until it expires, so it heals by itself:
        // the pause lasts as long as the lab's other faults (the window opens after the operation timeout).
        var pause = Lab.OperationTimeout + new OutageOptions().FaultFor;
        DateTime endsAt = default;
        var report = await Outage.RunAsync(lab, async,
            new Fault(
                "client-pause",
                async () =>
                {
                    endsAt = DateTime.UtcNow + pause;
                    Assert.StartsWith("+OK", await server.ExecuteAsync("CLIENT", "PAUSE", ((long)pause.TotalMilliseconds).ToString(CultureInfo.InvariantCulture), "ALL"), StringComparison.Ordinal);
                },
                async () =>
                {
                    if (endsAt - DateTime.UtcNow is { } left && left > TimeSpan.Zero)
                    {
                        await Task.Delay(left, Lab.Ct); // The pause expires on its own.
                    }
                }),
            new OutageOptions { FaultFor = TimeSpan.Zero, CountCommands = () => CacheCommands.ReadsAndWritesAsync(server) });

        report.AssertSurvived();
    }
}

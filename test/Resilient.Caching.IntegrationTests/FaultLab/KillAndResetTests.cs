using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>Scenarios 1 and 2: the connection is closed under the traffic — Redis dies, or the network resets it.</summary>
public sealed class KillAndResetTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Redis_killed_mid_traffic_and_restarted_on_the_same_port(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);

        var report = await Outage.RunAsync(lab, async, new Fault("kill", () => { server.Kill(); return Task.CompletedTask; }, () => server.RestartAsync(Lab.Ct)),
            new OutageOptions { CountCommands = () => CacheCommands.ReadsAndWritesAsync(server), CountersRestartOnHeal = true });

        report.AssertSurvived();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Every_connection_reset_for_a_while_including_new_ones(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var lab = new LabCache(proxy.ConnectionString);

        var report = await Outage.RunAsync(lab, async,
            new Fault("reset-mode", () => { proxy.SetMode(FaultMode.Reset); return Task.CompletedTask; }, () => { proxy.SetMode(FaultMode.PassThrough); return Task.CompletedTask; }),
            new OutageOptions { CountCommands = () => CacheCommands.ReadsAndWritesAsync(server) });

        report.AssertSurvived();
    }
}

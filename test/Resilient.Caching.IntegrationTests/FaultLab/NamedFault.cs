using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The faults a theory names, on a real server reached through the fault proxy: injected, and healed by disposing
/// what <see cref="InjectAsync"/> returns. Faults that keep Redis's data (frozen, paused, blackholed) and one that
/// does not reach it at all (every connection reset).
/// </summary>
internal static class NamedFault
{
    public static async Task<IAsyncDisposable> InjectAsync(string fault, RedisServer server, FaultProxy proxy)
    {
        switch (fault)
        {
            case "sigstop":
                server.Pause();
                return new Heal(() => server.Resume());
            case "proxy-blackhole":
                proxy.SetMode(FaultMode.Blackhole);
                return new Heal(() => proxy.SetMode(FaultMode.PassThrough));
            case "connection-reset":
                proxy.SetMode(FaultMode.Reset);
                return new Heal(() => proxy.SetMode(FaultMode.PassThrough));
            case "client-pause":
                // Holds every command, the fixture's too, until it expires: it heals by itself, and the commands it
                // held run then, before anything sent later.
                Assert.StartsWith("+OK", await server.ExecuteAsync("CLIENT", "PAUSE", "2500", "ALL"), StringComparison.Ordinal);
                return new Heal(() => { });
            default:
                throw new ArgumentOutOfRangeException(nameof(fault), fault, "unknown fault");
        }
    }

    private sealed class Heal(Action heal) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            heal();
            return ValueTask.CompletedTask;
        }
    }
}

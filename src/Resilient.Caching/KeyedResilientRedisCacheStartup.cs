using Microsoft.Extensions.Hosting;

namespace Resilient.Caching;

/// <summary>At host start, for a keyed cache: log its settings in force and start connecting, without waiting for Redis.</summary>
internal sealed class KeyedResilientRedisCacheStartup(ResilientRedisCacheServices services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        services.ReportAndWarm();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

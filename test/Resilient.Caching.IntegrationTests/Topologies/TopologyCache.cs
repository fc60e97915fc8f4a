using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Resilient.Caching.IntegrationTests.FaultLab;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>Which registration a topology test runs against.</summary>
public enum Provider
{
    /// <summary><c>AddResilientStackExchangeRedisCache</c> (the lab's window and keepalive, the default timeouts unless a test sets its own).</summary>
    Resilient,

    /// <summary><c>AddStackExchangeRedisCache</c>, Microsoft's stock provider, with its defaults.</summary>
    Stock,
}

/// <summary>
/// The cache a topology test uses, registered through dependency injection as an application does: ours through
/// <see cref="LabCache"/> (its logs and window observable), or the stock provider for comparison.
/// </summary>
internal sealed class TopologyCache : IDisposable
{
    private readonly ServiceProvider? _stock;

    public TopologyCache(Provider provider, string configuration, string instanceName, Action<ResilientRedisCacheOptions>? setup = null)
    {
        if (provider == Provider.Resilient)
        {
            Ours = new LabCache(configuration, o =>
            {
                // These tests prove where calls go, not how fast.
                Lab.UseDefaultTimeouts(o);
                o.InstanceName = instanceName;
                setup?.Invoke(o);
            });
            Cache = Ours.Cache;
        }
        else
        {
            var services = new ServiceCollection();
            services.AddStackExchangeRedisCache(o =>
            {
                o.Configuration = configuration;
                o.InstanceName = instanceName;
            });
            _stock = services.BuildServiceProvider();
            Cache = _stock.GetRequiredService<IDistributedCache>();
        }
    }

    public IDistributedCache Cache { get; }

    /// <summary>Ours, with its logs and window; null for the stock provider.</summary>
    public LabCache? Ours { get; }

    /// <summary>
    /// Ours connected (the stock provider connects on its first call and waits for it): a synchronous call on a cold
    /// cache that waited more than a few ms for its connection takes its fallback by design, and a loaded machine
    /// takes longer than that to connect to a Sentinel or cluster deployment.
    /// </summary>
    public Task ConnectedAsync() => Ours?.WaitForConnectionAsync() ?? Task.CompletedTask;

    public void Dispose()
    {
        Ours?.Dispose();
        _stock?.Dispose();
    }
}

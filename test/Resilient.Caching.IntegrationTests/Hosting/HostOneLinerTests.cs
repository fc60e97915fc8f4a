using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Resilient.Caching.Configuration;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Hosting;

/// <summary>
/// <c>builder.AddResilientStackExchangeRedisCache("cache")</c> in the environment an Aspire AppHost gives a project:
/// <c>ConnectionStrings__cache</c> and <c>ConnectionStrings__data</c> as environment variables, settings in the
/// documented section, OpenTelemetry set up by the application without naming our meter.
/// </summary>
[Collection(nameof(ProcessEnvironment))]
public sealed class HostOneLinerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task OneLine_TakesTheConnectionStringAnAppHostInjects_AddsHealthChecksAndExportsTheMeter()
    {
        await using var cacheServer = await RedisServer.StartNewAsync(cancellationToken: Ct);
        await using var dataServer = await RedisServer.StartNewAsync(cancellationToken: Ct);
        using var environment = new ProcessEnvironment(new Dictionary<string, string>
        {
            ["ConnectionStrings__cache"] = cacheServer.ConnectionString,
            ["ConnectionStrings__data"] = dataServer.ConnectionString,
            ["ResilientCaching__cache__InstanceName"] = "web:",
            ["ResilientCaching__cache__OperationTimeout"] = "2",
            ["OTEL_SERVICE_NAME"] = "web",
        });
        var exported = new List<Metric>();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, EnvironmentName = "Production" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddInMemoryExporter(exported));

        builder.AddResilientStackExchangeRedisCache("cache");
        builder.AddKeyedResilientStackExchangeRedisCache("data");

        await using var app = builder.Build();
        app.MapGet("/", async (IDistributedCache cache, [FromKeyedServices("data")] IDistributedCache data) =>
        {
            await cache.SetStringAsync("page", "from cache", Ct);
            await data.SetStringAsync("row", "from data", Ct);
            return await cache.GetStringAsync("page", Ct) + " / " + await data.GetStringAsync("row", Ct);
        });
        app.MapHealthChecks("/health", new() { ResponseWriter = (context, report) => context.Response.WriteAsJsonAsync(report.Entries.ToDictionary(e => e.Key, e => e.Value.Status.ToString())) });
        await app.StartAsync(Ct);
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            Assert.Equal("from cache / from data", await client.GetStringAsync("/", Ct));
            Assert.Contains("web:page", await cacheServer.ExecuteAsync("KEYS", "*"), StringComparison.Ordinal);
            Assert.Contains("row", await dataServer.ExecuteAsync("KEYS", "*"), StringComparison.Ordinal);

            // Settings from the section, the connection from the connection string (and said so).
            var options = app.Services.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value;
            Assert.Equal(TimeSpan.FromSeconds(2), options.OperationTimeout);
            Assert.Equal("connection string 'ConnectionStrings:cache'", options.Sources[ResilientRedisCacheOptionsSetup.ConfigurationKey]);

            // A health entry per cache.
            var health = await client.GetFromJsonAsync<Dictionary<string, string>>("/health", Ct);
            Assert.Equal("Healthy", health!["redis-cache"]);
            Assert.Equal("Healthy", health["redis-cache-data"]);

            // The application never named our meter: the one-liner enabled it for OpenTelemetry.
            app.Services.GetRequiredService<MeterProvider>().ForceFlush();
            var operations = Assert.Single(exported, m => m.Name == ResilientCacheMetrics.OperationsName);
            var caches = new HashSet<string>();
            foreach (var point in operations.GetMetricPoints())
            {
                foreach (var tag in point.Tags)
                {
                    if (tag.Key == ResilientCacheMetrics.CacheTag)
                    {
                        caches.Add((string)tag.Value!);
                    }
                }
            }

            Assert.Equal(["data", "default"], caches.Order());
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void Switches_InTheSettingsSection_TurnOffTheHealthCheckAndTheMeter()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:cache"] = "127.0.0.1:1",
            ["ResilientCaching:cache:DisableHealthChecks"] = "true",
            ["ResilientCaching:cache:DisableMetrics"] = "true",
        });
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));

        builder.AddResilientStackExchangeRedisCache("cache");

        using var host = builder.Build();
        Assert.Empty(host.Services.GetService<IOptions<HealthCheckServiceOptions>>()?.Value.Registrations ?? []);
        Assert.IsType<ResilientDistributedCache>(host.Services.GetRequiredService<IDistributedCache>());

        // Without the switches both are there, and the switches are not reported as unknown settings.
        var on = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        on.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["ConnectionStrings:cache"] = "127.0.0.1:1" });
        on.Services.AddSingleton(new EnvironmentVariables(_ => null));
        on.AddResilientStackExchangeRedisCache("cache");
        using var onHost = on.Build();
        Assert.Single(onHost.Services.GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations, r => r.Name == "redis-cache");
    }

    [Fact]
    public void AMissingConnectionString_StopsStartUp_SayingWhereItIsRead()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.AddResilientStackExchangeRedisCache("cache");
        using var host = builder.Build();

        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IDistributedCache>());
        Assert.Contains("is empty", error.Message, StringComparison.Ordinal);
    }
}

/// <summary>
/// Sets process environment variables for one test and restores them after; tests that read the process
/// environment run one at a time in this collection (the variables it sets are read by no other test).
/// </summary>
[CollectionDefinition(nameof(ProcessEnvironment), DisableParallelization = true)]
public sealed class ProcessEnvironment : IDisposable
{
    private readonly Dictionary<string, string?> _before = [];

    public ProcessEnvironment()
    {
    }

    public ProcessEnvironment(IReadOnlyDictionary<string, string> variables)
    {
        foreach (var (name, value) in variables)
        {
            _before[name] = Environment.GetEnvironmentVariable(name);
            Environment.SetEnvironmentVariable(name, value);
        }
    }

    public void Dispose()
    {
        foreach (var (name, value) in _before)
        {
            Environment.SetEnvironmentVariable(name, value);
        }
    }
}

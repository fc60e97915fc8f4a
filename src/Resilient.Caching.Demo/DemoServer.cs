namespace Resilient.Caching.Demo;

/// <summary>Which server the demo talks to, for its state page.</summary>
/// <param name="Description">E.g. "Garnet 2.2.8, embedded in this process".</param>
internal sealed record DemoServer(string Description)
{
    /// <summary>
    /// When the "Redis" section configures no server, starts Garnet in this process and points the section at it;
    /// otherwise leaves the configuration alone. The embedded server stops with the application.
    /// </summary>
    public static DemoServer EmbedWhenUnconfigured(WebApplicationBuilder builder)
    {
        DemoServer server;
        if (string.IsNullOrWhiteSpace(builder.Configuration["Redis:Configuration"]))
        {
            var garnet = EmbeddedGarnet.Start();
            builder.Configuration["Redis:Configuration"] = garnet.ConnectionString;
            // A factory registration: the container disposes (stops) it with the application.
            builder.Services.AddSingleton(_ => garnet);
            server = new DemoServer($"Garnet {EmbeddedGarnet.Version} (Microsoft's RESP server), embedded in this process on {garnet.ConnectionString}");
        }
        else
        {
            server = new DemoServer("the Redis configured in Redis:Configuration");
        }

        builder.Services.AddSingleton(server);
        return server;
    }
}

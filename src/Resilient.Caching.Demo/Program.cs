using Resilient.Caching.Demo;

var builder = WebApplication.CreateBuilder(args);

// No Redis configured (Redis__Configuration, appsettings.json): a real RESP server, Microsoft's Garnet, runs inside
// this process, so the demo needs nothing but the .NET SDK.
var server = DemoServer.EmbedWhenUnconfigured(builder);

// The one-line swap: this was builder.Services.AddStackExchangeRedisCache(...). Tuned by the "Redis" section of
// appsettings.json (or Redis__Configuration, Redis__UnavailableWindow, ...) and, winning over both, the flat
// TCP_KEEPALIVE_* / REDIS_CACHE_* environment variables.
builder.Services.AddResilientStackExchangeRedisCache(builder.Configuration.GetSection("Redis"));

// What the demo shows on top of that cache: session, output caching, HybridCache and the health check.
builder.Services.AddDemo();

var app = builder.Build();
Console.WriteLine($"Cache server: {server.Description}");
app.MapDemo();
app.Run();

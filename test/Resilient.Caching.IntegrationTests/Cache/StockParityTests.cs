using System.Buffers;
using System.Globalization;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Cache;

/// <summary>
/// What a caller (or its tests) observes, ours against the stock <see cref="RedisCache"/> on the same redis-server:
/// expiration errors and their clock, null writers, sliding refresh. Argument errors that need no Redis are checked
/// in the unit tests (ArgumentParityTests), registrations in RegistrationTests.
/// </summary>
public sealed class StockParityTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private LabCache _lab = null!;
    private RedisCache _stock = null!;
    private IBufferDistributedCache _ours = null!;

    /// <summary>The application's clock, a day ahead of the system clock (as a test clock often is).</summary>
    private readonly FakeTimeProvider _appClock = new(DateTimeOffset.UtcNow.AddDays(1));

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        _stock = new RedisCache(Options.Create(new RedisCacheOptions { Configuration = _redis.ConnectionString, InstanceName = "stock:" }));

        // The default timeouts: a loaded machine must not turn a slow call into a made-up miss, which the stock
        // provider never gives.
        _lab = new LabCache(
            _redis.ConnectionString,
            o =>
            {
                Lab.UseDefaultTimeouts(o);
                o.InstanceName = "ours:";
            },
            services: s => s.AddSingleton<TimeProvider>(_appClock));
        _ours = (IBufferDistributedCache)_lab.Provider.GetRequiredService<IDistributedCache>();

        // Connected before the first call, whatever the timeouts: a synchronous call, or one that writes the caller's
        // buffers, that waited more than a few ms for a cold connection takes its fallback by design.
        await _lab.WaitForConnectionAsync();
    }

    public async ValueTask DisposeAsync()
    {
        _stock.Dispose();
        await _lab.DisposeAsync();
        await _redis.DisposeAsync();
    }

    public static TheoryData<string> SetCalls => ["Set", "SetAsync", "Set(sequence)", "SetAsync(sequence)"];

    [Theory]
    [MemberData(nameof(SetCalls))]
    public async Task PastAbsoluteExpiration_IsRejectedExactlyAsByTheStockProvider(string call)
    {
        var past = DateTimeOffset.UtcNow.AddMinutes(-1);
        var options = new DistributedCacheEntryOptions { AbsoluteExpiration = past };

        var expected = await Observe(() => Set(_stock, call, "past", options));
        var actual = await Observe(() => Set(_ours, call, "past", options));

        Assert.Equal("ArgumentOutOfRangeException", expected.Type);
        Assert.Equal(expected, actual);
    }

    [Theory]
    [MemberData(nameof(SetCalls))]
    public async Task AbsoluteExpiration_IsJudgedByTheClockOfTheInnerCache_NotTheApplicationsTimeProvider(string call)
    {
        // In the future for the system clock, in the past for the application's (a day ahead): the stock provider
        // accepts it, and so must we.
        var inAnHour = DateTimeOffset.UtcNow.AddHours(1);
        Assert.True(inAnHour < _appClock.GetUtcNow());
        var options = new DistributedCacheEntryOptions { AbsoluteExpiration = inAnHour };

        Assert.Equal(("completed", null, null, null), await Observe(() => Set(_stock, call, "hour", options)));
        Assert.Equal(("completed", null, null, null), await Observe(() => Set(_ours, call, "hour", options)));
        AssertClose(await Ttl("stock:hour"), await Ttl("ours:hour"));
        Assert.InRange(await Ttl("ours:hour"), 3_590_000, 3_600_000);
    }

    [Fact]
    public async Task NullWriter_BehavesAsInTheStockProvider_OnAMissAndOnAHit()
    {
        IBufferDistributedCache stock = _stock;
        Assert.Equal(await Observe(() => stock.TryGet("absent", null!)), await Observe(() => _ours.TryGet("absent", null!)));
        Assert.Equal(await Observe(() => stock.TryGetAsync("absent", null!).AsTask()), await Observe(() => _ours.TryGetAsync("absent", null!).AsTask()));
        Assert.Equal(("returned", null, null, "False"), await Observe(() => _ours.TryGet("absent", null!)));

        await stock.SetAsync("present", [1], new DistributedCacheEntryOptions(), Ct);
        await _ours.SetAsync("present", [1], new DistributedCacheEntryOptions(), Ct);
        var expected = await Observe(() => stock.TryGet("present", null!));
        Assert.NotEqual("returned", expected.How);
        Assert.Equal(expected, await Observe(() => _ours.TryGet("present", null!)));
        Assert.Equal(await Observe(() => stock.TryGetAsync("present", null!).AsTask()), await Observe(() => _ours.TryGetAsync("present", null!).AsTask()));
    }

    [Fact]
    public async Task SlidingExpiration_IsRefreshedByGetAndRefresh_AndCappedByTheAbsolute_AsByTheStockProvider()
    {
        var sliding = new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromSeconds(50) };
        var capped = new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromSeconds(50), AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(20) };
        foreach (var (cache, prefix) in new[] { ((IDistributedCache)_stock, "stock:"), (_ours, "ours:") })
        {
            await cache.SetAsync("slide-get", [1], sliding, Ct);
            await cache.SetAsync("slide-refresh", [1], sliding, Ct);
            await cache.SetAsync("slide-refresh-async", [1], sliding, Ct);
            await cache.SetAsync("capped", [1], capped, Ct);
            foreach (var key in new[] { "slide-get", "slide-refresh", "slide-refresh-async", "capped" })
            {
                await _redis.ExecuteAsync("PEXPIRE", prefix + key, "10000");
            }

            Assert.NotNull(await cache.GetAsync("slide-get", Ct));
            cache.Refresh("slide-refresh");
            await cache.RefreshAsync("slide-refresh-async", Ct);
            Assert.NotNull(await cache.GetAsync("capped", Ct));
        }

        foreach (var key in new[] { "slide-get", "slide-refresh", "slide-refresh-async" })
        {
            AssertClose(await Ttl("stock:" + key), await Ttl("ours:" + key));
            Assert.InRange(await Ttl("ours:" + key), 45_000, 50_000);
        }

        AssertClose(await Ttl("stock:capped"), await Ttl("ours:capped"));
        Assert.InRange(await Ttl("ours:capped"), 15_000, 20_000);
    }

    [Fact]
    public async Task SubSecondExpirations_ExpireAtOnce_AsInTheStockProvider()
    {
        var options = new[]
        {
            new DistributedCacheEntryOptions { AbsoluteExpiration = DateTimeOffset.UtcNow.AddSeconds(0.5) },
            new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(0.25) },
            new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromSeconds(0.25) },
        };
        for (var i = 0; i < options.Length; i++)
        {
            await _stock.SetAsync($"sub-{i}", [1], options[i], Ct);
            await _ours.SetAsync($"sub-{i}", [1], options[i], Ct);
            Assert.Equal(await _stock.GetAsync($"sub-{i}", Ct), await _ours.GetAsync($"sub-{i}", Ct));
            Assert.Null(await _ours.GetAsync($"sub-{i}", Ct));
        }
    }

    private static object? Set(IBufferDistributedCache cache, string call, string key, DistributedCacheEntryOptions options) => call switch
    {
        "Set" => Run(() => cache.Set(key, [1], options)),
        "SetAsync" => cache.SetAsync(key, [1], options, Ct),
        "Set(sequence)" => Run(() => cache.Set(key, new ReadOnlySequence<byte>([1]), options)),
        _ => cache.SetAsync(key, new ReadOnlySequence<byte>([1]), options, Ct).AsTask(),
    };

    private static object? Run(Action action)
    {
        action();
        return null;
    }

    /// <summary>How a call ended: thrown, a faulted task, or completed; with the exception's type, parameter and value.</summary>
    private static async Task<(string How, string? Type, string? ParamName, string? Value)> Observe(Func<object?> call)
    {
        object? result;
        try
        {
            result = call();
        }
        catch (Exception exception)
        {
            return ("thrown", exception.GetType().Name, (exception as ArgumentException)?.ParamName, Describe(exception));
        }

        if (result is not Task task)
        {
            return result is null ? ("completed", null, null, null) : ("returned", null, null, result.ToString());
        }

        try
        {
            await task;
            return ("completed", null, null, null);
        }
        catch (Exception exception)
        {
            return ("faulted task", exception.GetType().Name, (exception as ArgumentException)?.ParamName, Describe(exception));
        }
    }

    private static string Describe(Exception exception) =>
        exception is ArgumentOutOfRangeException range ? $"{range.ActualValue} {range.Message}" : exception.Message;

    private async Task<long> Ttl(string key)
    {
        var reply = await _redis.ExecuteAsync("PTTL", key);
        return long.Parse(reply.AsSpan(1).Trim(), CultureInfo.InvariantCulture);
    }

    private static void AssertClose(long expected, long actual) => Assert.InRange(actual, expected - 2_000, expected + 2_000);
}

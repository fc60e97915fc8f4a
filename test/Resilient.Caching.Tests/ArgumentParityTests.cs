using System.Buffers;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Options;

namespace Resilient.Caching.Tests;

/// <summary>
/// Argument errors as the stock <see cref="RedisCache"/> reports them, checked against the stock cache itself: the
/// same exception, the same parameter name, thrown by the same methods (the others return a faulted task) — and the
/// same inside the unavailable window. The stock cache checks these before it connects, so no Redis is needed.
/// </summary>
public sealed class ArgumentParityTests
{
    private static readonly DistributedCacheEntryOptions s_entry = new();
    private static readonly byte[] s_value = [1];

    /// <summary>Each call, on any IBufferDistributedCache.</summary>
    public static readonly Dictionary<string, Func<IBufferDistributedCache, object?>> Calls = new()
    {
        ["Get(null)"] = c => c.Get(null!),
        ["GetAsync(null)"] = c => c.GetAsync(null!),
        ["TryGet(null, writer)"] = c => c.TryGet(null!, new ArrayBufferWriter<byte>()),
        ["TryGetAsync(null, writer)"] = c => c.TryGetAsync(null!, new ArrayBufferWriter<byte>()).AsTask(),
        ["Set(null, value, options)"] = c => Run(() => c.Set(null!, s_value, s_entry)),
        ["Set(key, null, options)"] = c => Run(() => c.Set("k", (byte[])null!, s_entry)),
        ["Set(null, null, options)"] = c => Run(() => c.Set(null!, (byte[])null!, s_entry)),
        ["Set(key, value, null)"] = c => Run(() => c.Set("k", s_value, null!)),
        ["SetAsync(null, value, options)"] = c => c.SetAsync(null!, s_value, s_entry),
        ["SetAsync(key, null, options)"] = c => c.SetAsync("k", (byte[])null!, s_entry),
        ["SetAsync(key, value, null)"] = c => c.SetAsync("k", s_value, null!),
        ["Set(null, sequence, options)"] = c => Run(() => c.Set(null!, new ReadOnlySequence<byte>(s_value), s_entry)),
        ["Set(key, sequence, null)"] = c => Run(() => c.Set("k", new ReadOnlySequence<byte>(s_value), null!)),
        ["SetAsync(null, sequence, options)"] = c => c.SetAsync(null!, new ReadOnlySequence<byte>(s_value), s_entry).AsTask(),
        ["SetAsync(key, sequence, null)"] = c => c.SetAsync("k", new ReadOnlySequence<byte>(s_value), null!).AsTask(),
        ["Refresh(null)"] = c => Run(() => c.Refresh(null!)),
        ["RefreshAsync(null)"] = c => c.RefreshAsync(null!),
        ["Remove(null)"] = c => Run(() => c.Remove(null!)),
        ["RemoveAsync(null)"] = c => c.RemoveAsync(null!),
    };

    public static TheoryData<string> CallNames => [.. Calls.Keys];

    [Theory]
    [MemberData(nameof(CallNames))]
    public async Task ArgumentError_IsTheStockProvidersOwn_InAndOutsideTheWindow(string call)
    {
        using var stock = new RedisCache(Options.Create(new RedisCacheOptions { Configuration = "127.0.0.1:1,abortConnect=false,connectTimeout=50" }));
        var expected = await Observe(stock, call);
        Assert.NotEqual("returned", expected.How);

        using var h = new Harness();
        Assert.Equal(expected, await Observe(h.Cache, call));
        h.OpenWindow();
        Assert.Equal(expected, await Observe(h.Cache, call));
        Assert.Equal(1, h.Inner.Calls);
    }

    private static async Task<(string How, string? Type, string? ParamName)> Observe(IBufferDistributedCache cache, string call)
    {
        object? result;
        try
        {
            result = Calls[call](cache);
        }
        catch (Exception exception)
        {
            return ("thrown", exception.GetType().Name, (exception as ArgumentException)?.ParamName);
        }

        if (result is not Task task)
        {
            return ("returned", null, null);
        }

        try
        {
            await task;
            return ("returned", null, null);
        }
        catch (Exception exception)
        {
            return ("faulted task", exception.GetType().Name, (exception as ArgumentException)?.ParamName);
        }
    }

    private static object? Run(Action action)
    {
        action();
        return null;
    }
}

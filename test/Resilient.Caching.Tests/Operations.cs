using System.Buffers;
using Microsoft.Extensions.Caching.Distributed;

namespace Resilient.Caching.Tests;

/// <summary>Every operation of the decorator, by name, so that each test runs over all of them.</summary>
internal static class Operations
{
    private static readonly DistributedCacheEntryOptions s_entry = new() { SlidingExpiration = TimeSpan.FromMinutes(5) };
    private static readonly byte[] s_value = [1, 2, 3];

    public static readonly Dictionary<string, Action<ResilientDistributedCache>> Sync = new()
    {
        ["Get"] = c => Assert.Null(c.Get("k")),
        ["TryGet"] = c => Assert.False(c.TryGet("k", new ArrayBufferWriter<byte>())),
        ["Set"] = c => c.Set("k", s_value, s_entry),
        ["SetSequence"] = c => c.Set("k", new ReadOnlySequence<byte>(s_value), s_entry),
        ["Refresh"] = c => c.Refresh("k"),
        ["Remove"] = c => c.Remove("k"),
    };

    public static readonly Dictionary<string, Func<ResilientDistributedCache, CancellationToken, Task>> Async = new()
    {
        ["GetAsync"] = async (c, ct) => Assert.Null(await c.GetAsync("k", ct)),
        ["TryGetAsync"] = async (c, ct) => Assert.False(await c.TryGetAsync("k", new ArrayBufferWriter<byte>(), ct)),
        ["SetAsync"] = (c, ct) => c.SetAsync("k", s_value, s_entry, ct),
        ["SetSequenceAsync"] = (c, ct) => c.SetAsync("k", new ReadOnlySequence<byte>(s_value), s_entry, ct).AsTask(),
        ["RefreshAsync"] = (c, ct) => c.RefreshAsync("k", ct),
        ["RemoveAsync"] = (c, ct) => c.RemoveAsync("k", ct),
    };

    /// <summary>Calls with a null key, which must throw whatever the state of the window.</summary>
    public static readonly Dictionary<string, Func<ResilientDistributedCache, Task>> NullKey = new()
    {
        ["Get"] = c => Task.FromResult(c.Get(null!)),
        ["GetAsync"] = c => c.GetAsync(null!),
        ["TryGet"] = c => Task.FromResult(c.TryGet(null!, new ArrayBufferWriter<byte>())),
        ["TryGetAsync"] = c => c.TryGetAsync(null!, new ArrayBufferWriter<byte>()).AsTask(),
        ["Set"] = c => { c.Set(null!, s_value, s_entry); return Task.CompletedTask; },
        ["SetAsync"] = c => c.SetAsync(null!, s_value, s_entry),
        ["Refresh"] = c => { c.Refresh(null!); return Task.CompletedTask; },
        ["RefreshAsync"] = c => c.RefreshAsync(null!),
        ["Remove"] = c => { c.Remove(null!); return Task.CompletedTask; },
        ["RemoveAsync"] = c => c.RemoveAsync(null!),
    };

    public static TheoryData<string> SyncNames => [.. Sync.Keys];

    public static TheoryData<string> AsyncNames => [.. Async.Keys];

    /// <summary>The async calls that hold the caller's buffers (ReadOnlySequence, IBufferWriter).</summary>
    public static readonly string[] HoldingCallerMemory = ["TryGetAsync", "SetSequenceAsync"];

    public static TheoryData<string> AbandonableAsyncNames => [.. Async.Keys.Except(HoldingCallerMemory)];

    public static TheoryData<string> CallerMemoryAsyncNames => [.. HoldingCallerMemory];

    public static TheoryData<string> NullKeyNames => [.. NullKey.Keys];

    public static TheoryData<string, Fault> AsyncFailures
    {
        get
        {
            var data = new TheoryData<string, Fault>();
            foreach (var name in Async.Keys)
            {
                foreach (var fault in new[] { Fault.ThrowsSynchronously, Fault.ReturnsFaultedTask, Fault.FaultsAfterYielding })
                {
                    data.Add(name, fault);
                }
            }

            return data;
        }
    }
}

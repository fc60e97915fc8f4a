using System.Text;
using Resilient.Caching.Recovery;
using Resilient.Caching.Topology;
using StackExchange.Redis;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Tests.Topology;

/// <summary>
/// The per-shard window on the decorator's own logic (three primaries as a cluster reports them): a failure of one
/// shard's key keeps only that shard's keys off Redis, its probe writes a key of its own slots, a failover keeps the
/// shard's window, and the path of a skipped call allocates nothing.
/// </summary>
public sealed class ShardWindowTests : IDisposable
{
    private readonly Harness _h = new();
    private readonly ShardMap _map;

    public ShardWindowTests()
    {
        _map = _h.Core.Shards;
        _map.Apply(
        [
            new("10.0.0.2:6379", [new SlotRange(5461, 10922)], HasReplica: false),
            new("10.0.0.1:6379", [new SlotRange(0, 5460)], HasReplica: false),
            new("10.0.0.3:6379", [new SlotRange(10923, 16383)], HasReplica: false),
        ]);
    }

    [Fact]
    public void Layout_ShardsByFirstSlot_EveryKeyToTheShardOfItsSlot()
    {
        Assert.True(_map.IsCluster);
        Assert.Equal(["10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"], _map.Shards.Select(s => s.ServerAddress));
        Assert.Equal("0-5460", _map.Shards[0].Slots);
        foreach (var key in Enumerable.Range(0, 200).Select(i => $"key-{i}"))
        {
            var slot = HashSlot.Of(Encoding.UTF8.GetBytes("app:" + key)); // the cache stores a key under its InstanceName
            var expected = slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2;
            Assert.Same(_map.Shards[expected], _map.ShardOf(KeyKind.CacheKey, key));
        }

        Assert.Null(_map.ShardOf(KeyKind.OutputCacheTag, "tag"));
        foreach (var shard in _map.Shards)
        {
            var probeSlot = HashSlot.Of(Encoding.UTF8.GetBytes(shard.ProbeKey));
            Assert.Same(shard, _map.Shards.Single(s => s.FirstSlot <= probeSlot && probeSlot <= (s.FirstSlot == 0 ? 5460 : s.FirstSlot == 5461 ? 10922 : 16383)));
        }
    }

    [Fact]
    public void ShardSlots_AreTypedRanges_WrittenAsRedisWritesThem()
    {
        _map.Apply([new("10.0.0.1:6379", [new SlotRange(7, 7), new SlotRange(0, 5), new SlotRange(6, 6), new SlotRange(8, 16383)], HasReplica: false)]);

        Assert.Equal([new CacheSlotRange(0, 5), new CacheSlotRange(6, 6), new CacheSlotRange(7, 7), new CacheSlotRange(8, 16383)], Assert.Single(_h.Availability.Shards).Slots);
        _map.Apply([new("10.0.0.1:6379", [new SlotRange(7, 7), new SlotRange(0, 5)], HasReplica: false), new("10.0.0.2:6379", [new SlotRange(6, 6), new SlotRange(8, 16383)], HasReplica: false)]);
        var slots = _h.Availability.Shards[0].Slots;
        Assert.Equal([new CacheSlotRange(0, 5), new CacheSlotRange(7, 7)], slots);
        Assert.Equal("0-5,7", string.Join(",", slots));
        Assert.Equal("0-5460", new CacheSlotRange(0, 5460).ToString());
        Assert.Equal("42", new CacheSlotRange(42, 42).ToString());
        Assert.Equal(6, slots[0].Count);
        Assert.True(slots[1].Contains(7));
        Assert.False(slots[0].Contains(6));
        Assert.IsNotType<CacheSlotRange[]>(slots);
        Assert.Equal("0-5,7", _map.Shards[0].Slots);
    }

    [Fact]
    public void FailureOfOneShardsKey_KeepsOnlyThatShardOffRedis()
    {
        var (down, up) = KeysOnTwoShards();
        _h.Inner.Fault = Fault.ThrowsSynchronously;
        Assert.Null(_h.Cache.Get(down));
        _h.Inner.Fault = Fault.None;
        _h.Inner.Set(up, [7], new());
        var callsBefore = _h.Inner.Calls;

        Assert.Null(_h.Cache.Get(down));
        Assert.Equal(callsBefore, _h.Inner.Calls);
        Assert.Equal([7], _h.Cache.Get(up));

        var shards = _h.Availability.Shards;
        Assert.Single(shards, s => !s.IsAvailable);
        Assert.False(_h.Availability.IsAvailable);
        Assert.Equal(1, _h.Availability.Outages);
        Assert.Equal(0, _h.Connection.Resets);
    }

    [Fact]
    public async Task ShardProbe_ClosesOnlyItsWindow_AndTheShardKeepsItAcrossAFailover()
    {
        var (down, _) = KeysOnTwoShards();
        _h.Inner.Fault = Fault.ThrowsSynchronously;
        Assert.Null(_h.Cache.Get(down));
        var shard = _map.ShardOf(KeyKind.CacheKey, down)!;

        // A failover: another primary now serves the same slots.
        _map.Apply(_map.Shards.Select(s => new ShardMap.Primary(ReferenceEquals(s, shard) ? "10.0.0.9:6379" : s.ServerAddress, [Range(s)], false)).ToList());
        Assert.Same(shard, _map.ShardOf(KeyKind.CacheKey, down));
        Assert.Equal("10.0.0.9:6379", _h.Availability.Shards.Single(s => !s.IsAvailable).ServerAddress);

        _h.Inner.Fault = Fault.None;
        _h.Time.Advance(TimeSpan.FromSeconds(30));
        Assert.Null(_h.Cache.Get(down));
        await Harness.UntilAsync(() => _h.Availability.IsAvailable);
        Assert.Equal(1, _h.Connection.Probes);
    }

    [Fact]
    public async Task ShardOut_WithAReplica_IsUsedAgainOnceTheReplicaTookOver_WithoutWaitingForItsWindowOrTheClient()
    {
        var (down, _) = KeysOnTwoShards();
        var shard = _map.ShardOf(KeyKind.CacheKey, down)!;
        var replica = new System.Net.DnsEndPoint("10.0.0.4", 6379);
        _map.Apply(_map.Shards.Select(s => new ShardMap.Primary(s.ServerAddress, [Range(s)], ReferenceEquals(s, shard), ReferenceEquals(s, shard) ? [replica] : [])).ToList());
        _h.Inner.Fault = Fault.ThrowsSynchronously;
        Assert.Null(_h.Cache.Get(down));
        await Harness.UntilAsync(() => shard.Controller.IsOutage);
        _h.Inner.Fault = Fault.None;

        // Its replicas are asked, nothing more: the window (30 s of a clock that does not move) stays open.
        await Harness.UntilAsync(() => _h.Connection.TakeoverChecks >= 2);
        var probes = _h.Connection.Probes;
        Assert.False(shard.Controller.IsAvailable);

        // The replica says it is a primary now: the shard is probed at once, through the client's routing, and used again.
        _h.Connection.TakenOver = replicas => replicas.SequenceEqual([replica]);
        await Harness.UntilAsync(() => _h.Availability.IsAvailable);
        Assert.Equal(probes + 1, _h.Connection.Probes);
        var checks = _h.Connection.TakeoverChecks;
        await Task.Delay(600, TestContext.Current.CancellationToken);
        Assert.Equal(checks, _h.Connection.TakeoverChecks);
    }

    [Fact]
    public void ShardOutWhoseSlotsMoveAway_NoLongerCountsAsOut()
    {
        var (down, _) = KeysOnTwoShards();
        _h.Inner.Fault = Fault.ThrowsSynchronously;
        Assert.Null(_h.Cache.Get(down));
        var shard = _map.ShardOf(KeyKind.CacheKey, down)!;
        Assert.True(_map.AnyShardOut);

        // A resharding: the other two primaries take its slots.
        var others = _map.Shards.Where(s => !ReferenceEquals(s, shard)).ToList();
        _map.Apply(
        [
            new(others[0].ServerAddress, [new SlotRange(0, 8191)], false),
            new(others[1].ServerAddress, [new SlotRange(8192, 16383)], false),
        ]);

        Assert.False(_map.AnyShardOut);
        Assert.True(_h.Availability.IsAvailable);
        Assert.DoesNotContain(shard, _map.Shards);
    }

    [Fact]
    public void ShardOut_WhoseSlotsNoPrimaryClaimsForAMoment_KeepsItsWindow_UntilItsReplicaTakesThemOver()
    {
        var (down, _) = KeysOnTwoShards();
        _h.Inner.Fault = Fault.ThrowsSynchronously;
        Assert.Null(_h.Cache.Get(down));
        var shard = _map.ShardOf(KeyKind.CacheKey, down)!;
        var address = shard.ServerAddress;
        Assert.True(_map.AnyShardOut);

        // Mid-failover: the failed primary is no longer listed, its replica not promoted yet.
        var others = _map.Shards.Where(s => !ReferenceEquals(s, shard)).ToList();
        _map.Apply([.. others.Select(s => new ShardMap.Primary(s.ServerAddress, [Range(s)], false))]);

        Assert.Contains(shard, _map.Shards);
        Assert.False(shard.Retired);
        Assert.Same(shard, _map.ShardOf(KeyKind.CacheKey, down));
        Assert.Equal(address, shard.ServerAddress);
        Assert.True(_map.AnyShardOut);

        // Promoted: the same shard, its window still open, now at the replica's address.
        _map.Apply([.. _map.Shards.Select(s => new ShardMap.Primary(ReferenceEquals(s, shard) ? "10.0.0.9:6379" : s.ServerAddress, [Range(s)], false))]);
        Assert.Same(shard, _map.ShardOf(KeyKind.CacheKey, down));
        Assert.Equal("10.0.0.9:6379", shard.ServerAddress);
        Assert.False(shard.Controller.IsAvailable);
        Assert.Equal(3, _map.Shards.Count);
    }

    [Fact]
    public void SkippedCall_OfAShardOut_AllocatesNothing()
    {
        var (down, _) = KeysOnTwoShards();
        _h.Inner.Fault = Fault.ThrowsSynchronously;
        Assert.Null(_h.Cache.Get(down));
        _h.Cache.Set(down, [1], new());
        Assert.Null(_h.Cache.Get(down));

        // The key's records exist now (their first write allocates); later calls only find them.
        _h.Cache.Remove(down);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            _ = _h.Cache.Get(down);
            _h.Cache.Remove(down);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    public void Dispose() => _h.Dispose();

    private static SlotRange Range(Shard shard) => shard.FirstSlot switch
    {
        0 => new SlotRange(0, 5460),
        5461 => new SlotRange(5461, 10922),
        _ => new SlotRange(10923, 16383),
    };

    /// <summary>Two keys on different shards.</summary>
    private (string Down, string Up) KeysOnTwoShards()
    {
        var down = "a";
        var up = Enumerable.Range(0, 100).Select(i => $"b{i}").First(k => !ReferenceEquals(_map.ShardOf(KeyKind.CacheKey, k), _map.ShardOf(KeyKind.CacheKey, down)));
        return (down, up);
    }
}

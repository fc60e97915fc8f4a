using System.Collections.Concurrent;
using Moq;
using StackExchange.Redis;

namespace Resilient.Caching.Tests.Recovery;

/// <summary>
/// An <see cref="IDatabase"/> that only takes <c>UNLINK</c>/<c>DEL</c> (what a replay sends) and remembers each call,
/// with the reply chosen per call; and a server whose <c>SCAN</c> yields given keys, for the purge.
/// </summary>
internal sealed class FakeRedisDatabase
{
    private readonly Mock<IDatabase> _database = new(MockBehavior.Strict);
    private readonly Mock<IConnectionMultiplexer> _multiplexer = new(MockBehavior.Strict);
    private int _calls;

    public FakeRedisDatabase()
    {
        _database.Setup(d => d.ExecuteAsync(It.IsAny<string>(), It.IsAny<object[]>()))
            .Returns((string command, object[] args) => OnCommand(command, args));
        _database.SetupGet(d => d.Database).Returns(0);
        _database.SetupGet(d => d.Multiplexer).Returns(_multiplexer.Object);
        _multiplexer.Setup(m => m.HashSlot(It.IsAny<RedisKey>())).Returns((RedisKey key) => Slot(key.ToString()));
    }

    /// <summary>The hash slot of a key; by default one slot for all, as on a single server.</summary>
    public Func<string, int> Slot { get; set; } = _ => -1;

    public IDatabase Database => _database.Object;

    /// <summary>Every command sent, in order, with its keys as Redis sees them.</summary>
    public ConcurrentQueue<(int Call, string Command, string[] Keys)> Commands { get; } = new();

    /// <summary>Decides the reply to a call (0-based); by default every call succeeds at once.</summary>
    public Func<int, string[], Task<RedisResult>> Reply { get; set; } = (_, keys) => Task.FromResult(RedisResult.Create(keys.Length));

    /// <summary>The keys of the calls whose reply succeeded.</summary>
    public HashSet<string> Acknowledged { get; } = [];

    public void ScanYields(params (string Pattern, string[] Keys)[] scans)
    {
        var server = new Mock<IServer>(MockBehavior.Strict);
        server.SetupGet(s => s.IsReplica).Returns(false);
        server.Setup(s => s.KeysAsync(0, It.IsAny<RedisValue>(), It.IsAny<int>(), It.IsAny<long>(), It.IsAny<int>(), It.IsAny<CommandFlags>()))
            .Returns((int _, RedisValue pattern, int _, long _, int _, CommandFlags _) =>
                Yield(scans.Where(s => s.Pattern == (string?)pattern).SelectMany(s => s.Keys)));
        _multiplexer.Setup(m => m.GetServers()).Returns([server.Object]);
    }

    private static async IAsyncEnumerable<RedisKey> Yield(IEnumerable<string> keys)
    {
        foreach (var key in keys)
        {
            await Task.Yield();
            yield return key;
        }
    }

    private Task<RedisResult> OnCommand(string command, object[] args)
    {
        var call = Interlocked.Increment(ref _calls) - 1;
        var keys = args.Select(a => ((RedisKey)a).ToString()).ToArray();
        Commands.Enqueue((call, command, keys));
        return Track(Reply(call, keys), keys);
    }

    private async Task<RedisResult> Track(Task<RedisResult> reply, string[] keys)
    {
        var result = await reply;
        lock (Acknowledged)
        {
            Acknowledged.UnionWith(keys);
        }

        return result;
    }
}

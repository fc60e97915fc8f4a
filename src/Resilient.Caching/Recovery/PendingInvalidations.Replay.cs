using System.Collections.Concurrent;
using System.Text;
using Resilient.Caching.Storage;
using StackExchange.Redis;

namespace Resilient.Caching.Recovery;

internal sealed partial class PendingInvalidations
{
    /// <summary>Keys per <c>UNLINK</c>: large enough that 100,000 keys take a hundred commands, small enough that none blocks Redis.</summary>
    internal const int BatchSize = 1000;

    /// <summary><c>UNLINK</c> commands sent before waiting for the oldest reply: the round trips overlap.</summary>
    internal const int BatchesInFlight = 4;

    /// <summary>Rounds of one replay: records made while a round runs are applied by the next one, a few times over.</summary>
    internal const int MaxRounds = 4;

    /// <summary>
    /// Applies the waiting invalidations to Redis: deletes the recorded keys (pipelined <c>UNLINK</c> batches, <c>DEL</c>
    /// on a Redis older than 4.0) and evicts the recorded tags through <paramref name="evictTag"/>, in a few rounds so
    /// that records made meanwhile are applied too. After an overflow with the purge configured, every key under the
    /// prefixes is deleted instead (<c>SCAN</c> + <c>UNLINK</c> on every primary).
    /// </summary>
    /// <remarks>One replay at a time (the probe's); callers may record throughout.</remarks>
    /// <param name="database">The database the caches use, on the connection the probe just proved.</param>
    /// <param name="evictTag">
    /// Evicts one tag through the inner output-cache store; <see langword="null"/> when there is none (tag records
    /// then stay).
    /// </param>
    /// <param name="include">
    /// Which records to apply now (in a cluster, those of the shards in use); <see langword="null"/> for all. The others
    /// stay recorded.
    /// </param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <returns>What was applied, and how long it took.</returns>
    /// <exception cref="RedisConnectionException">
    /// Redis failed part-way (this, <see cref="RedisTimeoutException"/> or another error exactly as StackExchange.Redis
    /// or <paramref name="evictTag"/> reported it, for the caller's error classification): what was applied is
    /// removed, the rest stays recorded for the next probe.
    /// </exception>
    public async Task<ReplayResult> ReplayAsync(
        IDatabase database, Func<string, CancellationToken, ValueTask>? evictTag, Func<KeyKind, string, bool>? include = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        var started = _timeProvider.GetTimestamp();
        var dropped = Overflow.DroppedSinceReplay;
        var purge = PurgeOnOverflow && dropped != 0;
        long deleted = 0, evicted = 0, purged = 0;
        for (var round = 0; round < MaxRounds && (Count != 0 || (purge && round == 0)); round++)
        {
            // From here on, recording a key already recorded moves it to this generation, which this round leaves to
            // the next one (see Record).
            var generation = Interlocked.Increment(ref _generation);
            var cacheKeys = Snapshot(_cacheKeys, generation, KeyKind.CacheKey, include);
            var entries = Snapshot(_outputEntries, generation, KeyKind.OutputCacheEntry, include);
            var tags = Snapshot(_outputTags, generation, KeyKind.OutputCacheTag, include);
            if (purge && round == 0)
            {
                // Seen before the SCAN starts, so the purge deletes whatever value each of them could have left.
                purged = await PurgeAsync(database, cancellationToken).ConfigureAwait(false);
                AppliedAll(_cacheKeys, cacheKeys);
                AppliedAll(_outputEntries, entries);
                AppliedAll(_outputTags, tags);
                continue;
            }

            deleted += await DeleteAsync(database, _cacheKeys, cacheKeys, _keys.KeyPrefixOf(KeyKind.CacheKey), cancellationToken).ConfigureAwait(false);
            deleted += await DeleteAsync(database, _outputEntries, entries, _keys.KeyPrefixOf(KeyKind.OutputCacheEntry), cancellationToken).ConfigureAwait(false);
            if (evictTag is not null)
            {
                foreach (var seen in tags)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    await evictTag(seen.Key, cancellationToken).ConfigureAwait(false);
                    Applied(_outputTags, seen);
                    evicted++;
                }
            }
        }

        Overflow.Acknowledge(dropped);
        var result = new ReplayResult(deleted, evicted, purged, purge, dropped, Count, _timeProvider.GetElapsedTime(started));
        Volatile.Write(ref _lastReplay, result);
        return result;
    }

    /// <summary>The SCAN patterns of the purge: the distributed cache's prefix, and the output-cache store's keys when they lie elsewhere.</summary>
    internal IReadOnlyList<string> PurgePatterns()
    {
        var cache = _keys.CacheInstanceName;
        var output = _keys.OutputCacheInstanceName;
        List<string> patterns = [Glob(cache) + "*"];
        if (!output.StartsWith(cache, StringComparison.Ordinal))
        {
            patterns.Add(Glob(output + StoredKeys.OutputCacheInfix) + "*");
        }

        return patterns;

        // SCAN MATCH is a glob: a prefix holding * ? [ ] or \ must match itself only.
        static string Glob(string prefix)
        {
            var glob = new StringBuilder(prefix.Length + 8);
            foreach (var c in prefix)
            {
                if (c is '*' or '?' or '[' or ']' or '\\')
                {
                    glob.Append('\\');
                }

                glob.Append(c);
            }

            return glob.ToString();
        }
    }

    private static List<KeyValuePair<string, long>> Snapshot(
        ConcurrentDictionary<string, long> records, long generation, KeyKind kind, Func<KeyKind, string, bool>? include)
    {
        // Enumerating takes no lock, so callers recording meanwhile are not held up by a large snapshot. A record of
        // this generation was made (or made again) after the round began: applying it now could be before its write.
        var snapshot = new List<KeyValuePair<string, long>>();
        foreach (var record in records)
        {
            if (record.Value < generation && (include is null || include(kind, record.Key)))
            {
                snapshot.Add(record);
            }
        }

        return snapshot;
    }

    private void AppliedAll(ConcurrentDictionary<string, long> records, List<KeyValuePair<string, long>> seen)
    {
        foreach (var record in seen)
        {
            Applied(records, record);
        }
    }

    private async Task<long> DeleteAsync(
        IDatabase database, ConcurrentDictionary<string, long> records, List<KeyValuePair<string, long>> seen, RedisKey prefix, CancellationToken cancellationToken)
    {
        if (seen.Count == 0)
        {
            return 0;
        }

        var pipeline = new UnlinkPipeline(database, batch => AppliedAll(records, batch.Seen));
        try
        {
            foreach (var record in seen)
            {
                await pipeline.AddAsync(prefix.Append(record.Key), record, cancellationToken).ConfigureAwait(false);
            }

            await pipeline.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await pipeline.AbandonAsync().ConfigureAwait(false);
            throw;
        }

        return pipeline.Deleted;
    }

    private async Task<long> PurgeAsync(IDatabase database, CancellationToken cancellationToken)
    {
        var pipeline = new UnlinkPipeline(database, applied: null);
        try
        {
            foreach (var server in database.Multiplexer.GetServers())
            {
                if (server.IsReplica)
                {
                    continue;
                }

                foreach (var pattern in PurgePatterns())
                {
                    await foreach (var key in server.KeysAsync(database.Database, pattern, pageSize: BatchSize).WithCancellation(cancellationToken).ConfigureAwait(false))
                    {
                        await pipeline.AddAsync(key, default, cancellationToken).ConfigureAwait(false);
                    }
                }
            }

            await pipeline.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await pipeline.AbandonAsync().ConfigureAwait(false);
            throw;
        }

        return pipeline.Deleted;
    }

    /// <summary>Keys of one hash slot, sent in one command, and the records they apply.</summary>
    private sealed class UnlinkBatch
    {
        public List<object> Keys { get; } = new(BatchSize);

        public List<KeyValuePair<string, long>> Seen { get; } = [];
    }

    /// <summary>
    /// Gathers keys into <c>UNLINK</c> batches per hash slot (a multi-key command must stay within one slot on a
    /// cluster; on a single server every key has the same), sends them with a few batches' worth of keys
    /// outstanding, and hands each acknowledged batch to <c>applied</c>. Not thread-safe: one replay drives it.
    /// </summary>
    private sealed class UnlinkPipeline(IDatabase database, Action<UnlinkBatch>? applied)
    {
        private const int MaxKeysInFlight = BatchSize * BatchesInFlight;

        private readonly Dictionary<int, UnlinkBatch> _filling = [];
        private readonly Queue<(Task<RedisResult> Reply, UnlinkBatch Batch)> _inFlight = new();
        private string _command = "UNLINK";
        private int _keysInFlight;

        /// <summary>Gets how many keys acknowledged batches held.</summary>
        public long Deleted { get; private set; }

        public ValueTask AddAsync(RedisKey key, KeyValuePair<string, long> seen, CancellationToken cancellationToken)
        {
            var slot = database.Multiplexer.HashSlot(key);
            if (!_filling.TryGetValue(slot, out var batch))
            {
                _filling[slot] = batch = new UnlinkBatch();
            }

            batch.Keys.Add(key);
            if (applied is not null)
            {
                batch.Seen.Add(seen);
            }

            if (batch.Keys.Count < BatchSize)
            {
                return ValueTask.CompletedTask;
            }

            _filling.Remove(slot);
            return SendAsync(batch, cancellationToken);
        }

        public async ValueTask CompleteAsync(CancellationToken cancellationToken)
        {
            foreach (var batch in _filling.Values)
            {
                await SendAsync(batch, cancellationToken).ConfigureAwait(false);
            }

            _filling.Clear();
            while (_inFlight.Count != 0)
            {
                await ReceiveOldestAsync().ConfigureAwait(false);
            }
        }

        /// <summary>After a failure: waits for the batches still out, keeps the ones Redis applied, and leaves the error to the caller.</summary>
        public async ValueTask AbandonAsync()
        {
            while (_inFlight.Count != 0)
            {
                try
                {
                    await ReceiveOldestAsync().ConfigureAwait(false);
                }
                catch (Exception exception) when (exception is RedisException or TimeoutException or ObjectDisposedException)
                {
                    // The first error is the one the caller rethrows.
                }
            }
        }

        private async ValueTask SendAsync(UnlinkBatch batch, CancellationToken cancellationToken)
        {
            while (_inFlight.Count != 0 && _keysInFlight + batch.Keys.Count > MaxKeysInFlight)
            {
                await ReceiveOldestAsync().ConfigureAwait(false);
            }

            cancellationToken.ThrowIfCancellationRequested();
            _keysInFlight += batch.Keys.Count;
            _inFlight.Enqueue((database.ExecuteAsync(_command, [.. batch.Keys]), batch));
        }

        private async ValueTask ReceiveOldestAsync()
        {
            var (reply, batch) = _inFlight.Dequeue();
            _keysInFlight -= batch.Keys.Count;
            try
            {
                await reply.ConfigureAwait(false);
            }
            catch (RedisServerException exception) when (exception.Message.Contains("unknown command", StringComparison.OrdinalIgnoreCase)
                && exception.Message.Contains("unlink", StringComparison.OrdinalIgnoreCase))
            {
                // Redis before 4.0: DEL does the same, only synchronously on the server.
                _command = "DEL";
                await database.ExecuteAsync(_command, [.. batch.Keys]).ConfigureAwait(false);
            }

            Deleted += batch.Keys.Count;
            applied?.Invoke(batch);
        }
    }
}

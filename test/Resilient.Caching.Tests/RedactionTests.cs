using Microsoft.Extensions.Logging;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.IntegrationTests.Infrastructure;
using StackExchange.Redis;

namespace Resilient.Caching.Tests;

public sealed class RedactionTests
{
    [Theory]
    [InlineData("127.0.0.1:6379,password=S3cr3tPw!,ssl=false", "127.0.0.1:6379,password=***,ssl=false")]
    [InlineData("host:6379,user=alice-acl,password=S3cr3tPw!", "host:6379,user=***,password=***")]
    [InlineData("PASSWORD = S3cr3t Pw with spaces;next", "PASSWORD=***;next")]
    [InlineData("pwd=S3cr3tPw!&x=1", "pwd=***&x=1")]
    [InlineData("connect to redis://alice-acl:S3cr3tPw!@127.0.0.1:6379/0 failed", "connect to redis://***@127.0.0.1:6379/0 failed")]
    [InlineData("rediss://:S3cr3tPw!@cache:6380", "rediss://***@cache:6380")]
    [InlineData("redis://S3cr3tPw!@cache", "redis://***@cache")]
    [InlineData("redis://alice:p@ss/w:rd@cache:6379", "redis://***@cache:6379")]
    [InlineData("UnableToConnect on Unspecified/redis://alice-acl:S3cr3tPw!@127.0.0.1:6379:0/Interactive", "UnableToConnect on Unspecified/redis://***@127.0.0.1:6379:0/Interactive")]
    [InlineData("nothing to hide: 127.0.0.1:6379", "nothing to hide: 127.0.0.1:6379")]
    public void Redact_MasksEveryFormOfCredential(string text, string expected) =>
        Assert.Equal(expected, Redaction.Redact(text));

    [Fact]
    public void Redact_MasksAConfiguredPassword_WhereverItAppears()
    {
        var secret = "Kn0wn-" + Guid.NewGuid().ToString("N");
        Redaction.AddKnownSecret(secret);

        Assert.Equal("alice:***@host (no key, no scheme)", Redaction.Redact($"alice:{secret}@host (no key, no scheme)"));
    }

    [Fact]
    public void Describe_IsTypeAndFirstLine_Masked()
    {
        var described = Redaction.Describe(
            new InvalidOperationException("connect failed: 127.0.0.1:6379,password=hunter2,ssl=false; Pwd = x1\nsecond line password=y"));

        Assert.Equal("InvalidOperationException: connect failed: 127.0.0.1:6379,password=***,ssl=false; Pwd=***", described);
    }

    [Fact]
    public void ForOutput_KeepsACleanException_AndStandsInForOneThatCarriesASecret()
    {
        var clean = Thrown(() => new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, "no connection to 127.0.0.1:1", null, CommandStatus.Unknown));
        Assert.Same(clean, Redaction.ForOutput(clean));

        var inner = Thrown(() => new InvalidOperationException("AUTH failed for redis://alice-acl:S3cr3tPw!@127.0.0.1:6379"));
        var dirty = Thrown(() => new RedisConnectionException(ConnectionFailureType.AuthenticationFailure, CommandFlags.None, "authentication failed", inner, CommandStatus.Unknown));
        var shown = Assert.IsType<RedactedException>(Redaction.ForOutput(dirty));

        Assert.Equal(typeof(RedisConnectionException), shown.OriginalType);
        Assert.StartsWith("StackExchange.Redis.RedisConnectionException: authentication failed", shown.ToString(), StringComparison.Ordinal);
        Assert.Contains("redis://***@127.0.0.1:6379", shown.ToString(), StringComparison.Ordinal);
        Assert.Equal(dirty.StackTrace, shown.StackTrace);
        Assert.Equal("RedisConnectionException: authentication failed", Redaction.Describe(shown));
        foreach (var text in new[] { shown.ToString(), shown.Message })
        {
            Assert.DoesNotContain("S3cr3tPw", text, StringComparison.Ordinal);
            Assert.DoesNotContain("alice-acl", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ForOutput_StandsIn_WhenOnlyTheDataCarriesASecret()
    {
        var exception = new TimeoutException("timed out");
        exception.Data["Redis-Server"] = "redis://alice-acl:S3cr3tPw!@127.0.0.1:6379";

        Assert.IsType<RedactedException>(Redaction.ForOutput(exception));
    }

    /// <summary>
    /// Every log line that can carry an exception, at Trace, through a real logger provider that writes what a console
    /// or file logger would: the message, every structured value, and the attached exception's ToString().
    /// </summary>
    [Fact]
    public async Task EveryLoggedPath_AtTrace_CarriesNoSecret()
    {
        var sink = new TextLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(sink));
        var logger = factory.CreateLogger<ResilientDistributedCache>();
        using var h = new Harness();
        var guard = new CacheGuard(h.Controller, h.Connection, h.Metrics, logger, ignoreExceptions: true, logIgnoredExceptions: true, Harness.OperationTimeout, h.Pending)
        {
            // As the harness's own guard is told: the timeouts below are Redis's, whatever the test run's thread pool
            // is doing (a timeout seen on a busy pool is a suspicion, and the log lines would then be other ones).
            IsThreadPoolStarved = () => h.ThreadPoolStarved,
        };
        var cache = new ResilientDistributedCache(guard, h.Connection, () => h.Inner, disposeInner: false);
        var ct = TestContext.Current.CancellationToken;

        // The probes (run by the harness's connection against the same inner cache) fail synchronously: every log
        // line below is written before the call returns.
        const string Leaky = "redis://alice-acl:S3cr3tPw!@127.0.0.1:6379,password=S3cr3tPw!";
        h.Inner.Fault = Fault.ThrowsSynchronously;
        h.Inner.Error = () => new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, $"UnableToConnect on {Leaky}",
            new InvalidOperationException($"inner: {Leaky}"), CommandStatus.Unknown);
        Assert.Null(await cache.GetAsync("k", ct));                                  // FailureSuspected, then WindowOpened
        h.Time.Advance(h.Availability.Window);
        Assert.Null(await cache.GetAsync("k", ct));                                  // ProbeFailed

        h.Inner.Error = () => new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, $"WRONGPASS invalid username-password pair ({Leaky})");
        h.Time.Advance(h.Availability.Window);
        Assert.Null(await cache.GetAsync("k", ct));                                  // AuthenticationFailed (reopened)

        // A call in flight when the window opened fails later (Debug).
        h.Inner.Fault = Fault.None;
        h.Time.Advance(h.Availability.Window);
        Assert.Null(await cache.GetAsync("k", ct));                                  // the probe closes the window
        h.Inner.Error = () => new RedisTimeoutException(CommandFlags.None, $"Timeout talking to {Leaky}", CommandStatus.Sent);
        h.Inner.Fault = Fault.Hangs;
        h.Inner.FailAfterRelease = true;
        var inFlight = new[] { cache.GetAsync("a", ct), cache.GetAsync("b", ct) };
        h.Inner.Release.SetResult();
        await Task.WhenAll(inFlight);
        Assert.True(sink.Count(Log.IdErrorWhileUnavailable) >= 1);

        Log.ConnectFailed(logger, new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, Leaky, null, CommandStatus.Unknown), $"no connection to {Leaky}");
        Log.SettingsInForce(logger, $"Redis={Leaky}");
        Log.SocketOptionFailed(logger, new InvalidOperationException(Leaky), "TCP_USER_TIMEOUT", Leaky);
        Log.ErrorWhileUnavailable(logger, new InvalidOperationException(Leaky), "Get", Leaky);
        Log.AbandonedOperationFailed(logger, new InvalidOperationException(Leaky), "Get", Leaky);

        var ids = sink.Ids();
        foreach (var id in new[] { Log.IdFailureSuspected, Log.IdWindowOpened, Log.IdProbeFailed, Log.IdAuthenticationFailed, Log.IdConnectFailed, Log.IdSettingsInForce,
            Log.IdSocketOptionFailed, Log.IdErrorWhileUnavailable, Log.IdAbandonedOperationFailed })
        {
            Assert.Contains(id, ids);
        }

        var written = sink.Text();
        Assert.Contains("RedisConnectionException", written, StringComparison.Ordinal);
        Assert.DoesNotContain("S3cr3tPw", written, StringComparison.Ordinal);
        Assert.DoesNotContain("alice-acl", written, StringComparison.Ordinal);

        // What the application may show (the README suggests LastError on a status page) is masked too.
        var lastError = h.Availability.LastError!;
        Assert.DoesNotContain("S3cr3tPw", lastError.ToString() + lastError.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheStockComponentsWeHost_LogThroughTheSameRedaction()
    {
        var sink = new TextLoggerProvider();
        using var application = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(sink));
        using var hosted = new RedactingLoggerFactory(application);
        var logger = hosted.CreateLogger("Microsoft.AspNetCore.OutputCaching.StackExchangeRedis.RedisOutputCacheStore");

#pragma warning disable CA1848 // As the stock component would log.
        logger.LogError(
            new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, "UnableToConnect on redis://alice-acl:S3cr3tPw!@127.0.0.1:6379", null, CommandStatus.Unknown),
            "GC failed for {Server}", "redis://alice-acl:S3cr3tPw!@127.0.0.1:6379");
#pragma warning restore CA1848

        var written = sink.Text();
        Assert.Contains("GC failed for redis://***@127.0.0.1:6379", written, StringComparison.Ordinal);
        Assert.Contains("StackExchange.Redis.RedisConnectionException", written, StringComparison.Ordinal);
        Assert.DoesNotContain("S3cr3tPw", written, StringComparison.Ordinal);
        Assert.DoesNotContain("alice-acl", written, StringComparison.Ordinal);
    }

    private static Exception Thrown(Func<Exception> create)
    {
        try
        {
            throw create();
        }
        catch (Exception exception)
        {
            return exception;
        }
    }
}

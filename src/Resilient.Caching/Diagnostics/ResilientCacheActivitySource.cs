using System.Diagnostics;

namespace Resilient.Caching.Diagnostics;

/// <summary>
/// The <c>Resilient.Caching</c> activity source: window transitions as short activities of their own, so that a
/// trace shows when and why the cache stopped and resumed calling Redis. The opening one is a child of the request
/// whose call failed; the closing one, which a background probe observes, is a root.
/// </summary>
internal static class ResilientCacheActivitySource
{
    public const string Name = "Resilient.Caching";
    public const string OpenedName = "resilient_caching.window.opened";
    public const string ReopenedName = "resilient_caching.window.reopened";
    public const string ClosedName = "resilient_caching.window.closed";
    public const string CacheNameTag = "resilient_caching.cache";
    public const string OperationTag = "resilient_caching.operation";
    public const string OutageTag = "resilient_caching.outage.duration";
    public const string SkippedTag = "resilient_caching.skipped_operations";

    private static readonly ActivitySource s_source = new(Name, typeof(ResilientCacheActivitySource).Assembly.GetName().Version?.ToString(3));

    public static void WindowOpened(string cacheName, CacheOperation operation, Exception exception, bool probeFailure)
    {
        if (!s_source.HasListeners())
        {
            return;
        }

        // A probe runs in the background: its parent would be whichever request happened to start it.
        var ambient = Activity.Current;
        if (probeFailure)
        {
            Activity.Current = null;
        }

        try
        {
            using var activity = s_source.StartActivity(probeFailure ? ReopenedName : OpenedName, ActivityKind.Internal);
            activity?.SetTag(CacheNameTag, cacheName);
            activity?.SetTag(OperationTag, operation.Name());
            activity?.SetTag("error.type", exception.GetType().FullName);
            activity?.SetStatus(ActivityStatusCode.Error, Redaction.Describe(exception));
        }
        finally
        {
            Activity.Current = ambient;
        }
    }

    public static void WindowClosed(string cacheName, TimeSpan outage, long skipped)
    {
        if (!s_source.HasListeners())
        {
            return;
        }

        var ambient = Activity.Current;
        Activity.Current = null;
        try
        {
            using var activity = s_source.StartActivity(ClosedName, ActivityKind.Internal);
            activity?.SetTag(CacheNameTag, cacheName);
            activity?.SetTag(OutageTag, outage.TotalSeconds);
            activity?.SetTag(SkippedTag, skipped);
        }
        finally
        {
            Activity.Current = ambient;
        }
    }
}

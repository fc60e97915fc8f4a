using System.Diagnostics;
using Resilient.Caching.Outages;

namespace Resilient.Caching.Tests.Outages;

/// <summary>When Redis last answered: the evidence a starved pool needs before it excuses a timeout.</summary>
public sealed class RecentAnswersTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    [Fact]
    public void NeverAnswered_IsNotRecent() => Assert.False(new RecentAnswers(Timeout).AnsweredRecently());

    [Fact]
    public void AnAnswer_IsRecentForAnOperationTimeoutAndAHalf()
    {
        var answers = new RecentAnswers(Timeout);

        answers.Answered(Ago(TimeSpan.FromSeconds(2.9)));
        Assert.True(answers.AnsweredRecently());

        var older = new RecentAnswers(Timeout);
        older.Answered(Ago(TimeSpan.FromSeconds(3.1)));
        Assert.False(older.AnsweredRecently());
    }

    [Fact]
    public void ALaterAnswer_Counts_AnEarlierOneDoesNotTurnTheClockBack()
    {
        var answers = new RecentAnswers(Timeout);
        answers.Answered(Ago(TimeSpan.FromSeconds(10)));
        Assert.False(answers.AnsweredRecently());

        answers.Answered(Ago(TimeSpan.FromSeconds(1)));
        answers.Answered(Ago(TimeSpan.FromSeconds(10)));

        Assert.True(answers.AnsweredRecently());
    }

    private static long Ago(TimeSpan span) => Stopwatch.GetTimestamp() - (long)(span.TotalSeconds * Stopwatch.Frequency);
}

using Microsoft.Extensions.Options;

namespace Resilient.Caching.Tests.Recovery;

public sealed class RecoverySettingsTests
{
    [Fact]
    public void Defaults_AreTheDocumentedOnes()
    {
        var options = OptionsTests.Resolve([], env: [], setup: o => o.Configuration = "localhost");

        Assert.Equal(100_000, options.MaxPendingInvalidations);
        Assert.False(options.PurgeInstanceOnOverflow);
    }

    [Fact]
    public void SectionAndEnvironment_AreRead_TheEnvironmentWinning()
    {
        var section = new Dictionary<string, string?>
        {
            ["Redis:Configuration"] = "localhost",
            ["Redis:InstanceName"] = "app:",
            ["Redis:MaxPendingInvalidations"] = "5000",
            ["Redis:PurgeInstanceOnOverflow"] = "true",
        };

        var fromSection = OptionsTests.Resolve(section, env: []);
        Assert.Equal(5000, fromSection.MaxPendingInvalidations);
        Assert.True(fromSection.PurgeInstanceOnOverflow);

        var fromEnvironment = OptionsTests.Resolve(section, new()
        {
            ["REDIS_CACHE_MAX_PENDING_INVALIDATIONS"] = "250000",
            ["REDIS_CACHE_PURGE_INSTANCE_ON_OVERFLOW"] = "off",
        });
        Assert.Equal(250_000, fromEnvironment.MaxPendingInvalidations);
        Assert.False(fromEnvironment.PurgeInstanceOnOverflow);
    }

    [Theory]
    [InlineData("many", "MaxPendingInvalidations = 'many' (from environment variable REDIS_CACHE_MAX_PENDING_INVALIDATIONS) is not valid: expected a whole number of records")]
    [InlineData("0", "MaxPendingInvalidations = '0' (from environment variable REDIS_CACHE_MAX_PENDING_INVALIDATIONS) is not valid: must be from 1 to 10000000 records")]
    [InlineData("10000001", "MaxPendingInvalidations = '10000001' (from environment variable REDIS_CACHE_MAX_PENDING_INVALIDATIONS) is not valid: must be from 1 to 10000000 records")]
    public void AnInvalidBound_FailsStartUp_NamingSourceAndValue(string value, string expected)
    {
        var error = Assert.Throws<OptionsValidationException>(() => OptionsTests.Resolve(
            [], new() { ["REDIS_CACHE_MAX_PENDING_INVALIDATIONS"] = value }, o => o.Configuration = "localhost"));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ThePurge_WithoutAnInstanceName_FailsStartUp()
    {
        var error = Assert.Throws<OptionsValidationException>(() => OptionsTests.Resolve(
            [], new() { ["REDIS_CACHE_PURGE_INSTANCE_ON_OVERFLOW"] = "true" }, o => o.Configuration = "localhost"));

        Assert.Contains("PurgeInstanceOnOverflow = 'true' needs an InstanceName", error.Message, StringComparison.Ordinal);
    }
}

using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.EndToEnd;

/// <summary>What a person sees on the demo's state page, in a real (headless) Chromium: the system's, never a downloaded one.</summary>
public sealed class DemoBrowserTests
{
    private const string Chromium = "/usr/bin/chromium";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task State_page_shows_redis_unavailable_and_the_time_left_during_an_outage()
    {
        if (!File.Exists(Chromium))
        {
            Assert.Skip($"{Chromium} is not installed (Debian/Ubuntu: apt-get install -y chromium).");
        }

        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        await using var demo = await DemoHost.StartAsync(redis.ConnectionString, window: TimeSpan.FromSeconds(30));

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,

            // Playwright gives the browser a fresh, empty profile directory of its own and deletes it on close.
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            Timeout = 30_000,
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1100, Height = 800 } });
        page.SetDefaultTimeout(15_000);

        await page.GotoAsync(demo.Address.ToString());
        await Assertions.Expect(page.Locator("#status")).ToHaveTextAsync("Redis available");
        await Assertions.Expect(page.Locator("#health")).ToHaveTextAsync("Healthy");

        redis.Kill();
        await page.ReloadAsync();

        // The page refreshes itself every 2 s; Expect retries across those reloads.
        await Assertions.Expect(page.Locator("#status")).ToHaveTextAsync("Redis unavailable");
        await Assertions.Expect(page.Locator("#retry-after")).ToHaveTextAsync(new Regex(@"^\d+(\.\d)? s$"));
        await Assertions.Expect(page.Locator("#health")).ToHaveTextAsync("Degraded");
        await Assertions.Expect(page.Locator("#outages")).ToHaveTextAsync("1");
        await Assertions.Expect(page.Locator("#last-error")).ToContainTextAsync("Redis");
        var secondsLeft = double.Parse((await page.Locator("#retry-after").InnerTextAsync()).TrimEnd('s', ' '), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(secondsLeft, 0.1, 30);
    }
}

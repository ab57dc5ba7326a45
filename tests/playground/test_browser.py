"""The playground in a real browser: the page typed into in headless Chromium (Debian's /usr/bin/chromium);
skipped, with the reason, where Chromium or playwright is missing."""
from __future__ import annotations

import os
import shutil

import pytest
from playground_helpers import ROOT

from bot.playground.screenshot import ARGS as CHROMIUM_ARGS

ARTIFACTS = ROOT / "test-artifacts"


def chromium_path(env=os.environ) -> str | None:
    """The Chromium the browser test drives: CHROMIUM_PATH exactly when set, else Debian's, else PATH's."""
    if env.get("CHROMIUM_PATH"):
        return env["CHROMIUM_PATH"] if os.path.isfile(env["CHROMIUM_PATH"]) else None
    return "/usr/bin/chromium" if os.path.isfile("/usr/bin/chromium") else shutil.which("chromium")


def test_chromium_path_respects_an_explicit_path(tmp_path):
    """CHROMIUM_PATH, when set, is used as given: a missing one skips the browser test instead of
    silently falling back to another Chromium."""
    assert chromium_path({"CHROMIUM_PATH": str(tmp_path / "no-chromium")}) is None
    exe = tmp_path / "chromium"
    exe.write_text("")
    assert chromium_path({"CHROMIUM_PATH": str(exe)}) == str(exe)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="package")
async def test_browser_morph_pick_and_screenshot(pg):
    chromium = chromium_path()
    if chromium is None:
        pytest.skip(f"headless Chromium not found ({os.environ.get('CHROMIUM_PATH') or '/usr/bin/chromium, PATH'}; "
                    "Debian: apt-get install chromium, or set CHROMIUM_PATH); "
                    "the browser test of the playground did not run")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install playwright)")
    ARTIFACTS.mkdir(exist_ok=True)
    ada, bob, cleo, yuki = pg.members
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            outside: list[str] = []
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(pg.url) and
                    not r.url.startswith("data:") else None)
            await page.goto(pg.url)
            await page.wait_for_selector("#conn.live")
            assert "untrained offline model (tiny)" in await page.inner_text("#banner")
            await page.select_option("#member-switch", str(ada.id))
            await page.wait_for_function("document.querySelector('#me-name').textContent === 'Ada'")
            await page.wait_for_selector("#conn.live")

            # autocomplete shows the commands while typing
            box = page.locator("#command-input")
            await box.click()
            await box.type("/mor")
            await page.wait_for_selector("#autocomplete:not([hidden]) .ac-row")
            assert "/morph-queue" in await page.inner_text("#autocomplete")
            await box.fill("")

            # user text is shown as text, never as HTML
            await box.type('/morph "<img src=x id=pwned>" cat frames:4')
            await box.press("Enter")
            await page.wait_for_selector(".msg .content:has-text('<img src=x id=pwned>')", timeout=30000)
            assert await page.locator("#pwned").count() == 0

            await box.type("/morph dog cat frames:8 seed:4242")
            await box.press("Enter")
            result = page.locator(".msg", has=page.locator("img[src$='.gif']"), has_text="seed 4242")
            await result.wait_for(timeout=90000)
            gif = result.locator(".attachment img[src$='.gif']")
            # the result's own pictures (older messages' lazy ones, scrolled away, never load)
            await page.wait_for_function("m => [...m.querySelectorAll('img')].every(i => i.complete)",
                                         arg=await result.element_handle())
            assert await gif.evaluate("img => img.naturalWidth") > 0
            assert "dog → cat" in await result.inner_text()
            await result.locator("button.reaction").nth(1).wait_for()
            assert await result.locator("button.btn[data-custom-id^='morph:pick:']").count() >= 2
            assert await result.locator(".select").count() == 2  # the frame menu and the 🔍 refine menu
            # the MP4 (MORPH_FORMAT=both) in a <video> element that plays: the browser read its frames
            video = result.locator(".attachment video[src$='.mp4']")
            assert await video.count() == 1
            await page.wait_for_function("v => v.readyState >= 2 || v.error", arg=await video.element_handle())
            assert await video.evaluate("v => [v.error, v.videoWidth, v.videoHeight]") == [None, 64, 64]
            assert await result.locator("button.reaction").count() >= 2
            result_id = await result.get_attribute("data-id")

            await result.locator("button.btn[data-custom-id^='morph:pick:']").nth(1).click()
            reply = page.locator(".msg", has=page.locator(f".msg-ref[data-target='{result_id}']")).last
            await reply.locator("img[src$='.png']").wait_for(timeout=30000)
            assert await reply.locator("img[src$='.png']").evaluate("img => img.complete && img.naturalWidth > 0")
            assert "Ada" in await reply.inner_text()

            # the select menu opens and a pick from it is answered with another reply
            replies = page.locator(".msg", has=page.locator(f".msg-ref[data-target='{result_id}']"))
            n_replies = await replies.count()
            frame_menu = result.locator(".select").first
            await frame_menu.locator(".select-box").click()
            await frame_menu.locator(".select-menu .select-opt").last.click()
            await page.wait_for_function(
                f"document.querySelectorAll(\".msg-ref[data-target='{result_id}']\").length > {n_replies}")
            await replies.last.locator("img[src$='.png']").wait_for(timeout=30000)

            # a reaction button adds Ada's reaction (MESSAGE_REACTION_ADD): counted, and answered with a reply
            # (3️⃣: candidate 2 she already picked with its button would not be posted again)
            n_replies = await replies.count()
            await result.locator("button.reaction").nth(2).click()
            await page.wait_for_function(
                f"document.querySelectorAll(\".msg-ref[data-target='{result_id}']\").length > {n_replies}")
            await replies.last.locator("img[src$='.png']").wait_for(timeout=30000)
            await result.locator("button.reaction.me").wait_for()
            assert await result.locator("button.reaction").nth(2).locator("span").inner_text() == "2"
            assert "candidate 3" in await replies.last.inner_text()

            # /morph-queue answers only Ada, marked as such
            await box.type("/morph-queue")
            await box.press("Enter")
            await page.wait_for_selector(".msg.ephemeral .eph-note:has-text('Only you can see this')")
            queue_text = await page.inner_text("#queue")
            assert "dog → cat" in queue_text and "delivered" in queue_text.lower()
            await page.wait_for_timeout(1500)  # let the GIF play a little for the screenshot
            await result.scroll_into_view_if_needed()  # the GIF, sheet, buttons and menu in the picture
            await page.screenshot(path=str(ARTIFACTS / "playground.png"))
            if os.environ.get("PLAYGROUND_SCREENSHOT"):
                await page.screenshot(path=os.environ["PLAYGROUND_SCREENSHOT"])

            # the age-restricted channel: listed with its tag; switching shows its own messages and sends there
            dark = page.locator("#channel-list .channel", has_text="after-dark")
            assert await dark.locator(".nsfw-tag").count() == 1
            await dark.click()
            await page.wait_for_function("document.querySelector('#channel-name').textContent === 'after-dark'")
            await page.wait_for_selector("#conn.live")
            assert await page.locator(".msg", has_text="dog → cat").count() == 0  # #morph's messages stay there
            await box.type("/morph-queue")
            await box.press("Enter")
            await page.wait_for_selector(".msg.ephemeral .eph-note:has-text('Only you can see this')")
            assert any(m.channel_id == pg.restricted_channel.id and m.ephemeral for m in pg.fake.all_messages())
            assert not errors, errors
            assert not outside, f"the page fetched something outside the playground: {outside}"
        finally:
            await browser.close()

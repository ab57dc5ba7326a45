"""Make the README's screenshot of the playground: ``python -m bot.playground.screenshot [out.png]``.

Starts a playground (the toy model unless MORPH_MODEL says otherwise), types a morph in headless Chromium
(Debian's /usr/bin/chromium, driven by Playwright), picks a frame and saves the page as a PNG.
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


async def shoot(out: Path, command: str = '/morph "a red circle" "a blue square" seed:3') -> None:
    from playwright.async_api import async_playwright

    from bot.config import Settings
    from bot.playground import Playground

    settings = Settings.from_env(playground=True).replace(cooldown_s=0)
    async with Playground(settings, port=0) as pg, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page(viewport={"width": 1440, "height": 1212}, device_scale_factor=1)
        assert pg.url is not None  # set once the playground started
        await page.goto(pg.url)
        await page.wait_for_selector("#conn.live")
        box = page.locator("#command-input")
        await box.type(command)
        await box.press("Enter")
        result = page.locator(".msg", has=page.locator("img[src$='.gif']")).last
        await result.wait_for(timeout=600_000)
        await page.wait_for_function("document.querySelectorAll('.msg button.reaction').length >= 2")
        await page.locator(".msg button.btn[data-custom-id^='morph:pick:']").nth(2).click()
        await page.locator(".msg-ref ~ .body img[src$='.png'], .msg .attachment img[src$='.png']").last.wait_for()
        await page.wait_for_function("[...document.images].every(i => i.complete)")
        await page.mouse.move(700, 5)  # no hover highlight in the picture
        await page.wait_for_timeout(1200)
        await page.evaluate("document.getElementById('messages').scrollTop = 1e9")
        await result.evaluate("el => el.scrollIntoView({block: 'start'})")
        out.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(out))
        await browser.close()
    print(f"saved {out}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/playground.png")
    asyncio.run(shoot(out, *(argv[1:2])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

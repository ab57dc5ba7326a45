"""The playground: the HTTP/SSE API over the real bot and fake Discord, and a real browser.

The integration tests start one Playground (FakeDiscord + the unmodified MorphBot + the web server on a
free port) with the tiny model and 2 denoising steps, and drive it only through its HTTP API, as the page
does. The browser test types into the page in headless Chromium (Debian's /usr/bin/chromium).
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image

from bot.playground.screenshot import ARGS as CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
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


# ---------------------------------------------------------------------------------------------------------
# The running playground (one per module: the tiny model loads once)
# ---------------------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pg(tiny_morpher, tmp_path_factory):
    from bot.config import Settings
    from bot.playground import Playground
    from bot.playground.app import model_banner

    settings = Settings(model="tiny", cooldown_s=0, pick_cooldown_s=0, default_frames=8, default_steps=2,
                        max_user_active=3)
    playground = Playground(settings, host="127.0.0.1", port=0, morpher_factory=lambda: tiny_morpher,
                            banner=model_banner("tiny"), model="tiny", data_dir=tmp_path_factory.mktemp("pg"))
    await playground.start()
    try:
        yield playground
        # nothing the bot or the page did hit a route the fake Discord does not know
        assert playground.fake.unknown_routes == [], playground.fake.unknown_routes
    finally:
        await playground.stop()


class Stream:
    """An open /api/events stream, as the page's EventSource reads it."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.seen: list[tuple[str, dict]] = []

    async def next(self) -> tuple[str, dict]:
        event, data = "message", []
        while True:
            line = (await self.resp.content.readline()).decode()
            if line == "":
                raise EOFError("stream closed")
            line = line.rstrip("\n")
            if line.startswith(":"):
                continue
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                item = (event, json.loads("\n".join(data)))
                self.seen.append(item)
                return item

    async def wait_for(self, predicate, timeout: float = 60.0) -> dict:
        async def go():
            while True:
                event, data = await self.next()
                if predicate(event, data):
                    return data
        return await asyncio.wait_for(go(), timeout)


@pytest_asyncio.fixture(loop_scope="module")
async def http(pg):
    """A client of the API as the page is: with the per-run token the page carries."""
    async with aiohttp.ClientSession(base_url=pg.url, headers={"X-Playground-Token": pg.server.token}) as session:
        yield session


@contextlib.asynccontextmanager
async def open_stream(http, user):
    """``async with open_stream(http, member) as stream:`` the member's /api/events, closed on exit."""
    resp = await http.get("/api/events", params={"user": str(user.id)}, timeout=aiohttp.ClientTimeout(total=None))
    try:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        yield Stream(resp)
    finally:
        resp.close()


async def post(http, path, body, status=200):
    async with http.post(path, json=body) as resp:
        data = await resp.json()
        assert resp.status == status, data
        return data


def has_gif(event, data):
    return event == "message" and any(a["filename"].endswith(".gif") for a in data.get("attachments", []))


@pytest.mark.asyncio(loop_scope="module")
async def test_state_lists_guild_members_commands_and_banner(pg, http):
    ada, bob, cleo, yuki = pg.members
    async with http.get("/api/state", params={"user": str(bob.id)}) as resp:
        state = await resp.json()
    assert state["guild"]["name"] == "Playground" and state["channel"]["name"] == "morph"
    assert state["me"] == str(bob.id)
    rows = {m["name"]: m for m in state["members"]}
    assert rows["Ada"]["admin"] is True and rows["Bob"]["admin"] is False and rows["morph-bot"]["bot"] is True
    assert rows["Yuki"]["locale"] == "ja" and rows["Bob"]["locale"] == "en-US"
    usages = [c["usage"] for c in state["commands"]]
    assert any(u.startswith("/morph <from> <to>") for u in usages)
    assert "/morphadmin pause" in usages and "/morph-queue" in usages
    assert "untrained offline model (tiny)" in state["banner"] and "MORPH_MODEL=" in state["banner"]
    async with http.get("/") as resp:
        page = await resp.text()
    assert resp.status == 200 and '<script src="/static/app.js">' in page
    assert "http://" not in page and "https://" not in page  # no external asset
    for name in ("app.js", "style.css"):
        async with http.get(f"/static/{name}") as resp:
            text = await resp.text()
            assert resp.status == 200 and "https://" not in text and "@import" not in text
    async with http.get("/static/..%2Fserver.py") as resp:
        assert resp.status == 404
    async with http.get("/api/state", params={"user": "42"}) as resp:
        assert resp.status == 404


@pytest.mark.asyncio(loop_scope="module")
async def test_morph_through_http_api_gives_a_gif_with_the_frame_count_and_picks(pg, http):
    ada, bob, cleo, yuki = pg.members
    async with open_stream(http, bob) as stream:
        await post(http, "/api/command", {"user": str(bob.id), "text": "/morph dog cat frames:6 seed:3"})
        result = await stream.wait_for(has_gif, timeout=90)
        # the status message was shown and then edited in place (same id, new text)
        first = next(d for e, d in stream.seen if e == "message" and d["author"]["bot"])
        versions = [d for e, d in stream.seen if e == "message" and d["id"] == first["id"]]
        assert len(versions) >= 2 and versions[0]["content"] != versions[-1]["content"]
        assert first["interaction"] == {"name": "morph", "user_name": "Bob"}

        gif = next(a for a in result["attachments"] if a["filename"].endswith(".gif"))
        assert gif["url"].startswith("/attachments/")
        async with http.get(gif["url"]) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "image/gif"
            data = await resp.read()
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "GIF" and im.n_frames == 6
        custom_ids = [c["custom_id"] for row in result["components"] for c in row["components"]
                      if c.get("custom_id")]
        picks = [c for c in custom_ids if c.startswith("morph:pick:")]
        assert picks and any(c.startswith("morph:frames:") for c in custom_ids)
        # the bot adds its 1️⃣.. reactions right after posting: they arrive as updates of the same message
        result = await stream.wait_for(lambda e, d: e == "message" and d["id"] == result["id"]
                                       and len(d["reactions"]) >= len(picks), 15)
        assert [r["emoji"] for r in result["reactions"]][:2] == ["1️⃣", "2️⃣"]
        assert all(r["users"] == [str(pg.fake.bot_user.id)] for r in result["reactions"])

        # a pick button → a reply with the PNG of that frame, shown as a reply to the result
        await post(http, "/api/click", {"user": str(cleo.id), "message": result["id"], "custom_id": picks[1]})
        reply = await stream.wait_for(lambda e, d: e == "message" and d.get("reference_id") == result["id"]
                                      and any(a["filename"].endswith(".png") for a in d["attachments"]), 30)
        png = next(a for a in reply["attachments"] if a["filename"].endswith(".png"))
        async with http.get(png["url"]) as resp:
            with Image.open(io.BytesIO(await resp.read())) as im:
                assert im.format == "PNG"
        # the select menu: any frame, sent as a real component interaction with the chosen value
        menu = next(c for row in result["components"] for c in row["components"]
                    if str(c.get("custom_id", "")).startswith("morph:frames:"))
        assert len(menu["options"]) == 6
        err = await post(http, "/api/select", {"user": str(cleo.id), "message": result["id"],
                                               "custom_id": menu["custom_id"], "values": ["nope"]}, status=400)
        assert "does not offer" in err["error"]
        await post(http, "/api/select", {"user": str(cleo.id), "message": result["id"],
                                         "custom_id": menu["custom_id"], "values": [menu["options"][-1]["value"]]})
        by_menu = await stream.wait_for(lambda e, d: e == "message" and d.get("reference_id") == result["id"]
                                        and d["id"] != reply["id"] and d["attachments"], 30)
        assert by_menu["attachments"][0]["filename"].endswith(".png")
        # a reaction goes through MESSAGE_REACTION_ADD: the bot answers with that candidate as a reply too
        before = len([1 for e, d in stream.seen if e == "message" and d.get("reference_id") == result["id"]])
        await post(http, "/api/react", {"user": str(bob.id), "message": result["id"], "emoji": "1️⃣"})
        upd = await stream.wait_for(lambda e, d: e == "message" and d["id"] == result["id"]
                                    and any(str(bob.id) in r["users"] for r in d["reactions"]), 10)
        assert next(r for r in upd["reactions"] if r["emoji"] == "1️⃣")["count"] == 2
        await stream.wait_for(lambda e, d: e == "message" and d.get("reference_id") == result["id"]
                              and d["attachments"] and d["id"] not in (reply["id"], by_menu["id"]), 30)
        assert len([1 for e, d in stream.seen if e == "message" and d.get("reference_id") == result["id"]]) > before
        # the queue panel shows the job as delivered
        async with http.get("/api/queue") as resp:
            jobs = (await resp.json())["jobs"]
        assert any(j["prompts"] == ["dog", "cat"] and j["state"] == "delivered"
                   and j["user_name"] == "Bob" and j["frames"] == 6 for j in jobs)


@pytest.mark.asyncio(loop_scope="module")
async def test_ephemeral_replies_only_reach_their_member(pg, http):
    ada, bob, cleo, yuki = pg.members
    async with open_stream(http, bob) as bob_stream, open_stream(http, cleo) as cleo_stream:
        await post(http, "/api/command", {"user": str(bob.id), "text": "/morph-queue"})
        eph = await bob_stream.wait_for(lambda e, d: e == "message" and d["ephemeral"], 15)
        assert eph["for_user"] == str(bob.id)
        # Cleo's stream gets other things but never Bob's ephemeral message
        await post(http, "/api/command", {"user": str(cleo.id), "text": "/morph-queue"})
        mine = await cleo_stream.wait_for(lambda e, d: e == "message" and d["ephemeral"], 15)
        assert mine["for_user"] == str(cleo.id)
        assert all(d.get("id") != eph["id"] for e, d in cleo_stream.seen)
        async with http.get("/api/state", params={"user": str(cleo.id)}) as resp:
            ids = [m["id"] for m in (await resp.json())["messages"]]
        assert eph["id"] not in ids and mine["id"] in ids
        # nor can Cleo act on it
        await post(http, "/api/react", {"user": str(cleo.id), "message": eph["id"], "emoji": "👍"}, status=404)


@pytest.mark.asyncio(loop_scope="module")
async def test_yuki_whose_discord_is_in_japanese_is_answered_in_japanese(pg, http):
    ada, bob, cleo, yuki = pg.members
    async with open_stream(http, yuki) as stream:
        await post(http, "/api/command", {"user": str(yuki.id), "text": "/morph-queue"})
        eph = await stream.wait_for(lambda e, d: e == "message" and d["ephemeral"], 15)
    assert eph["for_user"] == str(yuki.id) and eph["content"] == "待機中・生成中のモーフ ジョブはありません。"
    # the page itself speaks her language too (its words come from the same catalogue)
    async with http.get("/api/state", params={"user": str(yuki.id)}) as resp:
        state = await resp.json()
    assert state["lang"] == "ja" and state["ui"]["queue"] == "キュー" and state["ui"]["members"] == "メンバー"
    async with http.get("/api/state", params={"user": str(bob.id)}) as resp:
        state = await resp.json()
    assert state["lang"] == "en" and state["ui"]["queue"] == "Queue"


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_a_late_bot_answer_shows_this_interaction_failed_to_its_member(pg, http):
    ada, bob, cleo, yuki = pg.members
    async with open_stream(http, bob) as bob_stream, open_stream(http, cleo) as cleo_stream:
        pg.fake.delay_route("POST", r"^/interactions/", 3.5, times=1)
        try:
            await post(http, "/api/command", {"user": str(bob.id), "text": "/morph-queue"})
            notice = await bob_stream.wait_for(lambda e, d: e == "notice" and "interaction failed" in d["text"], 10)
            assert notice["error"] is True and "3 s" in notice["text"]
            await cleo_stream.wait_for(lambda e, d: e == "notice" and "broke a Discord rule" in d["text"], 10)
            assert not any(e == "notice" and "This interaction failed" in d["text"] for e, d in cleo_stream.seen)
        finally:
            pg.fake.clear_faults()
    await asyncio.sleep(1.0)  # let the late answer land (and be refused) before the next test


@pytest.mark.asyncio(loop_scope="module")
async def test_admin_commands_follow_permissions_and_bad_input_is_refused(pg, http):
    ada, bob, cleo, yuki = pg.members
    async with open_stream(http, bob) as stream:
        await post(http, "/api/command", {"user": str(bob.id), "text": "/morphadmin pause"})
        refusal = await stream.wait_for(lambda e, d: e == "message" and d["ephemeral"]
                                        and d["interaction"] == {"name": "morphadmin pause", "user_name": "Bob"}, 15)
        assert "❌" in refusal["content"]
        assert not await pg.bot.store.is_paused(pg.guild.id)
    async with open_stream(http, ada) as stream:
        await post(http, "/api/command", {"user": str(ada.id), "text": "/morphadmin pause"})
        await stream.wait_for(lambda e, d: e == "message" and d["interaction"]
                              and d["interaction"]["name"] == "morphadmin pause", 15)
        assert await pg.bot.store.is_paused(pg.guild.id)
        await post(http, "/api/command", {"user": str(ada.id), "text": "/morphadmin resume"})
        await stream.wait_for(lambda e, d: e == "message" and d["interaction"]
                              and d["interaction"]["name"] == "morphadmin resume", 15)
        assert not await pg.bot.store.is_paused(pg.guild.id)
        # a member option by @name reaches the bot as a resolved user
        await post(http, "/api/command", {"user": str(ada.id), "text": "/morphadmin ban user:@Cleo"})
        await stream.wait_for(lambda e, d: e == "message" and d["interaction"]
                              and d["interaction"]["name"] == "morphadmin ban", 15)
        assert await pg.bot.store.db.fetch("SELECT 1 FROM bans WHERE guild_id = $1 AND user_id = $2",
                                           pg.guild.id, cleo.id)
        await post(http, "/api/command", {"user": str(ada.id), "text": "/morphadmin unban cleo"})
        await stream.wait_for(lambda e, d: e == "message" and d["interaction"]
                              and d["interaction"]["name"] == "morphadmin unban", 15)
        assert not await pg.bot.store.db.fetch("SELECT 1 FROM bans WHERE guild_id = $1 AND user_id = $2", pg.guild.id,
                                                cleo.id)

    n_before = len(pg.fake.interactions)
    for text, msg in [("/morph dog", "needs to"), ("/morph dog cat frames:999", "frames must be between"),
                      ("hello", "start with '/'"), ("/nope", "Unknown command")]:
        err = await post(http, "/api/command", {"user": str(bob.id), "text": text}, status=400)
        assert msg in err["error"]
    assert len(pg.fake.interactions) == n_before  # refused in the "client": nothing reached the bot
    await post(http, "/api/command", {"user": "999", "text": "/morph-queue"}, status=404)
    await post(http, "/api/click", {"user": str(bob.id), "message": "1", "custom_id": "x"}, status=404)
    async with http.post("/api/command", data=b"not json", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400 and "JSON" in (await resp.json())["error"]


@pytest.mark.asyncio(loop_scope="module")
async def test_queue_panel_shows_a_chains_whole_path_and_its_place(pg, http):
    ada, bob, cleo, yuki = pg.members
    async with open_stream(http, ada) as stream:
        await post(http, "/api/command", {"user": str(ada.id), "text": "/morphadmin pause"})  # keep it queued
        await stream.wait_for(lambda e, d: e == "message" and d["interaction"]
                              and d["interaction"]["name"] == "morphadmin pause", 15)
        try:
            await post(http, "/api/command", {"user": str(ada.id),
                                              "text": "/morph dog cat then:bird loop:True frames:6"})
            await stream.wait_for(lambda e, d: e == "message" and d["interaction"]
                                  and d["interaction"]["name"] == "morph" and "#" in d["content"], 15)
            async with http.get("/api/queue") as resp:
                queued = [j for j in (await resp.json())["jobs"] if j["state"] == "queued"]
            assert [(j["prompts"], j["position"]) for j in queued] == [(["dog", "cat", "bird", "dog"], 1)]
            await post(http, "/api/command", {"user": str(ada.id), "text": f"/morphadmin cancel {queued[0]['id']}"})
            await stream.wait_for(lambda e, d: e == "message" and d["interaction"]
                                  and d["interaction"]["name"] == "morphadmin cancel", 15)
        finally:
            await post(http, "/api/command", {"user": str(ada.id), "text": "/morphadmin resume"})


@pytest.mark.asyncio(loop_scope="module")
async def test_only_the_playgrounds_own_page_may_use_it(pg, http):
    """Cross-site requests are refused: a page on another site (or one rebinding its DNS name to
    127.0.0.1) can neither run a command nor read the channel."""
    ada = pg.members[0]  # an admin: what an attacker would act as
    token = pg.server.token
    own = f"http://127.0.0.1:{pg.server.port}"
    command = json.dumps({"user": str(ada.id), "text": "/morphadmin limits max_user_active:50"})
    n_before = len(pg.fake.interactions)

    async def status_of(method, path, *, body=None, ctype=None, **headers):
        if ctype:
            headers["Content-Type"] = ctype
        async with aiohttp.ClientSession() as s, s.request(method, pg.url.rstrip("/") + path, data=body,
                                                            headers=headers, skip_auto_headers=["Content-Type"]) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.text())

    # the audit's request: text/plain (no CORS preflight) from another site's page
    st, err = await status_of("POST", "/api/command", body=command, ctype="text/plain", Origin="http://evil.example")
    assert st == 403 and "Cross-site" in err["error"]
    # each defence on its own: text/plain with the right origin and token, another origin, no token
    st, err = await status_of("POST", "/api/command", body=command, ctype="text/plain", Origin=own,
                              **{"X-Playground-Token": token})
    assert st == 415 and "application/json" in err["error"]
    st, _ = await status_of("POST", "/api/command", body=command, ctype="application/json",
                            Origin="http://evil.example", **{"X-Playground-Token": token})
    assert st == 403
    st, err = await status_of("POST", "/api/command", body=command, ctype="application/json", Origin=own)
    assert st == 403 and "token" in err["error"]
    st, _ = await status_of("POST", "/api/command", body=command, ctype="application/json", Origin=own,
                            **{"X-Playground-Token": "x" * len(token)})
    assert st == 403
    # reading: the state, the events and the page itself need the right Host (DNS rebinding) and token
    for path in ("/api/state", "/api/queue", f"/api/events?user={ada.id}"):
        assert (await status_of("GET", path))[0] == 403
        assert (await status_of("GET", path, Host=f"evil.example:{pg.server.port}",
                                **{"X-Playground-Token": token}))[0] == 403
    assert (await status_of("GET", "/", Host=f"evil.example:{pg.server.port}"))[0] == 403
    assert (await status_of("GET", "/", Host="127.0.0.1:1"))[0] == 403
    assert len(pg.fake.interactions) == n_before  # nothing reached the bot
    assert (await pg.bot.store.get_limits(pg.guild.id)).max_user_active != 50

    # the page carries the token, and the page's own way of calling works
    st, page = await status_of("GET", "/", Host=f"localhost:{pg.server.port}")
    assert st == 200 and f'content="{token}"' in page
    st, _ = await status_of("GET", f"/api/state?token={token}", Host=f"[::1]:{pg.server.port}")
    assert st == 200


def test_a_host_reachable_from_other_machines_needs_an_explicit_opt_in(capsys):
    from bot.config import Settings
    from bot.playground.app import run_playground
    from bot.playground.guard import is_loopback

    assert [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2")] == [True] * 5
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "myhost")] == [False] * 4
    assert run_playground(Settings(playground_host="0.0.0.0", playground_port=0)) == 2
    err = capsys.readouterr().err
    assert "PLAYGROUND_HOST=0.0.0.0" in err and "PLAYGROUND_ALLOW_REMOTE=1" in err
    assert Settings.from_env({"PLAYGROUND_ALLOW_REMOTE": "1"}, None).playground_allow_remote is True
    assert Settings.from_env({}, None).playground_allow_remote is False


# ---------------------------------------------------------------------------------------------------------
# A real browser
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="module")
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
            await page.wait_for_function("[...document.querySelectorAll('.msg img')].every(i => i.complete)")
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
            assert not errors, errors
            assert not outside, f"the page fetched something outside the playground: {outside}"
        finally:
            await browser.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_taken_port_falls_back_to_a_free_one(pg):
    import socket

    from bot.playground import Playground
    from bot.playground.server import PlaygroundServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = Playground(pg.settings, host="127.0.0.1", port=port)
        other.server = PlaygroundServer(pg.fake, pg.guild, pg.channel, pg.members)
        try:
            url = await other._listen()
            assert url.startswith("http://127.0.0.1:") and other.server.port not in (0, port)
            async with aiohttp.ClientSession() as s, \
                    s.get(url + "api/state", headers={"X-Playground-Token": other.server.token}) as resp:
                assert resp.status == 200
        finally:
            await other.server.stop()


def test_unloadable_model_falls_back_to_toy_with_a_banner(tmp_path):
    from bot.playground import load_morpher

    morpher, banner = load_morpher(str(tmp_path / "no-such-model"))
    assert morpher.device_info()["model"] == "toy"
    assert "trained here on coloured shapes" in banner and "could not be loaded" in banner
    assert "no-such-model" in banner and "MORPH_MODEL=stable-diffusion-v1-5/stable-diffusion-v1-5" in banner


# ---------------------------------------------------------------------------------------------------------
# How a new user starts it: `make run` without a token → `morph-bot --playground`
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_token, dotenv, playground", [
    (None, None, True),
    (None, "DISCORD_TOKEN=\n", True),
    (None, 'DISCORD_TOKEN=""\n', True),
    (None, "DISCORD_TOKEN=  # paste it here\n", True),
    ("abc", None, False),
    ("abc", "DISCORD_TOKEN=\n", False),  # the environment wins over .env
    (None, "LOG_LEVEL=INFO\nDISCORD_TOKEN=abc\n", False),
    (None, "export DISCORD_TOKEN=abc\n", False),
    (None, "DISCORD_TOKEN = abc\n", False),
    (None, (ROOT / ".env.example").read_text(), True),  # `cp .env.example .env`, no token yet
])
def test_make_run_mode_follows_the_token_as_the_bot_reads_it(tmp_path, env_token, dotenv, playground):
    """`make run` is `morph-bot --auto`: the playground exactly when the bot would see no token."""
    from bot.main import choose_mode

    dotenv_path = tmp_path / ".env"
    if dotenv is not None:
        dotenv_path.write_text(dotenv)
    env = {} if env_token is None else {"DISCORD_TOKEN": env_token}
    chosen, settings = choose_mode(playground=False, auto=True, env=env, dotenv_path=dotenv_path)
    assert chosen is playground
    assert settings.model == ("toy" if playground else "stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert choose_mode(playground=False, auto=False, env=env, dotenv_path=dotenv_path)[0] is False


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_starts_morph_bot_auto(tmp_path):
    """The Makefile's `run` target, with a stand-in morph-bot that prints its arguments."""
    import subprocess

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "morph-bot").write_text('#!/bin/sh\necho "morph-bot args:[$*]"\n')
    (bindir / "morph-bot").chmod(0o755)
    (tmp_path / "pyproject.toml").write_text("")
    stamp = tmp_path / "installed"
    stamp.write_text("")
    os.utime(tmp_path / "pyproject.toml", (0, 0))  # older than the stamp: no setup runs
    out = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "run", f"BIN={bindir}", f"STAMP={stamp}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "morph-bot args:[--auto]"


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", ["SIGINT", "SIGTERM"])
def test_morph_bot_playground_process_serves_the_page_and_stops_on_ctrl_c(tmp_path, stop_signal):
    """`morph-bot --playground` (what `make run` starts): prints the URL, the real bot answers there,
    Ctrl-C (or SIGTERM, as `docker stop` sends) stops it cleanly and removes its temporary data."""
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "MORPH_", "PLAYGROUND_"))}
    env.update({"PLAYGROUND_PORT": "0", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                "TMPDIR": str(tmp_path)})
    with open(tmp_path / "stderr.log", "wb") as errlog:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--playground"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=errlog, text=True)
        try:
            url, seen, deadline = None, [], time.monotonic() + 120
            while url is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                seen.append(line)
                m = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
                url = m and m.group(1)
            assert url, "".join(seen) + (tmp_path / "stderr.log").read_text()
            assert proc.stdout.readline().strip() == "model: toy (trained on coloured shapes, offline)"
            assert proc.stdout.readline().strip() == 'try: /morph "a red circle" "a blue square"'
            with urllib.request.urlopen(url, timeout=10) as resp:  # the page carries the API token
                token = {"X-Playground-Token": re.search(r'name="playground-token" content="([^"]+)"',
                                                         resp.read().decode()).group(1)}
            with urllib.request.urlopen(urllib.request.Request(url + "api/state", headers=token), timeout=10) as resp:
                state = json.load(resp)
            assert state["bot"]["connected"] and "trained here on coloured shapes" in state["banner"]
            assert state["examples"][0] == '/morph "a red circle" "a blue square"'
            bob = next(m for m in state["members"] if m["name"] == "Bob")
            req = urllib.request.Request(url + "api/command", method="POST",
                                         headers={"Content-Type": "application/json", **token},
                                         data=json.dumps({"user": bob["id"], "text": "/morph-queue"}).encode())
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert json.load(resp)["ok"] is True
            for _ in range(100):  # the bot's private answer to Bob shows in his view of the channel
                with urllib.request.urlopen(urllib.request.Request(f"{url}api/state?user={bob['id']}", headers=token),
                                            timeout=10) as resp:
                    msgs = json.load(resp)["messages"]
                if any(m["ephemeral"] and m["for_user"] == bob["id"] for m in msgs):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"no answer to /morph-queue: {msgs}")
            assert list(tmp_path.glob("morph-playground-*"))  # its database lives in a temporary folder
            proc.send_signal(getattr(signal, stop_signal))
            assert proc.wait(timeout=30) == 0, (tmp_path / "stderr.log").read_text()
            assert "playground: stopping" in proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    assert not list(tmp_path.glob("morph-playground-*"))  # removed on exit


@pytest.mark.asyncio(loop_scope="module")
async def test_attached_pictures_morph_through_the_http_api(pg, http):
    """The page's + button / drop: files travel base64 in the command, the fake Discord serves them to the bot
    as attachments, and the result comes back; the page offers two toy pictures to attach."""
    import base64

    cleo = pg.members[2]
    async with http.get("/api/state", params={"user": str(cleo.id)}) as resp:
        pictures = (await resp.json())["pictures"]
    assert len(pictures) == 2
    files = []
    for url in pictures:
        async with http.get(url) as resp:
            assert resp.status == 200
            data = await resp.read()
        assert Image.open(io.BytesIO(data)).size == (64, 64)
        files.append({"name": url.rsplit("/", 1)[-1], "data": base64.b64encode(data).decode()})
    async with open_stream(http, cleo) as stream:
        await post(http, "/api/command", {"user": str(cleo.id), "text": "/morph-images frames:3", "files": files})
        result = await stream.wait_for(has_gif, timeout=120)
    assert "🖼️ first picture" in result["content"] and "🖼️ second picture" in result["content"]
    bad = await post(http, "/api/command", {"user": str(cleo.id), "text": "/morph-images to:cat"}, status=400)
    assert "attach a picture" in str(bad)

"""The playground's HTTP/SSE API over the real bot and fake Discord, driven only through its HTTP API, as the
page does (the running playground: conftest.py)."""
from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image
from playground_helpers import has_gif, open_stream, post

from testkit.languages import assert_no_english


@pytest.mark.asyncio(loop_scope="package")
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


@pytest.mark.asyncio(loop_scope="package")
async def test_the_member_can_switch_to_the_age_restricted_channel(pg, http):
    """The playground has an age-restricted channel (Discord's nsfw flag), where the safety filter may be
    turned off by an admin: the page lists it, shows its own messages, and sends commands there."""
    ada, bob, cleo, yuki = pg.members
    async with http.get("/api/state", params={"user": str(bob.id)}) as resp:
        channels = {c["name"]: c for c in (await resp.json())["channels"]}
    assert channels["morph"]["nsfw"] is False and channels["after-dark"]["nsfw"] is True
    dark = channels["after-dark"]["id"]
    async with open_stream(http, bob, channel=dark) as there:
        await post(http, "/api/command", {"user": str(bob.id), "channel": dark, "text": "/morph-queue"})
        answer = await there.wait_for(lambda e, d: e == "message" and d["author"]["bot"], 30)
    assert answer["channel_id"] == dark
    assert pg.fake.message(int(answer["id"])).channel_id == pg.restricted_channel.id
    async with http.get("/api/state", params={"user": str(bob.id), "channel": dark}) as resp:
        there_now = await resp.json()
    assert there_now["channel"] == {"id": dark, "name": "after-dark", "nsfw": True}
    assert answer["id"] in [m["id"] for m in there_now["messages"]]
    async with http.get("/api/state", params={"user": str(bob.id)}) as resp:
        assert answer["id"] not in [m["id"] for m in (await resp.json())["messages"]]  # not in #morph
    async with http.get("/api/state", params={"user": str(bob.id), "channel": "42"}) as resp:
        assert resp.status == 404


@pytest.mark.asyncio(loop_scope="package")
async def test_morph_through_http_api_gives_a_gif_with_the_frame_count_and_picks(pg, http):
    ada, bob, cleo, yuki = pg.members
    async with open_stream(http, bob) as stream:
        await post(http, "/api/command", {"user": str(bob.id), "text": "/morph dog cat frames:6 seed:3"})
        result = await stream.wait_for(has_gif, timeout=90)
        first = next(d for e, d in stream.seen if e == "message" and d["author"]["bot"])
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
        # the status message was shown and then edited in place (same id, new text): by progress while it
        # rendered, or (a render faster than the progress heartbeat) only by the link to the result after it
        edited = await stream.seen_or_wait(lambda e, d: e == "message" and d["id"] == first["id"]
                                           and d["content"] != first["content"], 15)
        assert first["content"].startswith("🕓") and edited["content"] != first["content"]

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


@pytest.mark.asyncio(loop_scope="package")
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


@pytest.mark.asyncio(loop_scope="package")
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
    # the help lists each command's Japanese description, as her Discord client shows it
    morph = next(c for c in state["commands"] if c["usage"].startswith("/morph <"))
    assert morph["descriptions"]["ja"].startswith("プロンプトから")
    # what the command box refuses (as Discord's client would) is said in her language too
    refused = [(await post(http, "/api/command", {"user": str(yuki.id), "text": text}, status=400))["error"]
               for text in ("/morph frames:abc", "/nope", '/morph "a dog', "/morph a b frames:9999")]
    assert refused[0] == "/morph には from、to が必要です。使い方: " + morph["usage"]
    assert refused[1].startswith("「/nope」というコマンドはありません。")
    assert_no_english([*state["ui"].values(), *refused, *(c["descriptions"]["ja"] for c in state["commands"])])
    async with http.get("/api/state", params={"user": str(bob.id)}) as resp:
        state = await resp.json()
    assert state["lang"] == "en" and state["ui"]["queue"] == "Queue"
    assert (await post(http, "/api/command", {"user": str(bob.id), "text": "/nope"}, status=400))["error"] \
        .startswith("Unknown command '/nope'.")


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="package")
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


@pytest.mark.asyncio(loop_scope="package")
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


@pytest.mark.asyncio(loop_scope="package")
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


@pytest.mark.asyncio(loop_scope="package")
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

"""The playground is the local developer's alone: cross-site requests are refused, a host other machines can
reach needs an explicit opt-in, and a taken port falls back to a free one."""
from __future__ import annotations

import json

import aiohttp
import pytest


@pytest.mark.asyncio(loop_scope="package")
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


@pytest.mark.asyncio(loop_scope="package")
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

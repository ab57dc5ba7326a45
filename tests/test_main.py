"""``bot.main``: ``morph-bot`` as a process exits with main()'s status whatever threads a library left running;
the CLI's token and configuration errors (against a real local HTTP server that refuses the token)."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]


def test_cli_exits_even_when_a_thread_would_keep_the_process_alive():
    script = (
        "import threading, bot.main as m, bot.startup\n"
        "bot.startup.EXIT_GRACE_S = 0.5\n"
        "def main():\n"
        "    threading.Thread(target=threading.Event().wait, name='never-ends').start()\n"
        "    return 3\n"
        "m.main = main\n"
        "m.cli()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr


def _clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("DISCORD_TOKEN", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL", "MORPH_DB", "DEV_GUILD_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MORPH_DB", str(tmp_path / "morph.sqlite3"))


def test_missing_token_exits_2(monkeypatch, tmp_path, capsys):
    from bot.main import main

    _clean_env(monkeypatch, tmp_path)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "Set DISCORD_TOKEN in .env" in err and "make run" in err


def test_bad_config_exits_2(monkeypatch, tmp_path, capsys):
    from bot.main import main

    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    monkeypatch.setenv("MORPH_COOLDOWN_S", "soon")
    assert main([]) == 2
    assert "MORPH_COOLDOWN_S" in capsys.readouterr().err


def test_invalid_token_exits_2(monkeypatch, tmp_path, capsys):
    """A real HTTP server that answers 401 to GET /users/@me, as Discord does for a bad token."""
    from bot.endpoints import use_discord_endpoints
    from bot.main import main

    seen = []

    async def users_me(request):
        seen.append(request.headers.get("Authorization"))
        return web.Response(status=401, text='{"message": "401: Unauthorized", "code": 0}',
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", users_me)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.SockSite(runner, sock).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        _clean_env(monkeypatch, tmp_path)
        monkeypatch.setenv("DISCORD_TOKEN", "not-a-real-token")
        monkeypatch.setenv("DISCORD_API_BASE", f"http://127.0.0.1:{port}/api/v10")
        monkeypatch.setenv("DISCORD_GATEWAY_URL", f"ws://127.0.0.1:{port}/gateway")
        assert main([]) == 2
        assert "refused the token" in capsys.readouterr().err
        assert seen == ["Bot not-a-real-token"]
    finally:
        use_discord_endpoints(None, None)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

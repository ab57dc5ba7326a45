"""How a new user starts the playground: `make run` without a token → `morph-bot --playground`, a model
that cannot be loaded falls back to toy, the process serves the page and stops on Ctrl-C. (No running
playground: each test starts what it needs.)"""
from __future__ import annotations

import json
import os
import shutil

import pytest
from playground_helpers import ROOT


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

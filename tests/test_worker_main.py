"""``morph-worker`` (``bot.worker_main``) runs without Discord: started for real in a fresh interpreter,
against a new SQLite queue, it loads no ``discord`` module (nor the front) up to the moment it renders.
The import graph test checks the same statically for every import it could reach."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Started as ``morph-worker`` starts (its main()); stopped with SIGTERM once it says it renders from the queue.
SCRIPT = """
import json, logging, os, signal, sys
from bot import worker_main

class StopWhenReady(logging.Handler):
    def emit(self, record):
        if "renders from" in record.getMessage():
            os.kill(os.getpid(), signal.SIGTERM)

logging.getLogger("bot.worker").addHandler(StopWhenReady())
code = worker_main.main([])
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "discord" or m in ("bot.main", "bot.bot"))
print("RESULT " + json.dumps({"code": code, "loaded": loaded}), flush=True)
os._exit(0)  # the model may still be loading in its daemon thread
"""


@pytest.mark.slow  # a fresh interpreter imports torch and diffusers and loads the model
def test_the_worker_starts_and_stops_without_importing_discord(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "MORPH_"))}
    env.update(MORPH_DB=str(tmp_path / "morph.sqlite3"), MORPH_DATA_DIR=str(tmp_path / "artifacts"),
               MORPH_MODEL="tiny", MORPH_DEVICE="cpu", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env | {"PYTHONPATH": str(ROOT)},
                          timeout=120, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout + proc.stderr
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result == {"code": 0, "loaded": []}, proc.stderr
    assert "renders from" in proc.stderr  # it really got as far as rendering from the queue

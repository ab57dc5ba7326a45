"""``morph-bot`` as a process: it exits with main()'s status whatever threads a library left running."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_exits_even_when_a_thread_would_keep_the_process_alive():
    script = (
        "import threading, bot.main as m\n"
        "m.EXIT_GRACE_S = 0.5\n"
        "def main():\n"
        "    threading.Thread(target=threading.Event().wait, name='never-ends').start()\n"
        "    return 3\n"
        "m.main = main\n"
        "m.cli()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr

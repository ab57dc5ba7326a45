"""What every benchmark's record shares: bench/RESULTS.md, where each benchmark owns a section (a ``## title`` up
to the next ``## ``) and replaces only it, and the machine and load a run states in its header."""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def replace_section(title: str, section: str, path: Path = RESULTS) -> None:
    """Put ``section`` (which starts with ``## {title}``) in place of that section, or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Results\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section.rstrip() + "\n\n", text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n", encoding="utf-8")


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work on a shared machine slows a run."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def load_text(load: float | None) -> str:
    """A :func:`load_average` for a header: one decimal, "?" when unknown."""
    return "?" if load is None else f"{load:.1f}"


def machine() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one) and its logical CPUs."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"

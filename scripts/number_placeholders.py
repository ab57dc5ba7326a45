"""Rewrite ``?`` placeholders as ``$1, $2, …`` in the SQL given to ``fetch``/``fetchrow``/``fetchval``/
``execute`` calls (a one-time source rewrite: both databases run ``$n`` as written, see bot.db).

Usage: ``python scripts/number_placeholders.py FILE…``. Each call's first argument is rewritten in place
when all its ``?`` are in that argument's own text; a call whose SQL is built elsewhere (a variable, or
``marks()``) is listed for a hand edit. Running it again changes nothing.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

CALLS = {"fetch", "fetchrow", "fetchval", "execute"}


def rewrite(source: str) -> tuple[str, list[str]]:
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits, todo = [], []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CALLS
                and node.args):
            continue
        arg = node.args[0]
        start = offsets[arg.lineno - 1] + arg.col_offset
        end = offsets[arg.end_lineno - 1] + arg.end_col_offset
        text = source[start:end]
        if "?" not in text:
            if not isinstance(arg, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                todo.append(f"line {node.lineno}: SQL from {ast.unparse(arg)[:60]!r}")
            continue
        if "marks(" in text:
            todo.append(f"line {node.lineno}: marks() in the SQL")
            continue
        out, n = [], 0
        for ch in text:
            if ch == "?":
                n += 1
                out.append(f"${n}")
            else:
                out.append(ch)
        edits.append((start, end, "".join(out)))
    for start, end, new in sorted(edits, reverse=True):
        source = source[:start] + new + source[end:]
    return source, todo


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        new, todo = rewrite(path.read_text(encoding="utf-8"))
        if new != path.read_text(encoding="utf-8"):
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {path}")
        for t in todo:
            print(f"{path}: {t}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

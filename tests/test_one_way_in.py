"""Every way in to a use case goes through bot.actions: the cogs and the components only translate Discord
events into its calls, so no cog or view changes a job through the Store itself."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The Store calls that carry out a user's use case (queue, pick, cancel, delete): bot.actions' own.
USE_CASE_CALLS = {"enqueue", "pick", "cancel", "delete_result"}


def store_calls(path: Path) -> list[tuple[int, str]]:
    """``(line, method)`` of every ``<…>.store.<method>(…)`` / ``store.<method>(…)`` call in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if name == "store" and node.func.attr in USE_CASE_CALLS:
                out.append((node.lineno, node.func.attr))
    return out


def test_only_bot_actions_runs_the_use_cases():
    front = [p for p in sorted((ROOT / "bot").glob("**/*.py"))
             if "store" not in p.parts and p.name != "actions.py"]
    found = {str(p.relative_to(ROOT)): calls for p in front if (calls := store_calls(p))}
    assert found == {}
    assert {m for _, m in store_calls(ROOT / "bot" / "actions.py")} == USE_CASE_CALLS  # the check sees them


def test_one_scope_rule_per_name():
    """The two questions "which guild must a job belong to for this caller" and "which server does this
    listing show" have different names (they were both ``_scope``)."""
    names = [node.name for p in (ROOT / "bot").glob("**/*.py")
             for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
             if isinstance(node, ast.FunctionDef) and node.name == "_scope"]
    assert names == []

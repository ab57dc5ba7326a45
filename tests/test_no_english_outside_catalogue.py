"""A text a member reads is written through the catalogue (``tr._(…)``, ``N_(…)``), never as a bare English
string or f-string handed to Discord or raised as a member's error: this test finds such strings in the bot's
code (by its syntax tree), so a new English f-string in a reply, a label or an error fails here instead of
leaking English into a Japanese session. Texts only operators or developers read are listed below, by file."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: An English phrase: two words of two letters or more, apart.
PHRASE = re.compile(r"[A-Za-z]{2,}[,'’]*\s+[A-Za-z]{2,}")
#: Calls whose text arguments a member reads: Discord sends, edits and components, and the errors the bot
#: shows members (MorphError and its kinds) or the playground shows its member (CommandError, ApiProblem).
SINK_METHODS = {"send_message", "send", "edit_message", "edit", "edit_original_response", "followup_send", "reply"}
SINK_CALLS = {"ephemeral", "reply", "MorphError", "CommandError", "ApiProblem", "Button", "SelectOption", "Select",
              "Embed"}
TEXT_KEYWORDS = {"content", "label", "placeholder", "description", "title", "text"}
#: (file, start of the text): texts for the operator or a developer, not a member.
NOT_FOR_MEMBERS = {
    ("bot/playground/app.py", "PLAYGROUND_HOST="),  # the operator's own setting, at start-up
    ("bot/playground/guard.py", "This playground answers only at its own address"),  # a foreign web page
    ("bot/playground/guard.py", "Cross-site request refused"),
    ("bot/playground/guard.py", "Missing or wrong playground token"),
    ("bot/playground/guard.py", "Send the request body as JSON"),
    ("bot/playground/server.py", "files must be a list"),  # the page's own requests, malformed
    ("bot/playground/server.py", "the file "),
    ("bot/playground/server.py", "unknown member "),
    ("bot/playground/server.py", "unknown channel "),
    ("bot/playground/server.py", "the request body must be"),
    ("bot/playground/server.py", "unknown message "),
    ("bot/playground/server.py", "values must be a list"),
    ("bot/playground/server.py", "emoji is missing"),
}


def literal_text(node: ast.AST) -> str | None:
    """The literal English of a string or f-string argument (placeholders left out), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " ".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "…" + "…"
        parts = [literal_text(node.left), literal_text(node.right)]
        return " ".join(p for p in parts if p) or None
    return None


def sink_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute) and f.attr in SINK_METHODS | SINK_CALLS:
        return f.attr
    if isinstance(f, ast.Name) and f.id in SINK_CALLS:
        return f.id
    return None


def english_outside_catalogue(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or sink_name(node) is None:
            continue
        args = list(node.args) + [k.value for k in node.keywords if k.arg in TEXT_KEYWORDS]
        for arg in args:
            text = literal_text(arg)
            if text and PHRASE.search(text) and not any(rel == f and text.lstrip().startswith(start)
                                                        for f, start in NOT_FOR_MEMBERS):
                found.append(f"{rel}:{arg.lineno}: {text[:70]!r}")
    return sorted(found)


def bot_sources() -> list[Path]:
    return sorted(p for p in (ROOT / "bot").rglob("*.py"))


def test_no_member_facing_english_outside_the_catalogue():
    found = [line for path in bot_sources() for line in english_outside_catalogue(path)]
    assert found == [], "write these through the catalogue (tr._ / N_, then make messages):\n" + "\n".join(found)


def test_the_check_finds_an_english_fstring(tmp_path):
    """The check can fail: a reply, a raised error and a label written as English f-strings are all found;
    the same texts through the catalogue are not."""
    sample = tmp_path / "sample.py"
    code = ('async def f(interaction, job, tr):\n'
            '    await interaction.response.send_message(f"Morph #{job} is gone for good.")\n'
            '    raise MorphError(f"The {job} picture is no longer kept")\n'
            '    Button(label="Pick this frame")\n'
            '    await interaction.response.send_message(tr._("Morph #{job} is gone for good.", job=job))\n'
            '    Button(label=tr._("Pick this frame"))\n')
    sample.write_text(code, encoding="utf-8")
    found = english_outside_catalogue(sample)
    assert [line.split(":")[1] for line in found] == ["2", "3", "4"], found

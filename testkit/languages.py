"""The check that a session in another language shows no English of the bot's catalogue: every English phrase
of the template (two words or more between placeholders) that appears in a text is a leak."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from babel.messages.pofile import read_po

#: the template of the bot's catalogue (read as a file: testkit imports nothing of the bot)
TEMPLATE = Path(__file__).resolve().parents[1] / "bot" / "locales" / "bot.pot"


@functools.cache
def english_sentences() -> frozenset[str]:
    """The English parts of every catalogue text that read as a phrase (two words or more, apart, between
    placeholders): what must not appear in a Japanese session. Command names (``morph-queue``) are not phrases:
    the playground's command box takes them as typed."""
    with TEMPLATE.open("rb") as f:
        template = read_po(f)
    out = set()
    for m in template:
        for source in (m.id if isinstance(m.id, tuple) else (m.id,)):
            for piece in re.split(r"\{[^}]*\}", str(source or "")):
                piece = piece.strip(" .,:;()!?…—-–*'\"")
                if re.search(r"[A-Za-z]{2,}[,'’]*\s+[A-Za-z]{2,}", piece):  # not a name such as morph-queue
                    out.add(piece)
    return frozenset(out)


def english_leaks(texts) -> dict[str, str]:
    """``{english phrase: the text it appears in}`` for every catalogue phrase found in ``texts``."""
    return {s: t for s in english_sentences() for t in texts if s in t}


def assert_no_english(texts) -> None:
    leaks = english_leaks(list(texts))
    assert not leaks, leaks

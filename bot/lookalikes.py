"""What a prompt reads as, for the banned-word check: look-alike letters (Unicode's confusables data, UTS #39),
digits and symbols used as letters (``c4t``), and letters spelled apart (``c a t``, ``c.a.t``).

The confusables come from the ``confusable-homoglyphs`` package (Unicode's ``confusables.txt`` as JSON).
Its pairs are joined into classes of characters drawn alike; every non-ASCII character of a class that holds
a Latin letter reads as that letter: Cherokee ``ᏟᎪᎢ``, small capitals ``ᴄᴀᴛ`` and Cyrillic ``caт`` all read
``cat``. ASCII letters are never changed (``l`` and ``I`` stay themselves), so ordinary words keep the
sub-words the model splits them into.
"""
from __future__ import annotations

import functools
import json
import re
import unicodedata
from importlib import resources

#: Digits and symbols read as the letter they stand for, right after a letter (``c4t``, ``k1ll``, ``a$$``;
#: not ``4 cats``): the usual substitutions, which no confusables table lists (a ``4`` does not look like an ``a``).
LEET = str.maketrans("4@310$57", "aaeiosst")
_LEET_RUN = re.compile(r"(?<=[^\W\d_])[4@310$57]+")
#: A run of three or more single letters each followed by a space, a dot or another separator: ``c a t``,
#: ``c.a.t``, ``c-a-t``, ``c_a_t``.
_SPELLED = re.compile(r"(?<![^\W_])(?:[^\W\d_][\s.\-_*·•]+){2,}[^\W\d_](?![^\W_])")
_LATIN_NAME = re.compile(r"LATIN (?:CAPITAL |SMALL )?LETTER (?:SMALL CAPITAL )?([A-Z])$")


@functools.lru_cache(maxsize=1)
def latin_lookalikes() -> dict[str, str]:
    """Every non-ASCII character that Unicode's confusables data draws like a Latin letter → that letter."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    parent: dict[str, str] = {}

    def root(c: str) -> str:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for char, homoglyphs in data.items():
        for h in homoglyphs:
            other = h["c"]
            if len(char) == 1 and len(other) == 1:
                parent.setdefault(char, char)
                parent.setdefault(other, other)
                parent[root(char)] = root(other)
    classes: dict[str, list[str]] = {}
    for c in parent:
        classes.setdefault(root(c), []).append(c)
    out: dict[str, str] = {}
    for members in classes.values():
        latin = sorted(c.lower() for c in members if c.isascii() and c.isalpha())
        if not latin:  # e.g. small capitals and Cyrillic te, joined to each other only: their Unicode names
            latin = sorted(m.group(1).lower() for c in members if (m := _LATIN_NAME.match(unicodedata.name(c, ""))))
        if latin:
            out.update((c, latin[0]) for c in members if not c.isascii())
    return out


def reads_as(text: str) -> str:
    """``text`` (already folded: lower case, no marks) as it reads: look-alikes made Latin, ``c4t`` → ``cat``,
    ``c a t`` → ``cat``."""
    table = latin_lookalikes()
    text = "".join(table.get(c, c) for c in text)
    text = _LEET_RUN.sub(lambda m: m.group(0).translate(LEET), text)
    return _SPELLED.sub(lambda m: re.sub(r"[\s.\-_*·•]+", "", m.group(0)), text)

"""Byte-level byte-pair encoding as CLIP's tokenizer does it (CLIP's ``SimpleTokenizer``, GPT-2's byte map), in
plain Python without torch: the generated tokenizer of the built-in models (:mod:`morph.builtin`) is made
with it, and the Discord front splits prompt words into CLIP's sub-words with it (:mod:`bot.subwords`).
"""
from __future__ import annotations

import functools

#: The end-of-word mark CLIP puts on the last symbol of a word.
END = "</w>"


@functools.lru_cache(maxsize=1)
def byte_chars() -> dict[int, str]:
    """CLIP's (GPT-2's) reversible byte → printable character map, in byte-symbol order (printable bytes
    first, then the others mapped from U+0100 on). Do not change the returned dict."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars), strict=True))


def merge(parts: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply the merges ``ranks`` (pair → rank, lowest first) to the symbols ``parts``: CLIP's ``bpe``. Each
    round merges every occurrence, left to right, of the adjacent pair of the lowest rank, until no adjacent
    pair has one."""
    while len(parts) > 1:
        pairs = set(zip(parts, parts[1:], strict=False))
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts

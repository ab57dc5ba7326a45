"""CLIP's byte-pair encoding, the tokenizer of the text encoders of Stable Diffusion 1.x/2.x and SDXL, in plain
Python over its merges file (``bot/data/``, from OpenAI's CLIP release), so a Discord front splits a prompt's
words into the sub-words the model sees without the model, transformers or a download: ``catdog`` →
``cat`` + ``dog``, ``kittycat`` → ``kitty`` + ``cat``, while ``category`` stays one token.

The algorithm is CLIP's ``SimpleTokenizer.bpe`` (its first 48,894 merges, the ones its vocabulary of 49,408
tokens is made of); words come in already split and folded by :mod:`bot.validation`.
"""
from __future__ import annotations

import functools
import gzip
from importlib import resources

#: How many merges CLIP's vocabulary uses (49,408 tokens = 512 byte tokens + these + 2 special ones).
MERGES = 49152 - 256 - 2
END = "</w>"


@functools.lru_cache(maxsize=1)
def _byte_chars() -> dict[int, str]:
    """CLIP's (GPT-2's) reversible byte → printable character map."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars), strict=True))


@functools.lru_cache(maxsize=1)
def _ranks() -> dict[tuple[str, str], int]:
    raw = resources.files("bot").joinpath("data/clip_bpe_simple_vocab_16e6.txt.gz").read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").split("\n")[1:MERGES + 1]
    return {tuple(line.split()): i for i, line in enumerate(lines)}  # type: ignore[misc]


@functools.lru_cache(maxsize=8192)
def subwords(word: str) -> tuple[str, ...]:
    """The tokens CLIP splits one ``word`` (no spaces) into, without the end-of-word mark: ``"catdog"`` →
    ``("cat", "dog")``."""
    ranks, chars = _ranks(), _byte_chars()
    encoded = "".join(chars[b] for b in word.encode("utf-8"))
    if not encoded:
        return ()
    parts = [*encoded[:-1], encoded[-1] + END]
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
    return tuple(p.removesuffix(END) for p in parts)

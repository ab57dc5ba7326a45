"""CLIP's byte-pair encoding, the tokenizer of the text encoders of Stable Diffusion 1.x/2.x and SDXL, in plain
Python over its merges file (``bot/data/``, from OpenAI's CLIP release), so a Discord front splits a prompt's
words into the sub-words the model sees without the model, transformers or a download: ``catdog`` →
``cat`` + ``dog``, ``kittycat`` → ``kitty`` + ``cat``, while ``category`` stays one token.

The algorithm is CLIP's ``SimpleTokenizer.bpe`` (:func:`morph.bpe.merge`, shared with the built-in models'
tokenizer) over its first 48,894 merges, the ones its vocabulary of 49,408 tokens is made of; words come in
already split and folded by :mod:`bot.validation`.
"""
from __future__ import annotations

import functools
import gzip
from importlib import resources

from morph import bpe

#: How many merges CLIP's vocabulary uses (49,408 tokens = 512 byte tokens + these + 2 special ones).
MERGES = 49152 - 256 - 2


@functools.lru_cache(maxsize=1)
def _ranks() -> dict[tuple[str, str], int]:
    raw = resources.files("bot").joinpath("data/clip_bpe_simple_vocab_16e6.txt.gz").read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").split("\n")[1:MERGES + 1]
    return {tuple(line.split()): i for i, line in enumerate(lines)}  # type: ignore[misc]


@functools.lru_cache(maxsize=8192)
def subwords(word: str) -> tuple[str, ...]:
    """The tokens CLIP splits one ``word`` (no spaces) into, without the end-of-word mark: ``"catdog"`` →
    ``("cat", "dog")``."""
    chars = bpe.byte_chars()
    encoded = "".join(chars[b] for b in word.encode("utf-8"))
    if not encoded:
        return ()
    parts = bpe.merge([*encoded[:-1], encoded[-1] + bpe.END], _ranks())
    return tuple(p.removesuffix(bpe.END) for p in parts)

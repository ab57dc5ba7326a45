"""morph: the rendering engine (no Discord imports).

    from morph import Morpher, RenderRequest
    result = Morpher("tiny").render(RenderRequest(["a dog", "a cat"], frames=16))
    chain = Morpher("tiny").render(RenderRequest(prompts=["a dog", "a cat", "a bird"], loop=True, frames=24))
    files = morph.animation.encode_animation(result.frames, "mp4", budget_bytes=10 * 2**20)  # MP4, or GIF + note
"""
import os

# OpenMP threads that wait for each other spin by default; on a CPU that other processes also use, the
# spinning threads take the cores from the one doing the work, many times slower (bench/RESULTS.md).
# Sleeping waits cost little on an idle machine. Set before torch loads its OpenMP runtime; an explicit
# OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from morph.request import Cancelled, MorphError, Progress, RenderRequest, RenderResult, Segment

__all__ = ["Cancelled", "MorphError", "Morpher", "Progress", "RenderRequest", "RenderResult", "Segment"]


def __getattr__(name):  # import torch/diffusers only when the engine is actually used
    if name == "Morpher":
        from morph.engine import Morpher

        return Morpher
    raise AttributeError(name)

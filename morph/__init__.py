"""morph: the rendering engine (no Discord imports).

    from morph import Morpher, RenderRequest
    result = Morpher("tiny").render(RenderRequest("a dog", "a cat", frames=16))
"""
from morph.request import Cancelled, MorphError, Progress, RenderRequest, RenderResult

__all__ = ["Cancelled", "MorphError", "Morpher", "Progress", "RenderRequest", "RenderResult"]


def __getattr__(name):  # import torch/diffusers only when the engine is actually used
    if name == "Morpher":
        from morph.engine import Morpher

        return Morpher
    raise AttributeError(name)

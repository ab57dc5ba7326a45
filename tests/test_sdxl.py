"""SDXL in the engine, on the built-in tiny-sdxl (CPU, one thread): the frames at both ends equal plain
StableDiffusionXLPipeline renders, both text encoders and the pooled embedding are interpolated, the size
conditioning follows the render size, and batching and compile work as for SD."""
import numpy as np
import pytest
import torch

from morph import Morpher, RenderRequest
from morph.models import make_scheduler
from morph.render import TextEmbedding

torch.set_num_threads(1)

DOG, CAT = "a photo of a dog", "a photo of a cat"


@pytest.fixture(scope="module")
def xl():
    return Morpher("tiny-sdxl", device="cpu")


def _req(**kw):
    base = dict(prompts=[DOG, CAT], frames=4, steps=4, seed=7, pacing="uniform", candidates=1)
    base.update(kw)
    return RenderRequest(**base)


def _arrays(result):
    return [np.asarray(im).astype(int) for im in result.frames]


def test_default_size_and_guidance_follow_the_model(xl):
    assert xl.xl and xl.native_size == 96  # not tiny's 64: the UNet's sample size x the VAE's scale
    r = xl.render(_req(frames=2, steps=2))
    assert r.frames[0].size == (96, 96)
    assert (r.request.steps, r.request.guidance, r.request.scheduler) == (2, 5.0, "dpm++2m")
    assert xl.device_info()["native_size"] == 96


@pytest.mark.parametrize("scheduler,negative,size", [
    ("dpm++2m", "", None),  # empty negative: zeros, as the SDXL pipeline does (force_zeros_for_empty_prompt)
    ("euler", "blurry", None),
    ("dpm++2m", "blurry", 64),  # another size: the size conditioning (time ids) says 64, as the pipeline's
])
def test_endpoints_equal_plain_sdxl_pipeline_renders(xl, scheduler, negative, size):
    result = xl.render(_req(scheduler=scheduler, negative=negative, size=size))
    side = size or 96
    pipe = xl.pipe
    saved = pipe.scheduler
    try:
        pipe.scheduler = make_scheduler(pipe, scheduler)
        for index, prompt in ((0, DOG), (-1, CAT)):
            plain = pipe(prompt, negative_prompt=negative or None, latents=xl.noise(7, side), num_inference_steps=4,
                         guidance_scale=result.request.guidance, height=side, width=side,
                         output_type="np").images[0]
            ours = np.asarray(result.frames[index]).astype(np.float64) / 255
            assert ours.shape == plain.shape
            assert np.abs(ours - plain).max() <= 1.01 / 255  # uint8 rounding only
    finally:
        pipe.scheduler = saved


def test_both_encoders_and_the_pooled_embedding_are_encoded_and_interpolated(xl):
    with torch.inference_mode():
        dog, _ = xl.encode(DOG)
        cat, _ = xl.encode(CAT)
        empty, _ = xl.encode("")
    assert dog.tokens.shape == (1, 77, 64)  # 32 + 32: both encoders' hidden states side by side
    assert dog.pooled.shape == (1, 32)  # the second encoder's projection
    assert not torch.equal(dog.tokens[..., :32], cat.tokens[..., :32])
    assert not torch.equal(dog.tokens[..., 32:], cat.tokens[..., 32:])
    assert not torch.equal(dog.pooled, cat.pooled)
    assert not empty.tokens.any() and not empty.pooled.any()
    mid = dog.mix(cat, 0.25)
    assert torch.allclose(mid.tokens, 0.75 * dog.tokens + 0.25 * cat.tokens)
    assert torch.allclose(mid.pooled, 0.75 * dog.pooled + 0.25 * cat.pooled)
    arc = dog.mix(cat, 0.5, "slerp")
    norms = arc.pooled.norm(dim=-1)
    assert torch.allclose(norms, (dog.pooled.norm(dim=-1) + cat.pooled.norm(dim=-1)) / 2, rtol=1e-4)
    both = TextEmbedding.cat([dog, cat.expand(2)])
    assert both.tokens.shape == (3, 77, 64) and both.pooled.shape == (3, 32)


def test_the_pooled_embedding_moves_the_frames(xl, monkeypatch):
    """Give prompt B prompt A's pooled embedding: the last frame changes, so the pooled one really counts."""
    full = _arrays(xl.render(_req(frames=3)))
    encode = xl.encode
    with torch.inference_mode():
        dog_pooled = encode(DOG)[0].pooled

    def cat_with_the_dogs_pooled(prompt):
        text, dropped = encode(prompt)
        return (TextEmbedding(text.tokens, dog_pooled) if prompt == CAT else text), dropped

    monkeypatch.setattr(xl, "encode", cat_with_the_dogs_pooled)
    frozen = _arrays(xl.render(_req(frames=3)))
    assert np.abs(full[0] - frozen[0]).max() == 0  # t=0: prompt A's pooled either way
    assert np.abs(full[-1] - frozen[-1]).mean() > 0.2  # t=1: prompt B's pooled only in the real render (0 if unused)


def test_batching_keeps_the_frames(xl):
    """Sub-batches carry their own pooled embeddings and size numbers (also what the out-of-memory fallback's
    smaller batches rely on): one frame per UNet call renders the same frames as four."""
    expected = _arrays(xl.render(_req(frames=5, steps=3)))
    one_at_a_time = Morpher("tiny-sdxl", device="cpu", batch_size=1)
    assert one_at_a_time.pipe is xl.pipe and xl.frames_per_batch(96) == 4
    for a, b in zip(expected, _arrays(one_at_a_time.render(_req(frames=5, steps=3))), strict=True):
        assert np.abs(a - b).max() <= 1  # float rounding of another batch size only


@pytest.mark.slow
def test_compiled_sdxl_unet_renders_the_same_frames_without_recompiling(xl):
    import torch._dynamo

    torch._dynamo.reset()
    compiled = Morpher("tiny-sdxl", device="cpu", compile=True)
    assert compiled.compile_error is None and compiled.unet is not compiled.pipe.unet
    graphs = torch._dynamo.utils.counters["stats"]
    before = graphs["unique_graphs"]
    got = compiled.render(_req(frames=5, steps=2))  # batches of 4 and 1 frames (x2 guidance)
    assert graphs["unique_graphs"] == before  # the warm-up's graphs served both batch sizes
    for a, b in zip(_arrays(xl.render(_req(frames=5, steps=2))), _arrays(got), strict=True):
        assert np.abs(a - b).max() <= 2  # fused kernels round differently

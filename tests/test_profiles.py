"""Sampling profiles (morph/profiles.py) and few-step rendering on the tiny models (CPU, one thread):
recognised from the model, their defaults per model, no unconditional batch without guidance, and LCM's
per-step noise the same for every frame."""
import json
from itertools import pairwise

import numpy as np
import pytest
import torch

from morph import Morpher, MorphError, RenderRequest, models
from morph.profiles import LCM, LCM_GUIDANCE_INPUT, STANDARD, STANDARD_XL, TURBO, profile_for
from morph.render import step_generators
from morph.request import Notice

torch.set_num_threads(1)

DOG, CAT = "a photo of a dog", "a photo of a cat"


def _req(**kw):
    base = dict(prompts=[DOG, CAT], frames=5, seed=7, pacing="uniform", candidates=1)
    base.update(kw)
    return RenderRequest(**base)


def _arrays(result):
    return [np.asarray(im).astype(int) for im in result.frames]


def _with_scheduler(pipe, scheduler):
    """The same modules with another scheduler, as a model shipping that scheduler config would load."""
    return type(pipe)(**{**pipe.components, "scheduler": scheduler})


@pytest.fixture(scope="module")
def tiny():
    return models.load_pipeline("tiny", "cpu")


def test_profiles_are_recognised_from_the_scheduler_config(tiny):
    from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, LCMScheduler

    config = tiny.scheduler.config
    assert profile_for(tiny) == STANDARD
    assert profile_for(models.load_pipeline("tiny-sdxl", "cpu")) == STANDARD_XL  # guidance 5, not 7.5
    # SD-Turbo / SDXL-Turbo ship Euler (ancestral) with trailing spacing
    turbo = _with_scheduler(tiny, EulerAncestralDiscreteScheduler.from_config(config, timestep_spacing="trailing"))
    assert profile_for(turbo) == TURBO
    assert profile_for(_with_scheduler(tiny, EulerDiscreteScheduler.from_config(config))) == STANDARD
    assert profile_for(_with_scheduler(tiny, LCMScheduler.from_config(config))) == LCM
    # a distilling LoRA leaves the config alone: the profile is named
    assert profile_for(tiny, "lightning").timestep_spacing == "trailing"
    assert profile_for(tiny, "LCM") == LCM and profile_for(turbo, "standard") == STANDARD
    with pytest.raises(MorphError, match="unknown profile 'fast'.*turbo"):
        profile_for(tiny, "fast")


def test_defaults_come_from_the_model_and_requests_can_override_them():
    filled = TURBO.fill(_req().validate())
    assert (filled.steps, filled.guidance, filled.scheduler) == (4, 0.0, "euler")
    own = TURBO.fill(_req(steps=2, guidance=1.5, scheduler="ddim").validate())
    assert (own.steps, own.guidance, own.scheduler) == (2, 1.5, "ddim")
    assert STANDARD.fill(_req().validate()).steps == 25
    with pytest.raises(MorphError, match="distilled for 1-8 steps"):
        TURBO.fill(_req(steps=25).validate())
    assert STANDARD.fill(_req(steps=150).validate()).steps == 150


def test_turbo_profile_renders_four_trailing_steps_without_an_unconditional_batch():
    m = Morpher("tiny", device="cpu", profile="turbo")
    calls = []
    handle = m.pipe.unet.register_forward_pre_hook(lambda module, args: calls.append((args[0].shape[0],
                                                                                       float(args[1]))))
    try:
        r = m.render(_req(frames=4, path="plain"))  # one batch of the 4 frames (smooth: the ends first)
    finally:
        handle.remove()
    assert (r.request.steps, r.request.guidance, r.request.scheduler) == (4, 0.0, "euler")
    assert [n for n, _ in calls] == [4] * 4  # 4 frames, not 8: no unconditional half
    assert [t for _, t in calls] == [999.0, 749.0, 499.0, 249.0]  # trailing spacing
    assert m.device_info()["profile"] == "turbo" and r.warnings == []
    with_negative = m.render(_req(frames=4, negative="blurry", path="plain"))
    assert with_negative.warnings == [Notice("negative_unused", {"guidance": 0.0})]
    assert str(with_negative.warnings[0]) == ("The negative prompt was not used: at guidance 0 this model renders "
                                              "without classifier-free guidance, which is what a negative prompt "
                                              "steers.")
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(r), _arrays(with_negative), strict=True))


def test_lcm_adds_the_same_noise_to_every_frame():
    """Frames at equal t from two renders (other frame counts, other batches) are identical, and
    neighbouring frames stay close: with fresh noise per frame they would differ like two seeds."""
    m = Morpher("tiny", device="cpu", profile="lcm")
    five = m.render(_req(frames=5))  # t = 0, .25, .5, .75, 1: batches of 4 + 1
    three = m.render(_req(frames=3))  # t = 0, .5, 1: one batch
    assert five.request.scheduler == "lcm" and five.request.steps == 4
    a, b = _arrays(five), _arrays(three)
    for i, j in ((0, 0), (2, 1), (4, 2)):
        assert np.abs(a[i] - b[j]).max() <= 1  # float rounding of another batch size at most
    other_seed = _arrays(m.render(_req(frames=5, seed=8)))
    seed_gap = np.mean([np.abs(x - y).mean() for x, y in zip(a, other_seed, strict=True)])
    neighbours = [np.abs(x - y).mean() for x, y in pairwise(a)]
    assert max(neighbours) < seed_gap / 4, (neighbours, seed_gap)


def test_lcm_endpoints_equal_plain_pipeline_renders_with_the_engines_step_noise():
    m = Morpher("tiny", device="cpu", profile="lcm")
    r = m.render(_req(frames=3, negative="blurry", guidance=1.5))  # guidance above 1: with an unconditional half
    pipe = _with_scheduler(m.pipe, models.make_scheduler(m.pipe, "lcm"))
    for index, prompt in ((0, DOG), (-1, CAT)):
        plain = pipe(prompt, negative_prompt="blurry", latents=m.noise(7, 64), num_inference_steps=4,
                     guidance_scale=1.5, generator=step_generators(7, 1)[0], output_type="np").images[0]
        ours = np.asarray(r.frames[index]).astype(np.float64) / 255
        assert np.abs(ours - plain).max() <= 1.01 / 255


def test_an_lcm_distilled_unet_gets_its_guidance_as_an_input(tmp_path):
    """An LCM model (LCM scheduler, a UNet taking the guidance scale): recognised, guidance 8.5 embedded
    instead of an unconditional batch, and the frames equal diffusers' own render of it."""
    from diffusers import LCMScheduler, UNet2DConditionModel

    tiny = models.load_pipeline("tiny", "cpu")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{**tiny.unet.config, "time_cond_proj_dim": 32}).eval()
    lcm = type(tiny)(**{**tiny.components, "unet": unet, "scheduler": LCMScheduler.from_config(tiny.scheduler.config)})
    lcm.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    index["_class_name"] = "LatentConsistencyModelPipeline"  # as LCM checkpoints on the Hub say
    (tmp_path / "model_index.json").write_text(json.dumps(index))

    m = Morpher(str(tmp_path), device="cpu")
    assert m.profile == LCM_GUIDANCE_INPUT
    calls = []
    handle = m.pipe.unet.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((args[0].shape[0], kwargs.get("timestep_cond"))), with_kwargs=True)
    try:
        r = m.render(_req(frames=2))
    finally:
        handle.remove()
    assert r.request.guidance == 8.5 and {n for n, _ in calls} == {2}  # two frames, no unconditional half
    assert all(cond is not None and cond.shape == (2, 32) for _, cond in calls)
    for i, prompt in ((0, DOG), (-1, CAT)):
        plain = m.pipe(prompt, latents=m.noise(7, 64), num_inference_steps=4, guidance_scale=8.5,
                       generator=step_generators(7, 1)[0], output_type="np").images[0]
        assert np.abs(np.asarray(r.frames[i]) / 255 - plain).max() <= 1.01 / 255

"""Morpher.render on the tiny model (CPU, one thread): determinism, endpoints, pacing, progress, cancel, OOM."""
import threading

import numpy as np
import pytest
import torch

from morph import Cancelled, Morpher, MorphError, RenderRequest
from morph.models import make_scheduler
from morph.request import Notice

torch.set_num_threads(1)

DOG, CAT = "a photo of a dog", "a photo of a cat"


@pytest.fixture(scope="module")
def morpher():
    return Morpher("tiny", device="cpu")


@pytest.fixture
def uncapped(morpher):
    """The module's Morpher without a learnt batch cap, before and after the test."""
    morpher.cap_batch(None)
    yield morpher
    morpher.cap_batch(None)


def _arrays(result):
    return [np.asarray(im) for im in result.frames]


def _req(**kw):
    base = dict(prompts=[DOG, CAT], frames=6, steps=4, seed=7, pacing="uniform")
    base.update(kw)
    base.setdefault("candidates", 3)  # validate() lowers it for shorter morphs
    return RenderRequest(**base)


def test_result_shape_and_report(morpher):
    r = morpher.render(_req(frames=8, candidates=3, pacing="perceptual"))
    assert len(r.frames) == 8 and len(r.ts) == 8 and len(r.distances) == 7
    assert all(im.size == (64, 64) and im.mode == "RGB" for im in r.frames)
    assert r.ts[0] == 0.0 and r.ts[-1] == 1.0 and r.ts == sorted(r.ts) and len(set(r.ts)) == 8
    assert all(d > 0 for d in r.distances)
    assert r.max_over_mean == pytest.approx(max(r.distances) / np.mean(r.distances))
    assert 0 < r.one_minus_gini <= 1
    assert 0 <= r.midpoint < 8 and len(r.candidates) == 3 and r.midpoint in r.candidates
    assert r.candidates == list(range(r.candidates[0], r.candidates[0] + 3))
    assert r.unet_evals == 8  # every frame denoised exactly once, as with uniform spacing
    assert r.model == "tiny" and r.request.prompts[0] == DOG and r.seconds > 0 and r.warnings == []


def test_same_seed_same_frames_other_seed_other_frames(morpher):
    first = _arrays(morpher.render(_req()))
    again = _arrays(morpher.render(_req()))
    other = _arrays(morpher.render(_req(seed=8)))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(np.abs(a.astype(int) - b).mean() > 2 for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("scheduler", ["dpm++2m", "pndm", "euler"])
def test_endpoints_equal_plain_pipeline_renders(morpher, scheduler):
    req = _req(frames=4, steps=5, scheduler=scheduler, negative="blurry")
    result = morpher.render(req)
    pipe = morpher.pipe
    saved = pipe.scheduler
    try:
        pipe.scheduler = make_scheduler(pipe, scheduler)
        for index, prompt in ((0, DOG), (-1, CAT)):
            plain = pipe(prompt, negative_prompt="blurry", latents=morpher.noise(req.seed, 64),
                         num_inference_steps=5, guidance_scale=result.request.guidance, output_type="np").images[0]
            ours = np.asarray(result.frames[index]).astype(np.float64) / 255
            assert np.abs(ours - plain).max() <= 1.01 / 255  # uint8 rounding only
    finally:
        pipe.scheduler = saved


def test_endpoints_do_not_depend_on_interpolation_or_pacing(morpher):
    a = _arrays(morpher.render(_req(frames=5)))
    b = _arrays(morpher.render(_req(frames=9, interpolation="slerp", pacing="perceptual")))
    for i in (0, -1):
        assert np.abs(a[i].astype(int) - b[i]).max() <= 1


def test_second_seed_slerps_the_noise(morpher):
    plain = _arrays(morpher.render(_req(frames=3)))
    mixed = _arrays(morpher.render(_req(frames=3, seed_b=123)))
    other_seed = _arrays(morpher.render(_req(frames=3, seed=123)))
    assert np.abs(plain[0].astype(int) - mixed[0]).max() <= 1  # t=0: seed's noise
    assert np.abs(other_seed[-1].astype(int) - mixed[-1]).max() <= 1  # t=1: seed_b's noise
    assert np.abs(plain[1].astype(int) - mixed[1]).mean() > 2


def test_without_guidance_there_is_no_cfg_batch(morpher, count_unet):
    morpher.render(_req(frames=3, steps=3, guidance=1.0))
    assert count_unet and all(n <= 4 for n in count_unet)  # frames only, not doubled
    count_unet.clear()
    morpher.render(_req(frames=3, steps=3, path="plain"))
    assert max(count_unet) == 6  # 3 frames x (unconditional + conditional) in one UNet batch


@pytest.mark.slow
def test_perceptual_pacing_is_smoother_than_uniform_on_tiny(morpher, count_unet):
    req = dict(prompts=[DOG, CAT], frames=16, steps=8, seed=0, path="plain")  # the plain path's batches
    uniform = morpher.render(RenderRequest(**req, pacing="uniform"))
    uniform_calls = len(count_unet)
    count_unet.clear()
    paced = morpher.render(RenderRequest(**req, pacing="perceptual"))
    assert paced.max_over_mean < uniform.max_over_mean - 0.2
    assert paced.one_minus_gini > uniform.one_minus_gini
    assert paced.unet_evals == uniform.unet_evals == 16
    # Same UNet work in frames; the UNet batches are smaller, never more frames than the batch size.
    assert sum(count_unet) == sum([2 * 16] * 8)
    assert max(count_unet) <= 2 * morpher.frames_per_batch(64)
    assert uniform_calls == 8 * -(-16 // morpher.frames_per_batch(64))


@pytest.mark.slow
def test_perceptual_pacing_takes_at_most_one_unet_batch_more_than_uniform(morpher, count_unet):
    big = Morpher("tiny", device="cpu", batch_size=32)  # a GPU-sized batch: the whole morph fits in one
    assert big.pipe is morpher.pipe  # same cached pipeline, so count_unet sees its calls
    req = dict(prompts=[DOG, CAT], frames=16, steps=8, seed=0, path="plain")  # the plain path's batches
    uniform = big.render(RenderRequest(**req, pacing="uniform"))
    assert count_unet == [2 * 16] * 8  # one batch of 16 frames (x2 with CFG) per step
    count_unet.clear()
    paced = big.render(RenderRequest(**req, pacing="perceptual"))
    assert len(count_unet) <= 2 * 8 and sum(count_unet) == 2 * 16 * 8  # coarse pass + one insert round
    assert paced.max_over_mean < uniform.max_over_mean - 0.2


def test_progress_reports_steps_frames_and_reaches_one(morpher):
    seen = []
    morpher.render(_req(frames=6, steps=3, pacing="perceptual"), progress=seen.append)
    denoise = [p for p in seen if p.stage == "denoise"]
    assert seen[0].stage == "encode" and {"decode", "pace"} <= {p.stage for p in seen}
    assert all(p.frames_total == 6 and 1 <= p.step <= p.steps for p in denoise)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert seen[-1].frames_done == 6


def test_cancel_stops_within_one_step(morpher, count_unet):
    cancel = threading.Event()

    def progress(p):
        if p.stage == "denoise" and p.step == 2:
            cancel.set()

    with pytest.raises(Cancelled, match="cancelled"):
        morpher.render(_req(frames=12, steps=10), progress=progress, cancel=cancel)
    assert len(count_unet) == 2  # step 1 and 2 ran; step 3 was never started
    already = threading.Event()
    already.set()
    count_unet.clear()
    with pytest.raises(Cancelled):
        morpher.render(_req(), cancel=already)
    assert count_unet == []


def test_out_of_memory_halves_the_batch_and_keeps_every_frame(morpher, uncapped, monkeypatch):
    req = _req(frames=7, steps=3, path="plain")  # the plain path's batches: all 7 frames at once
    expected = morpher.render(req)
    forward = morpher.pipe.unet.forward
    seen = []

    def small_gpu(sample, *args, **kwargs):
        seen.append(sample.shape[0])
        if sample.shape[0] > 2:  # more than one frame with CFG
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(sample, *args, **kwargs)

    monkeypatch.setattr(morpher.pipe.unet, "forward", small_gpu)
    got = morpher.render(req)
    assert got.ts == expected.ts and len(got.frames) == 7 and got.unet_evals == 7
    for a, b in zip(_arrays(expected), _arrays(got), strict=True):
        assert np.abs(a.astype(int) - b).max() <= 1  # batch size changes float rounding only
    # First batch: 4 frames (8 with CFG) fail, then 2 frames fail, then 1 frame at a time.
    assert seen[:3] == [8, 4, 2] and max(seen[3:]) == 2
    assert morpher.batch_cap == 1 and morpher.frames_per_batch(64) == 1  # remembered for the next batches


def test_a_batch_cap_bounds_frames_per_batch_until_forgotten(uncapped):
    morpher = uncapped
    free = morpher.frames_per_batch(64)
    assert morpher.batch_cap is None and free > 1
    morpher.cap_batch(1)
    assert morpher.batch_cap == 1 and morpher.frames_per_batch(64) == 1
    morpher.cap_batch(free + 5)  # a cap above what the device allows changes nothing
    assert morpher.frames_per_batch(64) == free
    morpher.cap_batch(None)
    assert morpher.batch_cap is None and morpher.frames_per_batch(64) == free
    with pytest.raises(ValueError, match="at least one frame"):
        morpher.cap_batch(0)


def test_out_of_memory_while_decoding_halves_the_slice_and_keeps_every_frame(morpher, monkeypatch):
    req = _req(frames=5, steps=2, path="plain")  # the plain path's one batch of 5 frames
    expected = morpher.render(req)
    decode = morpher.pipe.vae.decode
    seen = []

    def small_gpu(latents, *args, **kwargs):
        seen.append(latents.shape[0])
        if latents.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return decode(latents, *args, **kwargs)

    monkeypatch.setattr(morpher.pipe.vae, "decode", small_gpu)
    got = morpher.render(req)
    assert got.ts == expected.ts and len(got.frames) == 5
    for a, b in zip(_arrays(expected), _arrays(got), strict=True):
        assert np.abs(a.astype(int) - b).max() <= 1
    assert seen[:3] == [4, 2, 1]  # slice of 4 fails, then 2, then one frame at a time


def test_out_of_memory_with_one_frame_is_a_clear_error(morpher, uncapped, monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(morpher.pipe.unet, "forward", no_memory)
    with pytest.raises(MorphError, match="even with one frame per batch"):
        morpher.render(_req(frames=3, steps=2))


def test_other_errors_are_not_swallowed(morpher, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(morpher.pipe.unet, "forward", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        morpher.render(_req(frames=2, steps=2))


@pytest.mark.slow
def test_compiled_unet_renders_the_same_frames(morpher):
    compiled = Morpher("tiny", device="cpu", compile=True)  # same cached pipeline, compiled UNet wrapper
    assert compiled.compile_error is None
    assert compiled.unet is not compiled.pipe.unet and morpher.unet is morpher.pipe.unet
    calls = []
    handle = compiled.unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        got = compiled.render(_req(frames=5, steps=3, path="plain"))
    finally:
        handle.remove()
    expected = morpher.render(_req(frames=5, steps=3, path="plain"))
    assert calls == [8] * 3 + [2] * 3  # the compiled UNet did the work: 4 + 1 frames (x2 guidance), 3 steps
    assert got.ts == expected.ts and got.unet_evals == expected.unet_evals == 5
    for a, b in zip(_arrays(expected), _arrays(got), strict=True):
        assert np.abs(a.astype(int) - b).max() <= 2  # fused kernels round differently


@pytest.mark.slow
def test_compiled_unet_serves_every_batch_size_without_recompiling():
    """The start-up warm-up covers all batch sizes: a new one must not compile again (a minute on a GPU)."""
    import torch._dynamo

    torch._dynamo.reset()  # forget graphs other tests compiled for this UNet: only the warm-up's may serve
    compiled = Morpher("tiny", device="cpu", compile=True)
    graphs = torch._dynamo.utils.counters["stats"]
    before = graphs["unique_graphs"]
    calls = []
    handle = compiled.unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        compiled.render(_req(frames=3, steps=1, pacing="uniform", path="plain"))
        compiled.render(_req(frames=7, steps=1, pacing="perceptual", path="plain"))
        compiled.render(_req(frames=3, steps=1, scheduler="euler", path="plain"))  # float timesteps, the others int64
    finally:
        handle.remove()
    assert {6, 8, 2} <= set(calls)  # batch sizes of 3, 4 and 1 frames (x2 guidance) went through it
    assert graphs["unique_graphs"] == before


def test_compile_failure_falls_back_to_the_eager_unet(monkeypatch):
    def no_compiler(module, **kwargs):  # what a machine without a C++ compiler / Triton gives on first call
        def call(*args, **kw):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore details")
        return call

    monkeypatch.setattr(torch, "compile", no_compiler)
    m = Morpher("tiny", device="cpu", compile=True)
    assert m.unet is m.pipe.unet
    assert m.compile_error == "RuntimeError: InvalidCxxCompiler: No working C++ compiler found"
    assert len(m.render(_req(frames=2, steps=1)).frames) == 2


def test_long_prompt_is_truncated_with_a_warning_naming_the_dropped_words(morpher):
    words = " ".join(["dog"] * 75)  # 75 tokens + start/end = 77: fits exactly
    r = morpher.render(_req(prompts=[words, CAT], frames=2, steps=1))
    assert r.warnings == []
    r = morpher.render(_req(prompts=[words + " wizard castle", CAT], frames=2, steps=1))
    assert r.warnings == [Notice("prompt_truncated", {"what": "first prompt", "limit": 77,
                                                       "dropped": "wizard castle"})]
    assert str(r.warnings[0]) == ("The first prompt is longer than CLIP's 77 tokens; these words were dropped: "
                                  "wizard castle")


@pytest.mark.parametrize("bad,match", [
    (dict(scheduler="euler_a"), "fresh noise"),
    (dict(scheduler="dpm++2m-sde"), "fresh noise"),
    (dict(scheduler="heun"), "unknown scheduler"),
    (dict(prompts=["   ", CAT]), "empty"),
    (dict(frames=1), "frames"),
    (dict(size=100), "multiple of 8"),
])
def test_bad_requests_are_refused_before_any_work(morpher, count_unet, bad, match):
    with pytest.raises(MorphError, match=match):
        morpher.render(_req(**bad))
    assert count_unet == []


def test_other_sizes_and_device_info(morpher):
    r = morpher.render(_req(frames=2, steps=2, size=96))
    assert r.frames[0].size == (96, 96)
    info = morpher.device_info()
    assert info["device"] == "cpu" and info["model"] == "tiny" and info["native_size"] == 64
    assert info["memory_total"] is None or info["memory_total"] > 0
    assert info["profile"] == "standard"
    assert set(info) == {"device", "memory_total", "memory_free", "model", "native_size", "profile"}


def test_bad_model_is_a_morph_error():
    with pytest.raises(MorphError, match="tiny"):
        Morpher("definitely/not-a-model", device="cpu")


def test_unknown_compile_mode_falls_back_to_the_eager_unet():
    m = Morpher("tiny", device="cpu", compile="no-such-mode")  # torch.compile refuses it before compiling
    assert m.unet is m.pipe.unet
    assert m.compile_error is not None and "no-such-mode" in m.compile_error
    assert len(m.render(_req(frames=2, steps=1)).frames) == 2

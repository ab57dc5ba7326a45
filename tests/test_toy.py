"""The shapes world, its judge, and the trained ``toy`` model: a real diffusers folder that really draws."""
import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from morph import models
from morph.models import TOY_DIR, load_pipeline, native_size
from toykit import judge, shapes

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ the world
def test_prompts_name_what_is_drawn_and_parse_back():
    rng = random.Random(1)
    for _ in range(200):
        scene = shapes.random_scene(rng)
        assert (scene.shape, scene.colour) not in shapes.HELD_OUT and scene.background != scene.colour
        full = shapes.parse(shapes.describe(scene))
        assert full["shape"] == scene.shape and full["colour"] == scene.colour
        assert full["background"] == scene.background and full.get("size") == scene.size_word
        short = shapes.parse(shapes.describe(scene, rng))  # words left out mean "any"
        assert short["shape"] == scene.shape and set(short.items()) <= set(full.items())
    assert shapes.prompt("star", "red", "blue", "big") == "a big red star on a blue background"
    assert shapes.prompt("circle", "orange") == "an orange circle"
    assert shapes.parse("A LARGE grey Ring on a white background") == {
        "size": "big", "colour": "gray", "shape": "ring", "background": "white"}
    # Every held-out pair has its own colour, and the demo prompts are trained pairs.
    assert len({c for _, c in shapes.HELD_OUT}) == len(shapes.SHAPES)
    assert ("circle", "red") not in shapes.HELD_OUT and ("square", "blue") not in shapes.HELD_OUT


def test_judge_reads_every_drawing_exactly():
    rng = random.Random(2)
    scenes = [shapes.random_scene(rng, exclude=()) for _ in range(300)]
    for scene in scenes:
        v = judge.judge(shapes.draw(scene))
        assert (v.shape, v.colour, v.background) == (scene.shape, scene.colour, scene.background), scene
        if scene.size_word:
            assert v.size == scene.size_word, scene
        assert v.shape_probs[scene.shape] > 0.5 and v.colour_probs[scene.colour] > 0.9


def test_judge_sees_nothing_on_a_blank_picture_and_works_at_other_sizes():
    blank = np.full((64, 64, 3), 200, dtype=np.uint8)
    v = judge.judge(blank)
    assert v.shape is None and v.colour is None and not v.matches({"shape": "circle"})
    scene = shapes.Scene("heart", "pink", "black", 40, 32, 30)
    big = shapes.draw(scene).resize((256, 256))
    assert judge.judge(big).matches(shapes.parse(shapes.describe(scene)))


def test_judge_progress_and_distance_follow_the_change():
    a, b = shapes.parse("a red circle"), shapes.parse("a blue square")
    red_circle, blue_circle, blue_square = (shapes.draw(shapes.Scene(s, c, "white", 36, 32, 32))
                                            for s, c in (("circle", "red"), ("circle", "blue"), ("square", "blue")))
    assert judge.progress(judge.judge(red_circle), a, b) < 0.05
    assert judge.progress(judge.judge(blue_circle), a, b) == pytest.approx(0.5, abs=0.05)  # colour done, shape not
    assert judge.progress(judge.judge(blue_square), a, b) > 0.95
    assert judge.progress(judge.judge(blue_square), a, a) is None  # nothing changes
    f = [judge.features(im) for im in (red_circle, blue_circle, blue_square)]
    moved = judge.features(shapes.draw(shapes.Scene("circle", "red", "white", 36, 34, 32)))
    assert judge.feature_distance(f[0], f[0]) == 0
    assert judge.feature_distance(f[0], moved) < 0.3 * judge.feature_distance(f[0], f[1])
    assert judge.feature_distance(f[1], f[2]) > 0.3 * judge.feature_distance(f[0], f[1])


def test_frame_drift_is_zero_for_the_same_frames_and_grows_with_change():
    frames = [shapes.draw(shapes.Scene("star", "yellow", "blue", 30 + i, 32, 32)) for i in range(4)]
    same = judge.frame_drift(frames, frames)
    assert same["engine_max"] == same["judge_max"] == same["pixel_mean"] == 0 and same["agreement"] == 1
    other = [shapes.draw(shapes.Scene("star", "red", "blue", 30 + i, 32, 32)) for i in range(4)]
    drift = judge.frame_drift(frames, frames[:2] + other[2:])
    assert drift["agreement"] == 0.5 and drift["engine_max"] > 0.1 and drift["pixel_mean"] > 0
    with pytest.raises(ValueError, match="same number"):
        judge.frame_drift(frames, frames[:3])


# ------------------------------------------------------------------------------------------ the model
def test_toy_is_a_small_diffusers_folder_and_the_only_committed_model():
    files = {str(p.relative_to(TOY_DIR)) for p in Path(TOY_DIR).rglob("*") if p.is_file()}
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
            "text_encoder/model.safetensors", "scheduler/scheduler_config.json"} <= files
    total = sum(p.stat().st_size for p in Path(TOY_DIR).rglob("*") if p.is_file())
    assert total <= 20 * 2**20, f"{total / 2**20:.1f} MB"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if tracked:  # a git checkout: no model file is committed outside the toy folder
        weights = [f for f in tracked if f.endswith((".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx"))]
        assert weights and all(f.startswith("morph/toy_model/") for f in weights), weights


def test_toy_loads_through_from_pretrained_by_name_and_by_path(monkeypatch):
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    calls = []
    real = StableDiffusionPipeline.from_pretrained.__func__

    def spy(cls, path, *args, **kwargs):
        calls.append(path)
        return real(cls, path, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionPipeline, "from_pretrained", classmethod(spy))
    monkeypatch.setattr(models, "_cache", {})  # load afresh even if an earlier test loaded toy
    by_path = load_pipeline(TOY_DIR + os.sep, "cpu")  # a local folder, as a user would give it
    assert calls == [TOY_DIR + os.sep]
    pipe = load_pipeline("toy", "cpu")
    assert calls[-1] == TOY_DIR  # the name resolves to the same folder, loaded the same way
    for p in (pipe, by_path):
        assert isinstance(p.unet, UNet2DConditionModel) and isinstance(p.vae, AutoencoderKL)
        assert isinstance(p.text_encoder, CLIPTextModel) and p.safety_checker is None
    assert native_size(pipe) == 64
    tokens = pipe.tokenizer.convert_ids_to_tokens(pipe.tokenizer("a big grey heart on a white background").input_ids)
    assert tokens[1:-1] == ["a</w>", "big</w>", "grey</w>", "heart</w>", "on</w>", "a</w>", "white</w>",
                            "background</w>"]


@pytest.fixture(scope="module")
def toy():
    from morph import Morpher

    return Morpher("toy", device="cpu")


@pytest.mark.slow
def test_toy_draws_held_out_prompts_and_tiny_does_not(toy, tiny_morpher):
    """Shape/colour pairs the model never saw in training, each on two seeds: the judge finds both."""
    cases = judge.held_out_prompts(seeds=(0, 1))
    prompts, seeds = [p for p, _ in cases], [s for _, s in cases]
    toy_score = judge.score(judge.render_prompts(toy, prompts, seeds), prompts)
    tiny_score = judge.score(judge.render_prompts(tiny_morpher, prompts, seeds), prompts)
    assert toy_score["match"] >= 0.8, toy_score
    assert tiny_score["match"] <= 0.2, tiny_score


# ------------------------------------------------------------------------- the engine on real pictures
def _verdicts(result):
    return [judge.judge(im) for im in result.frames]


@pytest.mark.slow
def test_the_prompt_not_the_seed_decides_what_is_drawn(toy):
    from morph import RenderRequest

    req = dict(prompts=["a big red circle on a white background", "a small blue square on a black background"],
               frames=3, pacing="uniform", candidates=1)
    first, again = toy.render(RenderRequest(**req, seed=1)), toy.render(RenderRequest(**req, seed=1))
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(first.frames, again.frames, strict=True))
    wanted = (shapes.parse(req["prompts"][0]), shapes.parse(req["prompts"][1]))
    for seed in (2, 3, 4):
        other = toy.render(RenderRequest(**req, seed=seed))
        assert np.abs(np.asarray(other.frames[0], dtype=int) - np.asarray(first.frames[0])).mean() > 2
        for frame, prompt in zip((other.frames[0], other.frames[-1]), wanted, strict=True):
            assert judge.judge(frame).matches(prompt, ("shape", "colour", "background")), (seed, prompt)


def test_quality_bench_smoke(capsys):
    """`python -m bench.quality` renders both paths × both pacings per pair and prints the engine's, the judge's and
    the standard measures (SSIM, CIEDE2000) and the drift table."""
    from bench.quality import PAIRS
    from bench.quality import main as quality_main

    assert len(PAIRS) >= 20 and len(set(PAIRS)) == len(PAIRS)
    for a, b in PAIRS:  # every pair names a shape at both ends and changes something the judge can see
        pa, pb = shapes.parse(a), shapes.parse(b)
        assert "shape" in pa and "shape" in pb and (pa != pb)
    assert quality_main(["--model", "tiny", "--pairs", "2", "--frames", "4", "--steps", "1", "--threads", "1",
                         "--drift", "--no-timing"]) == 0
    out = capsys.readouterr().out
    for text in ("| plain uniform |", "| plain perceptual |", "| smooth uniform |", "| smooth perceptual |",
                 "classic midpoint", "engine max/mean: plain perceptual lower in",
                 "judge 1 − Gini: plain perceptual higher in", "| SSIM max/mean |", "| ΔE path/direct |",
                 "midpoint within ±0.1 of the judge's 50/50", "an ideal even colour morph of 4 frames has such a frame",
                 "| none: the exact render again | 0.000 / 0.000 |",
                 "| the ends' pixel cross-fade (no model: reference) |"):
        assert text in out, text


def test_the_cross_fade_reference_goes_straight_and_the_plain_path_wanders_more(toy):
    """bench.quality's reference row: the two end frames cross-faded pixel by pixel go straight by CIEDE2000
    (path/direct near 1, even steps) between exactly the render's ends; the plain path between the same ends
    goes a longer way."""
    from bench.quality import crossfade_reference, standard_measures
    from morph import RenderRequest

    result = toy.render(RenderRequest(["a red circle", "a blue square"], frames=8, steps=10, seed=7,
                                      pacing="uniform", path="plain"))
    ref = crossfade_reference(result)
    assert 0.8 < ref["de_path_over_direct"] < 1.3 and ref["de_max_over_mean"] < 1.8
    a, b = shapes.parse("a red circle"), shapes.parse("a blue square")
    own = standard_measures(result.frames, a, b, [judge.features(f) for f in result.frames])
    assert own["de_path_over_direct"] > ref["de_path_over_direct"] + 0.2


@pytest.mark.slow
def test_the_judges_50_50_is_sharper_than_an_even_morphs_frames():
    """The midpoint goal's ceiling (bench.quality.midpoint_ceiling): an ideal even colour morph drawn with no
    model has a frame within ±0.1 of the judge's 50/50 in few colour pairs at 24 frames, more with more frames."""
    from bench.quality import midpoint_ceiling

    at_24, total = midpoint_ceiling(24)
    at_48, _ = midpoint_ceiling(48)
    assert total == 45 and at_24 < 0.3 * total and at_48 > at_24


def _drawn(shape: str, colour, background, box=(16, 16, 48, 48)):
    from PIL import Image

    mask = np.asarray(shapes.shape_mask(shape, box), dtype=np.float64)[..., None] / 255
    picture = mask * np.array(colour, dtype=np.float64) + (1 - mask) * np.array(background, dtype=np.float64)
    return Image.fromarray(np.clip(picture + 0.5, 0, 255).astype(np.uint8))


def test_shared_colour_drift_is_measured_where_the_shape_is_at_both_ends():
    """bench.quality's drift of a colour both prompts share, measured inside the shape where it is at both ends
    (on toy renders the judge's own reading of in-between frames can take another patch for the shape:
    bench/RESULTS.md): a blue diamond whose background goes yellow → black keeps its blue; one that turns red
    half-way drifts; a circle that shrinks on a yellow background keeps both its colour and the background."""
    from bench.quality import standard_measures

    blue, yellow, black, red = shapes.COLOURS["blue"], shapes.COLOURS["yellow"], shapes.COLOURS["black"], (200, 40, 40)
    a, b = shapes.parse("a blue diamond on a yellow background"), shapes.parse("a blue diamond on a black background")
    backgrounds = [tuple((1 - t) * np.array(yellow) + t * np.array(black)) for t in np.linspace(0, 1, 9)]
    kept = [_drawn("diamond", blue, bg) for bg in backgrounds]
    m = standard_measures(kept, a, b, [judge.features(x) for x in kept])
    assert m["drift_background"] is None and m["drift_colour"] < 1.0
    turned = [_drawn("diamond", red if i == 4 else blue, bg) for i, bg in enumerate(backgrounds)]
    m = standard_measures(turned, a, b, [judge.features(x) for x in turned])
    assert m["drift_colour"] > 30
    same_background = [_drawn(s, blue, yellow, box) for s, box in (("circle", (16, 16, 48, 48)),
                                                                  ("circle", (20, 20, 44, 44)))]
    m = standard_measures(same_background, shapes.parse("a big blue circle on a yellow background"),
                          shapes.parse("a small blue circle on a yellow background"),
                          [judge.features(x) for x in same_background])
    assert m["drift_background"] < 1.0 and m["drift_colour"] < 1.0


@pytest.mark.slow
def test_perceptual_pacing_is_smoother_on_pictures_by_the_standard_measures_and_the_judge(toy):
    """The engine evens out its own distance; on a morph with a visible jump (a big cross shrinks into a small
    ring and changes colour) the standard measures (1 − SSIM and CIEDE2000 between neighbouring frames, as
    ``bench.quality`` computes them) see a more even morph too, on both paths. On the plain path the independent
    judge agrees on both of its measures. On the smooth path the jump is already about half the plain one, and
    the judge's largest step has gone either way with small engine changes (3.40 → 3.48 with the outer attention
    interpolation, 4.31 → 3.79 with the inner one): only its 1 − Gini is asserted there."""
    from bench.quality import measure
    from morph import RenderRequest

    req = dict(prompts=["a big red cross", "a small blue ring"], frames=16, seed=7)
    for path in ("plain", "smooth"):
        uniform, paced = (toy.render(RenderRequest(**req, pacing=p, path=path)) for p in ("uniform", "perceptual"))
        assert paced.unet_evals == uniform.unet_evals == 16
        assert paced.max_over_mean < uniform.max_over_mean, path
        u, m = measure(uniform), measure(paced)
        for key in ("ssim_max_over_mean", "de_max_over_mean"):
            assert m[key] < u[key], (path, key, m[key], u[key])
        for key in ("ssim_1_gini", "de_1_gini", "judge_1_gini"):
            assert m[key] > u[key], (path, key, m[key], u[key])
        if path == "plain":
            assert m["judge_max_over_mean"] < 0.7 * u["judge_max_over_mean"], (m, u)


@pytest.mark.slow
def test_candidates_surround_the_change_the_judge_sees(toy):
    """A colour morph: the candidates offered around the midpoint include the frames where the colour turns."""
    from morph import RenderRequest

    result = toy.render(RenderRequest(["a yellow star on a black background", "a green star on a black background"],
                                      frames=16, seed=3, candidates=5))
    colours = [v.colour for v in _verdicts(result)]
    assert colours[0] == "yellow" and colours[-1] == "green"
    turn = next(i for i, c in enumerate(colours) if c != "yellow")  # first frame no longer yellow
    assert result.candidates[0] <= turn <= result.candidates[-1] + 1, (colours, result.candidates)


@pytest.mark.slow
def test_negative_prompt_steers_the_picture_away(toy):
    """'a circle' names no colour; with the most frequent colour as negative prompt, that colour is gone."""
    seeds = list(range(12))
    plain = [judge.judge(p) for p in judge.render_prompts(toy, ["a circle"] * len(seeds), seeds)]
    seen = [v.colour for v in plain]
    common = max(set(seen), key=seen.count)
    assert sum(v.shape == "circle" for v in plain) >= 10
    with_common = [s for s, c in zip(seeds, seen, strict=True) if c == common]
    steered = _render_with_negative(toy, "a circle", common, with_common)
    assert all(v.colour != common for v in steered), (common, [v.colour for v in steered])
    assert sum(v.shape == "circle" for v in steered) >= len(steered) - 1


def _render_with_negative(toy, prompt, negative, seeds):
    from morph import RenderRequest

    out = []
    for seed in seeds:
        r = toy.render(RenderRequest([prompt, prompt], frames=2, seed=seed, negative=negative, candidates=1))
        out.append(judge.judge(r.frames[0]))
    return out

"""Path and pacing quality on pictures: plain vs smooth path × uniform vs perceptual pacing on the trained
``toy`` model, judged three ways.

``python -m bench.quality`` renders every prompt pair of :data:`PAIRS` (colour changes, shape changes, both,
backgrounds, sizes, held-out shape/colour pairs) on the plain path and on the smooth path (attention anchored
to the two ends, :mod:`morph.anchoring`), each with uniform pacing and with perceptual pacing (same frames,
same UNet work), and reports for each of the four, averaged over the pairs:

* the standard measures, from scikit-image: 1 − SSIM of neighbouring grey frames and their mean CIEDE2000
  colour difference (ΔE): max/mean adjacent distance, 1 − Gini, the largest single step over its pair's mean
  (worst pair), **path/direct** (sum of adjacent distances over the distance from the first frame to the
  last: 1 goes straight, ≫ 1 wanders through other pictures), and for pairs that share the background or
  the shape's colour how far it drifts (largest ΔE from the ends' mean value, measured where the shape, or
  the background, is at both ends; and as the judge reads it frame by frame); and the same measures of a
  reference that uses no model, the two ends' pixel cross-fade (:func:`crossfade_reference`: the straightest
  path between the two pictures, so the best these measures can say of any morph between them);

* max/mean adjacent distance and 1 − Gini of the adjacent distances, measured with the engine's own
  distance (:func:`morph.pacing.image_distance`, what perceptual pacing evens out) **and** with the
  independent judge's features (:func:`toykit.judge.features`: measured colours and outline overlaps);
* where the midpoint lands: the judge's progress from prompt A to prompt B at the frame the engine offers as
  the midpoint (:func:`toykit.judge.progress`: 0 = all A, 1 = all B, 0.5 = the ideal), and for reference the
  classic midpoint, the uniform morph's frame at t = 0.5;
* the render time of the playground's default morph (``/morph "a red circle" "a blue square"``: 24
  frames, 25 steps) on ``toy`` against ``tiny`` in the same run.

``--drift`` also shows :func:`toykit.judge.frame_drift`, the measure for approximate speed-ups, on one such
approximation (fewer denoising steps) against the exact render.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import statistics
import sys
import time
import warnings
from itertools import pairwise

from bench.results import load_average, load_text, machine

#: (from, to): at least 20 pairs, each changing the colour, the shape, both, the background or the size.
PAIRS = (
    ("a red circle", "a blue square"),  # the playground's default
    ("a red circle", "a blue circle"),
    ("a yellow star", "a purple star"),
    ("a green heart", "a pink heart"),
    ("a white cross on a black background", "a gray cross on a black background"),
    ("an orange diamond", "an orange triangle"),
    ("a blue ring", "a blue circle"),
    ("a pink square", "a pink star"),
    ("a black heart on a white background", "a black cross on a white background"),
    ("a green triangle", "a red star"),
    ("a yellow circle on a blue background", "a purple heart on a blue background"),
    ("a big yellow star on a black background", "a small white heart on a blue background"),
    ("a white ring on a purple background", "a pink cross on a gray background"),
    ("an orange triangle on a white background", "a purple diamond on a white background"),
    ("a red square on a white background", "a red square on a green background"),
    ("a blue diamond on a yellow background", "a blue diamond on a black background"),
    ("a small green circle", "a big green circle"),
    ("a big red cross", "a small blue ring"),
    ("a purple circle", "a black square"),  # held-out shape/colour pairs at both ends
    ("an orange triangle", "a blue star"),
    ("a white heart on a red background", "a red ring on a white background"),
    ("a green cross", "a pink diamond"),
    ("a gray star on a yellow background", "a green heart on a pink background"),
    ("a big black circle on an orange background", "a small yellow triangle on a purple background"),
)


#: The pairs of the contact sheet (docs/smooth-path.png): the playground's default first.
SHEET_PAIRS = (PAIRS[0], ("a black diamond on a white background", "a blue triangle on a white background"),
               PAIRS[11], PAIRS[14])


def contact_sheet(morpher, base, pairs, path: str) -> None:
    """Each pair rendered on the plain path (upper row) and the smooth path (lower row), perceptual pacing,
    frames side by side, pairs one under another, 4 px apart."""
    from PIL import Image

    rows = []
    for a, b in pairs:
        for way in ("plain", "smooth"):
            rows.append(morpher.render(dataclasses.replace(base, prompts=[a, b], path=way)).frames)
    side = rows[0][0].width
    gap = 4
    sheet = Image.new("RGB", (len(rows[0]) * side, len(rows) * side + (len(pairs) - 1) * gap), "white")
    for r, frames in enumerate(rows):
        for c, frame in enumerate(frames):
            sheet.paste(frame, (c * side, r * side + (r // 2) * gap))
    sheet.save(path, optimize=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="toy")
    p.add_argument("--pairs", type=int, default=len(PAIRS), help=f"how many of the {len(PAIRS)} pairs")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--drift", action="store_true", help="also compare a fewer-steps render with the exact one")
    p.add_argument("--no-timing", action="store_true", help="skip the toy vs tiny render time")
    p.add_argument("--details", action="store_true", help="one line per pair and pacing")
    p.add_argument("--sheet-pairs", type=int, default=len(SHEET_PAIRS), help="pairs on the contact sheet")
    p.add_argument("--sheet", metavar="PNG", help="only write a contact sheet: the default morph and three more "
                                                  "pairs, plain (upper row) vs smooth (lower row), perceptual")
    p.add_argument("--only", metavar="LIST", help="only these, e.g. 'plain uniform,smooth perceptual' (the "
                                                "baseline and the default: half the renders)")
    p.add_argument("--first", type=int, default=0, help="start at this pair (0-based), for a run in parts")
    p.add_argument("--save", metavar="JSON", help="also write every pair's numbers here")
    p.add_argument("--load", metavar="JSON", nargs="+",
                   help="render nothing: report the numbers of earlier --save files (a run in parts) together")
    p.add_argument("--paths", default="plain,smooth", help="comma-separated paths to compare (plain,smooth)")
    p.add_argument("--anchor-modes", action="store_true",
                   help="also time the smooth path's two ways of getting the ends' keys/values (cache vs batch)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    load_before = load_average()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    import torch

    from morph import Morpher, MorphError, RenderRequest

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        morpher = Morpher(args.model, device="cpu")
        base = RenderRequest(["a", "b"], frames=args.frames, steps=args.steps, seed=args.seed).validate()
    except MorphError as err:
        print(f"bench.quality: error: {err}", file=sys.stderr)
        return 2
    if args.sheet:
        contact_sheet(morpher, base, SHEET_PAIRS[:args.sheet_pairs], args.sheet)
        print(f"wrote {args.sheet}")
        return 0
    rows: dict[str, list[dict]] = {}
    classic: list[float] = []
    reference: list[dict] = []
    if args.load:
        import json

        for name in args.load:
            with open(name) as f:
                part = json.load(f)
            for key, values in part["rows"].items():
                rows.setdefault(key, []).extend(values)
            classic += part["classic"]
            reference += part.get("reference", [])
        print(f"# bench.quality — {len(next(iter(rows.values())))} pairs from {', '.join(args.load)}\n")
        print(report(rows, classic))
        print()
        print(standard_report(rows, reference))
        return 0
    pairs = PAIRS[args.first:args.first + max(1, args.pairs)]
    started = time.perf_counter()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    rows = {f"{path} {pacing}": [] for path in paths for pacing in ("uniform", "perceptual")}
    if args.only:
        rows = {name.strip(): [] for name in args.only.split(",")}
    if not all(len(name.split()) == 2 for name in rows) or len(rows) < 2 or baseline(rows) is None:
        print("bench.quality: error: compare at least two 'path pacing' rows, one of them uniform (the baseline)",
              file=sys.stderr)
        return 2
    for a, b in pairs:
        for name in rows:
            path, pacing = name.split()
            result = morpher.render(dataclasses.replace(base, prompts=[a, b], pacing=pacing, path=path))
            row = measure(result)
            rows[name].append(row)
            if name == baseline(rows):
                classic.append(row["progress_at_half"])
                reference.append(crossfade_reference(result))
            if args.details:
                print(f"{name:18s} {a!r} -> {b!r}: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    print(f"# bench.quality — {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads), load average "
          f"before/after: {load_text(load_before)}/{load_text(load_average())}")
    print(f"model {args.model}, {len(pairs)} prompt pairs, {base.frames} frames, {base.steps} steps "
          f"{base.scheduler}, CFG {base.guidance}, seed {base.seed}; {time.perf_counter() - started:.0f} s\n")
    print(report(rows, classic))
    print()
    print(standard_report(rows, reference))
    if args.save:
        import json

        with open(args.save, "w") as f:
            json.dump({"rows": rows, "classic": classic, "reference": reference}, f)
    if args.drift:
        print()
        print(drift_report(morpher, base, pairs[:4]))
    if not args.no_timing:
        print()
        print(timing_report(morpher, base))
        print()
        print(path_timing_report(morpher, base, anchor_modes=args.anchor_modes))
    return 0


def measure(result) -> dict:
    """The numbers of one render: engine and judge evenness, and the judge's progress at the midpoint."""
    from morph import pacing
    from toykit import judge, shapes

    verdicts = [judge.judge(im) for im in result.frames]
    judged = [judge.feature_distance(x.features, y.features) for x, y in pairwise(verdicts)]
    a, b = shapes.parse(result.request.prompts[0]), shapes.parse(result.request.prompts[1])
    half = min(range(len(result.ts)), key=lambda i: abs(result.ts[i] - 0.5))
    ends = (verdicts[0].matches(a, ("shape", "colour", "background")),
            verdicts[-1].matches(b, ("shape", "colour", "background")))
    standard = standard_measures(result.frames, a, b, [v.features for v in verdicts])
    return {**standard, "engine_max_over_mean": result.max_over_mean, "engine_1_gini": result.one_minus_gini,
            "judge_max_over_mean": pacing.max_over_mean(judged), "judge_1_gini": pacing.one_minus_gini(judged),
            "progress_at_midpoint": judge.progress(verdicts[result.midpoint], a, b),
            "progress_at_half": judge.progress(verdicts[half], a, b),
            "progress": [judge.progress(v, a, b) for v in verdicts] if judge.progress(verdicts[0], a, b) is not None
            else [],
            "ends_match": float(all(ends)), "seconds": result.seconds}


def standard_measures(frames, a: dict, b: dict, feats: list) -> dict:
    """scikit-image's measures of one morph's frames: 1 − SSIM of neighbouring grey frames and their mean
    CIEDE2000; per measure max/mean, 1 − Gini, the largest step over the mean, path/direct; and the drift of a
    background or shape colour both prompts share (None where they share none): the largest CIEDE2000 from
    the ends' mean of the median colour where it is at both ends (``drift_*``: inside the judge's shape at both
    ends, or clear of it at both), and as the judge reads it in each frame (``judge_drift_*``, from ``feats``,
    the frames' ``toykit.judge`` features). The judge's reading also moves when it takes another patch for the
    shape (an in-between background no palette colour is near), so ``drift_*`` is the measure of the goal."""
    import numpy as np
    from skimage.color import deltaE_ciede2000, rgb2gray, rgb2lab
    from skimage.metrics import structural_similarity

    from morph import pacing
    from toykit import judge

    rgb = [np.asarray(f.convert("RGB"), dtype=np.float64) / 255 for f in frames]
    grey = [rgb2gray(x) for x in rgb]
    lab = [rgb2lab(x) for x in rgb]

    def ssim(i, j):
        return 1.0 - structural_similarity(grey[i], grey[j], data_range=1.0)

    def de(i, j):
        return float(deltaE_ciede2000(lab[i], lab[j]).mean())

    out: dict = {}
    last = len(frames) - 1
    for name, dist in (("ssim", ssim), ("de", de)):
        steps = [dist(i, i + 1) for i in range(last)]
        direct = dist(0, last)
        out[f"{name}_max_over_mean"] = pacing.max_over_mean(steps)
        out[f"{name}_1_gini"] = pacing.one_minus_gini(steps)
        out[f"{name}_path_over_direct"] = sum(steps) / direct if direct > 1e-9 else float("nan")
    def largest_from_ends(values) -> float:
        ref = (values[0] + values[-1]) / 2
        return max(float(deltaE_ciede2000(v, ref)) for v in values)

    small = [judge.as_array(f) for f in frames]  # the judge's 64×64 view
    shape_a, shape_b = judge.shape_mask(frames[0]), judge.shape_mask(frames[-1])
    regions = {"background": ~_grown(shape_a | shape_b, 2), "colour": _shrunk(shape_a & shape_b, 1)}
    for attribute, part in (("background", slice(3, 6)), ("colour", slice(0, 3))):
        drift = judged = None
        if attribute in a and a.get(attribute) == b.get(attribute):
            judged = largest_from_ends(
                [rgb2lab(np.asarray(x[part], dtype=np.float64).reshape(1, 1, 3))[0, 0] for x in feats])
            region = regions[attribute]
            if region.sum() >= judge.MIN_PIXELS:
                drift = largest_from_ends(
                    [rgb2lab((np.median(x[region], axis=0) / 255).reshape(1, 1, 3))[0, 0] for x in small])
        out[f"drift_{attribute}"] = drift
        out[f"judge_drift_{attribute}"] = judged
    return out


def crossfade_reference(result) -> dict:
    """The standard measures of the reference morph that uses no model: ``result``'s two end frames (the
    prompts' plain renders, the same on every path) cross-faded pixel by pixel in RGB, as many frames, evenly
    spaced. It goes straight from one picture to the other at an even rate, so its figures are the best these
    measures give any morph between the two: by CIEDE2000 about 1.1 path/direct (ΔE2000 is not linear along a
    straight RGB line). 1 − SSIM is no distance along a path: a straight fade's steps sum to about a fifth of
    its direct distance, so SSIM path/direct says nothing of wandering; and its steps are uneven along a fade
    at an even rate (largest next to the ends: a little of another picture takes more structure from a crisp
    picture than from a blend), so SSIM max/mean and 1 − Gini have this row as their floor."""
    import numpy as np
    from PIL import Image

    from toykit import judge, shapes

    a, b = (np.asarray(f.convert("RGB"), dtype=np.float64) for f in (result.frames[0], result.frames[-1]))
    n = len(result.frames)
    frames = [Image.fromarray(((1 - t) * a + t * b + 0.5).astype(np.uint8)) for t in np.linspace(0, 1, n)]
    prompts = result.request.prompts
    return standard_measures(frames, shapes.parse(prompts[0]), shapes.parse(prompts[-1]),
                             [judge.features(f) for f in frames])


def _grown(mask, pixels: int):
    for _ in range(pixels):
        mask = mask | _neighbours(mask, any)
    return mask


def _shrunk(mask, pixels: int):
    for _ in range(pixels):
        mask = mask & _neighbours(mask, all)
    return mask


def _neighbours(mask, how):
    """Whether any (``how=any``) or all (``all``) of each pixel's four neighbours are set (edges wrap: the
    shapes keep off the border)."""
    import numpy as np

    rolled = [np.roll(mask, shift, axis) for shift in (1, -1) for axis in (0, 1)]
    return np.logical_or.reduce(rolled) if how is any else np.logical_and.reduce(rolled)


#: The goal for every pair's largest step: at most this many times its mean step (standard_report).
STEP_GOAL = 2.5
#: The name of standard_report's reference row (crossfade_reference).
REFERENCE = "the ends' pixel cross-fade (no model: reference)"


def standard_report(rows: dict, reference: list[dict] | None = None) -> str:
    """The scikit-image measures of every path and pacing, averaged over the pairs, with the goals; with
    ``reference`` (:func:`crossfade_reference` of each pair), its row last."""
    def mean(values):
        values = [v for v in values if v is not None and v == v]
        return statistics.fmean(values) if values else float("nan")

    lines = ["| path, pacing | SSIM max/mean | SSIM 1 − Gini | SSIM path/direct | ΔE max/mean | ΔE 1 − Gini | "
             "ΔE path/direct | worst pair's max/mean (SSIM / ΔE) | shared background drift ΔE (mean / max) | "
             "shared colour drift ΔE (mean / max) | the judge's reading of both drifts (mean / max) | "
             "render s (mean) |",
             "|---" * 12 + "|"]
    def drift(rs, key):
        values = [r[key] for r in rs if r[key] is not None]
        return f"{mean(values):.1f} / {max(values):.1f} ({len(values)} pairs)" if values else "–"

    named = list(rows.items())
    if reference:
        named.append((REFERENCE, reference))
    for name, rs in named:
        seconds = "–" if name == REFERENCE else f"{mean(r['seconds'] for r in rs):.2f}"  # no render to time
        lines.append(
            f"| {name} | {mean(r['ssim_max_over_mean'] for r in rs):.2f} | {mean(r['ssim_1_gini'] for r in rs):.3f} | "
            f"{mean(r['ssim_path_over_direct'] for r in rs):.2f} | {mean(r['de_max_over_mean'] for r in rs):.2f} | "
            f"{mean(r['de_1_gini'] for r in rs):.3f} | {mean(r['de_path_over_direct'] for r in rs):.2f} | "
            f"{max(r['ssim_max_over_mean'] for r in rs):.2f} / {max(r['de_max_over_mean'] for r in rs):.2f} | "
            f"{drift(rs, 'drift_background')} | {drift(rs, 'drift_colour')} | "
            f"{drift(rs, 'judge_drift_background')}, {drift(rs, 'judge_drift_colour')} | "
            f"{seconds} |")
    mids = {name: [r["progress_at_midpoint"] for r in rs if r["progress_at_midpoint"] is not None]
            for name, rs in rows.items()}
    lines.append("")
    frames = len(rows[next(iter(rows))][0].get("progress", [])) or 24
    hit, total = midpoint_ceiling(frames)
    lines.append("midpoint within ±0.1 of the judge's 50/50: " + ", ".join(
        f"{name} {sum(abs(m - 0.5) <= 0.1 for m in ms)}/{len(ms)}" for name, ms in mids.items())
        + "; any frame of the morph (the best the pick could do): " + ", ".join(
        f"{name} {sum(min(abs(p - 0.5) for p in r['progress']) <= 0.1 for r in rs if r.get('progress'))}/"
        f"{sum(bool(r.get('progress')) for r in rs)}" for name, rs in rows.items())
        + f"; an ideal even colour morph of {frames} frames has such a frame in {hit}/{total} colour pairs "
        "(midpoint_ceiling)")
    lines.append(f"pairs with a step over {STEP_GOAL:g}× their mean (SSIM / ΔE): " + ", ".join(
        f"{name} {sum(r['ssim_max_over_mean'] > STEP_GOAL for r in rs)} / "
        f"{sum(r['de_max_over_mean'] > STEP_GOAL for r in rs)} of {len(rs)}" for name, rs in named))
    lines.append("goals (smooth perceptual, both measures): max/mean ≤ 1.5, 1 − Gini ≥ 0.85, path/direct ≤ 1.5, "
                 f"no pair's step > {STEP_GOAL:g}× its mean, shared drift < ΔE 5, smooth ≤ 1.25× plain uniform's time")
    return "\n".join(lines)


def path_timing_report(morpher, base, anchor_modes: bool = False) -> str:
    """The default morph's render time, plain uniform vs smooth perceptual (and, with ``anchor_modes``, the
    smooth path's cached vs in-batch ends), best of two each, same run, same Morpher."""
    request = dataclasses.replace(base, prompts=["a red circle", "a blue square"])
    cases = [("plain uniform", "plain", "uniform", "auto"), ("plain perceptual", "plain", "perceptual", "auto"),
             ("smooth uniform", "smooth", "uniform", "auto"), ("smooth perceptual", "smooth", "perceptual", "auto")]
    if anchor_modes:
        cases += [("smooth perceptual, ends cached", "smooth", "perceptual", "cache"),
                  ("smooth perceptual, ends in every batch", "smooth", "perceptual", "batch")]
    best: dict[str, float] = {}
    saved = morpher.anchor_mode
    try:
        for _ in range(2):
            for label, path, pacing, mode in cases:
                morpher.anchor_mode = mode
                t0 = time.perf_counter()
                morpher.render(dataclasses.replace(request, path=path, pacing=pacing))
                best[label] = min(best.get(label, float("inf")), time.perf_counter() - t0)
    finally:
        morpher.anchor_mode = saved
    ref = best["plain uniform"]
    return "\n".join([f"render time of '{request.prompts[0]}' -> '{request.prompts[1]}' ({request.frames} frames, "
                       f"{request.steps} steps), best of 2, ratio to plain uniform:"]
                      + [f"- {label}: {s:.2f} s ({s / ref:.2f}x)" for label, s in best.items()])


def baseline(rows: dict) -> str | None:
    """The row every other is compared with: the first with uniform pacing (its frame at t = 0.5 is the
    classic midpoint)."""
    return next((name for name in rows if name.split()[-1] == "uniform"), None)


def report(rows: dict, classic: list[float]) -> str:
    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else float("nan")

    def off_half(values):
        return mean([abs(v - 0.5) for v in values if v is not None])

    base = baseline(rows)
    second = [name for name in rows if name != base][0]
    lines = ["| path, pacing | engine max/mean | engine 1 − Gini | judge max/mean | judge 1 − Gini | "
             "midpoint progress (0.5 ideal) | mean |progress − 0.5| | ends match the prompts |",
             "|---|---|---|---|---|---|---|---|"]
    for name, rs in rows.items():
        mids = [r["progress_at_midpoint"] for r in rs]
        lines.append(f"| {name} | {mean(r['engine_max_over_mean'] for r in rs):.2f} | "
                     f"{mean(r['engine_1_gini'] for r in rs):.3f} | {mean(r['judge_max_over_mean'] for r in rs):.2f} | "
                     f"{mean(r['judge_1_gini'] for r in rs):.3f} | {mean(mids):.2f} | {off_half(mids):.2f} | "
                     f"{mean(r['ends_match'] for r in rs):.0%} |")
    lines.append(f"| {base}, frame at t = 0.5 (classic midpoint) | | | | | {mean(classic):.2f} | "
                 f"{off_half(classic):.2f} | |")
    u, p = rows[base], rows[second]
    n = len(u)
    lines.append("")
    for key, label in (("engine_max_over_mean", "engine max/mean"), ("judge_max_over_mean", "judge max/mean")):
        better = sum(y[key] < x[key] for x, y in zip(u, p, strict=True))
        ratio = mean(x[key] for x in u) / mean(y[key] for y in p)
        lines.append(f"{label}: {second} lower in {better}/{n} pairs; ratio {base}/{second} {ratio:.2f}x")
    for key, label in (("engine_1_gini", "engine 1 − Gini"), ("judge_1_gini", "judge 1 − Gini")):
        better = sum(y[key] > x[key] for x, y in zip(u, p, strict=True))
        lines.append(f"{label}: {second} higher in {better}/{n} pairs")
    closer = sum(abs(y["progress_at_midpoint"] - 0.5) < abs(x["progress_at_midpoint"] - 0.5)
                 for x, y in zip(u, p, strict=True) if x["progress_at_midpoint"] is not None)
    lines.append(f"midpoint: {second}'s closer to 0.5 than {base}'s in {closer}/{n} pairs")
    return "\n".join(lines)


def midpoint_ceiling(frames: int = 24) -> tuple[int, int]:
    """How often the goal "midpoint within ±0.1 of the judge's 50/50" can be met at all: over every pair of
    palette colours, a circle whose colour goes from one to the other in even RGB steps (the ideal colour morph,
    drawn, no model), ``frames`` frames; returns (pairs with a frame whose judge progress is within ±0.1 of
    0.5, pairs). The judge's colour probabilities are sharp (:data:`toykit.judge.COLOUR_SIGMA`): its share
    passes 0.4 → 0.6 within a few RGB units, less than one frame's step."""
    import itertools

    import numpy as np
    from PIL import Image

    from toykit import judge, shapes

    names = list(shapes.COLOURS)
    hit = total = 0
    for ca, cb in itertools.combinations(names, 2):
        background = next(c for c in ("white", "black", "gray") if c not in (ca, cb))
        scene = shapes.Scene("circle", ca, background, 32, 32, 32)
        picture = np.asarray(shapes.draw(scene), dtype=np.float64)
        inside = np.asarray(shapes.shape_mask("circle", scene.box()), dtype=np.float64)[..., None] / 255
        a, b = (shapes.parse(shapes.prompt("circle", c, background)) for c in (ca, cb))
        ends = np.array(shapes.COLOURS[ca], dtype=np.float64), np.array(shapes.COLOURS[cb], dtype=np.float64)
        best = 1.0
        for t in np.linspace(0, 1, frames):
            colour = np.round((1 - t) * ends[0] + t * ends[1])
            frame = Image.fromarray((picture * (1 - inside) + inside * colour + 0.5).astype(np.uint8))
            progress = judge.progress(judge.judge(frame), a, b)
            assert progress is not None  # the colours differ
            best = min(best, abs(progress - 0.5))
        hit += best <= 0.1
        total += 1
    return hit, total


def drift_report(morpher, base, pairs) -> str:
    """frame_drift of fewer denoising steps against the exact render (uniform pacing: same t's)."""
    from toykit import judge

    lines = ["| approximation | engine distance mean / max | judge distance mean / max | pixel mean | "
             "judge agreement |", "|---|---|---|---|---|"]
    exact = [morpher.render(dataclasses.replace(base, prompts=[a, b], pacing="uniform"))
             for a, b in pairs]
    for steps in dict.fromkeys((base.steps, max(1, base.steps // 2), max(1, base.steps // 4))):
        drifts = [judge.frame_drift(e, morpher.render(dataclasses.replace(e.request, steps=steps))) for e in exact]
        avg = {k: statistics.fmean(d[k] for d in drifts) for k in drifts[0] if k != "frames"}
        label = "none: the exact render again" if steps == base.steps else f"{steps} steps instead of {base.steps}"
        lines.append(f"| {label} | {avg['engine_mean']:.3f} / {avg['engine_max']:.3f} | "
                     f"{avg['judge_mean']:.3f} / {avg['judge_max']:.3f} | {avg['pixel_mean']:.1f} | "
                     f"{avg['agreement']:.0%} |")
    return "\n".join(lines)


def timing_report(morpher, base) -> str:
    """The playground's default morph on this model vs on ``tiny``, best of two each, same run."""
    from morph import Morpher

    request = dataclasses.replace(base, prompts=["a red circle", "a blue square"],
                                  pacing="perceptual")
    tiny = Morpher("tiny", device="cpu")
    best: dict[str, float] = {}
    for _ in range(2):
        for name, m in ((morpher.model, morpher), ("tiny", tiny)):
            t0 = time.perf_counter()
            m.render(request)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
    ratio = best[morpher.model] / best["tiny"]
    return (f"default morph '{request.prompts[0]}' -> '{request.prompts[1]}' ({request.frames} frames, {request.steps} "
            f"steps, perceptual): {morpher.model} {best[morpher.model]:.2f} s, tiny {best['tiny']:.2f} s "
            f"(ratio {ratio:.2f}x), best of 2")


if __name__ == "__main__":
    sys.exit(main())

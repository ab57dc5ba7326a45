"""Pacing quality on pictures: uniform vs perceptual pacing on the trained ``toy`` model, judged twice.

``python -m bench.quality`` renders every prompt pair of :data:`PAIRS` (colour changes, shape changes, both,
backgrounds, sizes, held-out shape/colour pairs) with uniform pacing (the baseline) and with perceptual pacing
(same frames, same UNet work), and reports for each pacing, averaged over the pairs:

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
import platform
import statistics
import sys
import time
import warnings
from itertools import pairwise

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
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    load_before = _load()
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
    pairs = PAIRS[:max(1, args.pairs)]
    started = time.perf_counter()
    rows: dict[str, list[dict]] = {p: [] for p in ("uniform", "perceptual")}
    classic: list[float] = []
    for a, b in pairs:
        for pacing in rows:
            result = morpher.render(dataclasses.replace(base, prompts=[a, b], pacing=pacing))
            row = measure(result)
            rows[pacing].append(row)
            if pacing == "uniform":
                classic.append(row["progress_at_half"])
            if args.details:
                print(f"{pacing:10s} {a!r} -> {b!r}: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    print(f"# bench.quality — {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), load average before/after: {load_before}/{_load()}")
    print(f"model {args.model}, {len(pairs)} prompt pairs, {base.frames} frames, {base.steps} steps "
          f"{base.scheduler}, CFG {base.guidance}, seed {base.seed}; {time.perf_counter() - started:.0f} s\n")
    print(report(rows, classic))
    if args.drift:
        print()
        print(drift_report(morpher, base, pairs[:4]))
    if not args.no_timing:
        print()
        print(timing_report(morpher, base))
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
    return {"engine_max_over_mean": result.max_over_mean, "engine_1_gini": result.one_minus_gini,
            "judge_max_over_mean": pacing.max_over_mean(judged), "judge_1_gini": pacing.one_minus_gini(judged),
            "progress_at_midpoint": judge.progress(verdicts[result.midpoint], a, b),
            "progress_at_half": judge.progress(verdicts[half], a, b),
            "ends_match": float(all(ends)), "seconds": result.seconds}


def report(rows: dict, classic: list[float]) -> str:
    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else float("nan")

    def off_half(values):
        return mean([abs(v - 0.5) for v in values if v is not None])

    lines = ["| pacing | engine max/mean | engine 1 − Gini | judge max/mean | judge 1 − Gini | "
             "midpoint progress (0.5 ideal) | mean |progress − 0.5| | ends match the prompts |",
             "|---|---|---|---|---|---|---|---|"]
    for name, rs in rows.items():
        mids = [r["progress_at_midpoint"] for r in rs]
        lines.append(f"| {name} | {mean(r['engine_max_over_mean'] for r in rs):.2f} | "
                     f"{mean(r['engine_1_gini'] for r in rs):.3f} | {mean(r['judge_max_over_mean'] for r in rs):.2f} | "
                     f"{mean(r['judge_1_gini'] for r in rs):.3f} | {mean(mids):.2f} | {off_half(mids):.2f} | "
                     f"{mean(r['ends_match'] for r in rs):.0%} |")
    lines.append(f"| uniform, frame at t = 0.5 (classic midpoint) | | | | | {mean(classic):.2f} | "
                 f"{off_half(classic):.2f} | |")
    u, p = rows["uniform"], rows["perceptual"]
    n = len(u)
    lines.append("")
    for key, label in (("engine_max_over_mean", "engine max/mean"), ("judge_max_over_mean", "judge max/mean")):
        better = sum(y[key] < x[key] for x, y in zip(u, p, strict=True))
        ratio = mean(x[key] for x in u) / mean(y[key] for y in p)
        lines.append(f"{label}: perceptual lower in {better}/{n} pairs; ratio uniform/perceptual {ratio:.2f}x")
    for key, label in (("engine_1_gini", "engine 1 − Gini"), ("judge_1_gini", "judge 1 − Gini")):
        better = sum(y[key] > x[key] for x, y in zip(u, p, strict=True))
        lines.append(f"{label}: perceptual higher in {better}/{n} pairs")
    closer = sum(abs(y["progress_at_midpoint"] - 0.5) < abs(x["progress_at_midpoint"] - 0.5)
                 for x, y in zip(u, p, strict=True) if x["progress_at_midpoint"] is not None)
    lines.append(f"midpoint: perceptual's closer to 0.5 than uniform's in {closer}/{n} pairs")
    return "\n".join(lines)


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


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())

"""What one job stores, before and after "store only the frames one can pick", measured in one run.

``python -m bench.storage`` makes the files of one 60-frame 512 px job with the worker's own
:func:`bot.render_output.render_files` (the bot's default format, MP4 and GIF, within Discord's 10 MiB) and
counts their bytes by kind: the animations, the contact sheet, and the frames kept as lossless PNG. The
baseline is the same job as the bot stored it before: every frame as PNG (the other files are the very same
bytes, so the baseline is this job's files plus the PNGs of the frames no longer kept). The encode time of
the files is the best of ``--repeat``, for both in the same run.

Two kinds of frames: photo-like ones (:func:`bench.video.scene_frames`: smooth sky, textured hills, grain;
what a real model's morph looks like to a PNG encoder) and coloured noise (what a model with random weights
renders, the worst case for every encoder: the 48–65 MiB per job measured with one).
"""
from __future__ import annotations

import argparse
import datetime
import io
import time

import numpy as np
from PIL import Image

from bench.results import load_average, load_text, machine

MIB = 1024 * 1024


def noise_frames(n: int, size: int, seed: int = 0) -> list[Image.Image]:
    """``n`` frames of smoothly changing coloured noise (a random-weights model's morph)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 256, (2, size, size, 3)).astype(np.float32)
    return [Image.fromarray((a + (b - a) * (i / max(1, n - 1))).astype(np.uint8)) for i in range(n)]


def render_result(frames: list[Image.Image], candidates: int = 5):
    """A :class:`morph.request.RenderResult` of ``frames`` evenly spaced, its candidates around the middle."""
    from morph.request import RenderResult

    n = len(frames)
    mid = n // 2
    picks = [min(n - 1, max(0, mid + k - candidates // 2)) for k in range(candidates)]
    return RenderResult(frames=frames, ts=[i / (n - 1) for i in range(n)], distances=[1.0] * (n - 1),
                        max_over_mean=1.0, one_minus_gini=1.0, midpoint=mid, candidates=picks)


def png_bytes(image: Image.Image) -> int:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return len(buf.getvalue())


def measure(frames: list[Image.Image], repeat: int) -> dict:
    from bot.render_output import render_files
    from morph.output import frame_filename

    result = render_result(frames)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        files, summary = render_files(result, 10 * MIB, output_format="both")
        best = min(best, time.perf_counter() - started)
    kept = set(summary.pickable_frames)
    dropped = [png_bytes(frames[i]) for i in range(len(frames)) if i not in kept]
    started = time.perf_counter()
    for i in range(len(frames)):  # the baseline's extra work: the PNGs of the frames no longer kept
        if i not in kept:
            png_bytes(frames[i])
    baseline_s = best + (time.perf_counter() - started)
    frame_bytes = sum(len(files[frame_filename(i)]) for i in kept)
    rest = {name: len(data) for name, data in files.items() if not name.startswith("frame_")}
    return dict(kept=len(kept), frames=len(frames), frame_bytes=frame_bytes, dropped_bytes=sum(dropped),
                rest=rest, total=sum(len(d) for d in files.values()), baseline=sum(len(d) for d in files.values())
                + sum(dropped), seconds=best, baseline_s=baseline_s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    from bench.video import scene_frames

    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}, "
          f"load average {load_text(load_average())}; {args.frames} frames of {args.size} px, format both, "
          "10 MiB upload limit\n")
    print("| frames | before: all frames PNG | after: pickable frames PNG | MP4 + GIF + sheet | job before | "
          "job after | after/before | files encoded, before → after |")
    print("|---|---|---|---|---|---|---|---|")
    for name, frames in (("photo-like", scene_frames(args.frames, args.size)),
                         ("noise (random weights)", noise_frames(args.frames, args.size))):
        m = measure(frames, args.repeat)
        rest = sum(m["rest"].values())
        print(f"| {name} | {m['frames']} = {(m['frame_bytes'] + m['dropped_bytes']) / MIB:.1f} MiB "
              f"| {m['kept']} = {m['frame_bytes'] / MIB:.1f} MiB | {rest / MIB:.1f} MiB "
              f"| {m['baseline'] / MIB:.1f} MiB | {m['total'] / MIB:.1f} MiB | **{m['total'] / m['baseline']:.2f}** "
              f"| {m['baseline_s']:.2f} s → {m['seconds']:.2f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

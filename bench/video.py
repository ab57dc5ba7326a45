"""GIF vs MP4 on the same frames and the same byte budget: file size and fidelity, in one run.

``python -m bench.video`` encodes one set of frames with :func:`morph.output.encode_gif` and
:func:`morph.video.encode_mp4` at each byte budget, decodes both files again, and compares what a viewer
sees at each frame's moment with the frame as rendered (the PNG): PSNR over RGB and SSIM of the luminance
(mean over frames), each file's bytes, and the ratios GIF/MP4. Encode times are printed too (best of
``--repeat``), as a ratio of the two encoders in the same run.

The frames (:func:`scene_frames`) are made procedurally to look like a photograph changing the way a prompt
morph does: a sky with a smooth colour gradient and a glowing sun, layered hills with fractal texture and
a little sensor grain, going from a dawn scene to a dusk one with other hills while the sun moves. Smooth
gradients are what a GIF's 256 colours band and dither; texture and grain are what costs a video codec bits.
The ``tiny`` model's frames would be coloured noise (random weights): a worst case for both, not a picture.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageSequence

from morph.inversion import psnr  # the one PSNR (also the picture ends' reconstruction)

if TYPE_CHECKING:
    from morph.output import GifResult
    from morph.video import VideoResult

MIB = 1024 * 1024
DEFAULT_BUDGETS = "10,1,0.5,0.1,0.05"  # MiB: Discord's default upload limit, then tighter


def scene_frames(n: int = 24, size: int = 512, seed: int = 0) -> list[Image.Image]:
    """``n`` frames of a photo-like landscape morphing from dawn to dusk (see the module docstring)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)

    def fractal(octaves: int = 7) -> np.ndarray:  # smooth value noise, summed over octaves, about -1..1
        total = np.zeros((size, size), np.float32)
        for o in range(octaves):
            cells = 3 * 2 ** o
            grid = rng.standard_normal((cells, cells)).astype(np.float32)
            big = Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BICUBIC)
            total += np.asarray(big) * 0.7 ** o
        return total / 2

    skies = (np.array([[0.98, 0.75, 0.55], [0.35, 0.55, 0.85]]),  # dawn: warm horizon, blue above
             np.array([[0.95, 0.45, 0.30], [0.20, 0.15, 0.40]]))  # dusk: orange horizon, violet above
    hills = ((fractal(), fractal(), np.array([0.25, 0.45, 0.20]), np.array([0.12, 0.30, 0.12])),
             (fractal(), fractal(), np.array([0.40, 0.35, 0.20]), np.array([0.20, 0.15, 0.18])))
    grain = [rng.normal(0, 2.5, (size, size, 3)).astype(np.float32) for _ in range(n)]
    frames = []
    for i in range(n):
        t = i / max(1, n - 1)
        s = t * t * (3 - 2 * t)  # eased, as morphs change unevenly
        horizon, top = (1 - s) * skies[0] + s * skies[1]
        img = horizon + (top - horizon) * (1 - y[..., None]) ** 1.5
        sx, sy = 0.25 + 0.5 * t, 0.35 - 0.15 * np.sin(np.pi * t)  # the sun crosses the sky
        r2 = (x - sx) ** 2 + (y - sy) ** 2
        img = img + np.array([1.0, 0.9, 0.6]) * (np.exp(-r2 / 0.002) + 0.35 * np.exp(-r2 / 0.03))[..., None]
        for layer, (base, depth) in enumerate(((0.62, 0.10), (0.78, 0.08))):
            shape = (1 - s) * hills[0][layer] + s * hills[1][layer]
            colour = (1 - s) * hills[0][2 + layer] + s * hills[1][2 + layer]
            ridge = base + depth * shape[size // 2]  # the ridge line from one row of the field
            texture = 0.3 * ((1 - s) * hills[0][1 - layer] + s * hills[1][1 - layer])
            land = (y > ridge[None, :])[..., None]
            shade = colour * (1 + texture[..., None]) * (0.8 + 0.4 * (1 - y[..., None]))
            img = np.where(land, shade, img)
        img = np.clip(img * 255 + grain[i], 0, 255).astype(np.uint8)
        frames.append(Image.fromarray(img))
    return frames


# ---------------------------------------------------------------------------------------------- decode
def gif_timeline(data: bytes) -> list[tuple[Image.Image, int]]:
    """(frame, ms shown) of every frame of a GIF."""
    import io

    im = Image.open(io.BytesIO(data))
    return [(f.convert("RGB"), int(f.info.get("duration", 100))) for f in ImageSequence.Iterator(im)]


def shown_at_frames(timeline: list[tuple[Image.Image, int]], n: int, duration_ms: int,
                    size: tuple[int, int]) -> list[np.ndarray]:
    """What the viewer sees at each of ``n`` source frames' moments (frame i starts at i × duration_ms),
    scaled back to ``size`` where the file is smaller: the fair comparison when frames were dropped or the
    picture shrunk to fit."""
    out, start, j = [], 0, 0
    for i in range(n):
        moment = i * duration_ms
        while j + 1 < len(timeline) and start + timeline[j][1] <= moment:
            start += timeline[j][1]
            j += 1
        frame = timeline[j][0]
        if frame.size != size:
            frame = frame.resize(size, Image.Resampling.BICUBIC)
        out.append(np.asarray(frame, dtype=np.float64))
    return out


# --------------------------------------------------------------------------------------------- metrics
def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Mean SSIM of the luminance (BT.601 weights) over 7×7 windows, as Wang et al. 2004 with uniform
    windows (scikit-image's default): 1 is identical."""
    weights = np.array([0.299, 0.587, 0.114])
    x, y = np.asarray(a, np.float64) @ weights, np.asarray(b, np.float64) @ weights
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def mean(img):  # window means from a summed-area table (valid windows only)
        s = np.pad(img, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        w = window
        return (s[w:, w:] - s[:-w, w:] - s[w:, :-w] + s[:-w, :-w]) / (w * w)

    mx, my = mean(x), mean(y)
    w_unbias = window * window / (window * window - 1)  # sample (co)variances, as scikit-image
    vx = (mean(x * x) - mx * mx) * w_unbias
    vy = (mean(y * y) - my * my) * w_unbias
    cov = (mean(x * y) - mx * my) * w_unbias
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(value.mean())


def fidelity(shown: list[np.ndarray], frames: list[Image.Image]) -> tuple[float, float]:
    """(mean PSNR, mean SSIM) of what is shown vs the rendered frames."""
    src = [np.asarray(f.convert("RGB"), dtype=np.float64) for f in frames]
    return (float(np.mean([psnr(a, b) for a, b in zip(shown, src, strict=True)])),
            float(np.mean([ssim(a, b) for a, b in zip(shown, src, strict=True)])))


# ------------------------------------------------------------------------------------------------- run
def compare(frames: list[Image.Image], budget: int, duration_ms: int = 100, repeat: int = 1) -> dict:
    """Encode ``frames`` both ways within ``budget`` bytes, and an MP4 filling the GIF's bytes by bitrate; each
    one's bytes, fidelity, reductions and best encode time."""
    from morph.output import encode_gif
    from morph.video import decode_mp4, encode_mp4

    size = frames[0].size
    row: dict[str, Any] = {"budget": budget}
    enc: GifResult | VideoResult
    for kind in ("gif", "mp4", "mp4_as_gif"):
        best = float("inf")
        for _ in range(max(1, repeat)):
            started = time.perf_counter()
            if kind == "gif":
                enc = encode_gif(frames, budget_bytes=budget, duration_ms=duration_ms)
            elif kind == "mp4":
                enc = encode_mp4(frames, budget, duration_ms=duration_ms)
            else:  # the MP4 given the GIF's bytes to fill: fidelity at equal size
                enc = encode_mp4(frames, row["gif"]["bytes"], duration_ms=duration_ms, crf=None)
            best = min(best, time.perf_counter() - started)
        if kind == "gif":
            timeline = gif_timeline(enc.data)
        else:
            timeline = [(f, enc.duration_ms) for f in decode_mp4(enc.data)]
        row[kind] = {"bytes": len(enc.data), "seconds": best, "reductions": [str(r) for r in enc.reductions],
                     "fidelity": fidelity(shown_at_frames(timeline, len(frames), duration_ms, size), frames),
                     "frames": len(timeline), "size": (enc.width, enc.height)}
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--duration-ms", type=int, default=100)
    p.add_argument("--budgets", default=DEFAULT_BUDGETS, help=f"MiB, comma-separated ({DEFAULT_BUDGETS})")
    p.add_argument("--repeat", type=int, default=1, help="encodes per file; the best time is reported")
    args = p.parse_args(argv)
    import av

    frames = scene_frames(args.frames, args.size)
    print(f"# GIF vs MP4, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.processor() or platform.machine()}, PyAV {av.__version__} (libavcodec "
          f"{'.'.join(map(str, av.library_versions['libavcodec']))})")
    print(f"frames: {args.frames} procedural landscape frames (bench.video.scene_frames), {args.size}x{args.size}, "
          f"{args.duration_ms} ms each; PNGs together {_png_bytes(frames) / MIB:.2f} MiB")
    print()
    print("| budget | GIF bytes | MP4 bytes | GIF/MP4 bytes | PSNR dB GIF / MP4 / MP4 at GIF's bytes "
          "| SSIM GIF / MP4 / MP4 at GIF's bytes | GIF reduced | MP4 reduced | encode s GIF / MP4 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mib in (float(b) for b in args.budgets.split(",")):
        row = compare(frames, int(mib * MIB), args.duration_ms, args.repeat)
        g, m, e = row["gif"], row["mp4"], row["mp4_as_gif"]
        print(f"| {mib:g} MiB | {g['bytes']:,} | {m['bytes']:,} | {g['bytes'] / m['bytes']:.1f}x "
              f"| {g['fidelity'][0]:.2f} / {m['fidelity'][0]:.2f} / {e['fidelity'][0]:.2f} "
              f"| {g['fidelity'][1]:.4f} / {m['fidelity'][1]:.4f} / {e['fidelity'][1]:.4f} "
              f"| {', '.join(g['reductions']) or '—'} | {', '.join(m['reductions']) or '— (constant quality)'} "
              f"| {g['seconds']:.2f} / {m['seconds']:.2f} |")
    return 0


def _png_bytes(frames) -> int:
    import io

    total = 0
    for f in frames:
        buf = io.BytesIO()
        f.save(buf, format="PNG")
        total += buf.tell()
    return total


if __name__ == "__main__":
    raise SystemExit(main())

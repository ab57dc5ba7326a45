"""Turn rendered frames into files: a looping GIF that fits an upload limit, a contact sheet, PNGs. (MP4s:
:mod:`morph.video`; the one call for "the morph as MP4, GIF or both": :mod:`morph.animation`.)

The GIF encoder walks a fixed ladder of ever cheaper settings, in the order the product prefers to give
things up: first the picture size (down to a quarter, never below 64 px), then the palette (256 → 128 → 64
colours), then the frame count (drop every other frame, keeping the first and the last, down to two). It
does not try every rung: GIF size scales roughly with pixels × frames × bits per colour, so after each
encode it predicts which rung is the first to fit and jumps there; a wrong guess only costs one more
encode on the next rung. The result is never larger than the budget; if even the cheapest rung is too big it says so.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from morph.request import Invalid, MorphError, Notice

DEFAULT_BUDGET = 10 * 1024 * 1024  # Discord's default upload limit
SIZE_SCALES = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25)  # picture size ladder, fractions of the input
MIN_SIDE = 64  # never shrink a side below this (unless the input is already smaller)
PALETTES = (256, 128, 64)
MIN_FRAMES = 2
SAFETY = 0.97  # aim predictions a little under the budget: LZW size is not exactly proportional

# Contact sheet geometry (see contact_sheet for the size formula).
SHEET_CELL = 256
SHEET_GAP = 8
SHEET_MAX_COLUMNS = 5


@dataclass
class GifResult:
    """An encoded GIF and what was given up to make it fit the budget."""

    data: bytes
    width: int
    height: int
    frame_count: int  # frames in the file (boomerang included)
    colors: int
    reductions: list[Notice] = field(default_factory=list)  # e.g. size 512→384, palette 256→128
    duration_ms: int = 100  # how long each frame is shown (longer when frames were dropped)
    encodes: int = 0  # how many full encodes it took (for tests and tuning)


@dataclass(frozen=True)
class _Rung:
    scale: float
    colors: int
    keep: tuple[int, ...]  # indices of the source frames kept


def _thin(indices: tuple[int, ...]) -> tuple[int, ...]:
    """Drop every other frame, always keeping the first and the last."""
    kept = indices[::2]
    if kept[-1] != indices[-1]:
        kept = kept + (indices[-1],)
    return kept


def size_scales(width: int, height: int) -> list[float]:
    """The picture sizes an encoder may step down to, largest first: SIZE_SCALES that keep both sides at
    MIN_SIDE or more (all of a picture already smaller)."""
    floor = min(MIN_SIDE, width, height)
    return [s for s in SIZE_SCALES if s == 1.0 or min(width, height) * s >= floor]


def _ladder(n_frames: int, width: int, height: int) -> list[_Rung]:
    """All settings to try, best first: size steps, then palette steps, then frame halvings."""
    scales = size_scales(width, height)
    everything = tuple(range(n_frames))
    rungs = [_Rung(s, PALETTES[0], everything) for s in scales]
    smallest = scales[-1]
    rungs += [_Rung(smallest, c, everything) for c in PALETTES[1:]]
    keep = everything
    while len(keep) > MIN_FRAMES:
        keep = _thin(keep)
        rungs.append(_Rung(smallest, PALETTES[-1], keep))
    return rungs


def even_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """``width`` and ``height`` scaled by ``scale``, each rounded to an even number (at least 2)."""
    def even(x: int) -> int:
        return max(2, int(round(x * scale / 2)) * 2)

    return even(width), even(height)


def _dims(rung: _Rung, width: int, height: int) -> tuple[int, int]:
    if rung.scale == 1.0:
        return width, height
    return even_size(width, height, rung.scale)


def boomerang_frames(frames: list) -> list:
    """Forward then backward, without repeating the two end frames (the loop closes the circle)."""
    return frames + frames[-2:0:-1]


def _frame_duration(duration_ms: int, n_source: int, n_kept: int) -> int:
    """Keep the animation's total length when frames are dropped; GIF timing is in 10 ms units."""
    ms = duration_ms * n_source / n_kept
    return max(10, int(round(ms / 10)) * 10)


def _encode(frames: list[Image.Image], rung: _Rung, width: int, height: int, duration_ms: int,
            boomerang: bool) -> bytes:
    w, h = _dims(rung, width, height)
    picked = [frames[i] for i in rung.keep]
    if (w, h) != (width, height):
        picked = [f.resize((w, h), Image.Resampling.LANCZOS) for f in picked]
    palette = _global_palette(picked, rung.colors)
    quantized = [f.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for f in picked]
    if boomerang:
        quantized = boomerang_frames(quantized)
    buf = io.BytesIO()
    quantized[0].save(buf, format="GIF", save_all=True, append_images=quantized[1:], loop=0,
                      duration=_frame_duration(duration_ms, len(frames), len(rung.keep)),
                      disposal=1, optimize=False)
    return buf.getvalue()


def _global_palette(frames: list[Image.Image], colors: int) -> Image.Image:
    """One palette for the whole animation (no colour flicker between frames), built from a mosaic of
    up to 16 evenly spaced frames, each shrunk so the mosaic stays small."""
    step = max(1, math.ceil(len(frames) / 16))
    sample = frames[::step]
    tw = min(frames[0].width, 128)
    th = max(1, round(frames[0].height * tw / frames[0].width))
    mosaic = Image.new("RGB", (tw * len(sample), th))
    for i, f in enumerate(sample):
        mosaic.paste(f.resize((tw, th), Image.Resampling.BILINEAR), (i * tw, 0))
    return mosaic.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)


def _predict(measured: int, base: _Rung, rung: _Rung, width: int, height: int) -> float:
    """Expected size of ``rung`` given that ``base`` encoded to ``measured`` bytes."""
    bw, bh = _dims(base, width, height)
    w, h = _dims(rung, width, height)
    bits = math.log2(rung.colors) / math.log2(base.colors)
    return measured * (w * h) / (bw * bh) * len(rung.keep) / len(base.keep) * bits


def _describe(first: _Rung, chosen: _Rung, width: int, height: int, n_frames: int) -> list[Notice]:
    out = []
    w0, h0 = _dims(first, width, height)
    w, h = _dims(chosen, width, height)
    if (w, h) != (w0, h0):
        out.append(size_reduction((w0, h0), (w, h)))
    if chosen.colors != first.colors:
        out.append(Notice("reduced_palette", {"before": first.colors, "after": chosen.colors}))
    if len(chosen.keep) != n_frames:
        out.append(Notice("reduced_frames", {"before": n_frames, "after": len(chosen.keep)}))
    return out


def encode_gif(frames: list[Image.Image], budget_bytes: int = DEFAULT_BUDGET, duration_ms: int = 100,
               boomerang: bool = False) -> GifResult:
    """Encode ``frames`` as an endlessly looping GIF of at most ``budget_bytes`` bytes.

    ``boomerang`` plays the frames forward then backward (the end frames are not shown twice).
    When frames are dropped to fit, each remaining frame is shown longer so the loop keeps its length.
    Raises MorphError if even the smallest setting (¼ size or 64 px, 64 colours, 2 frames) does not fit.
    """
    if not frames:
        raise MorphError("no frames to encode")
    if budget_bytes <= 0:
        raise MorphError(f"the GIF budget must be positive (got {budget_bytes} bytes)")
    frames = [f.convert("RGB") for f in frames]
    width, height = frames[0].size
    if any(f.size != (width, height) for f in frames):
        frames = [f if f.size == (width, height) else f.resize((width, height)) for f in frames]

    ladder = _ladder(len(frames), width, height)
    i, encodes = 0, 0
    while True:
        rung = ladder[i]
        data = _encode(frames, rung, width, height, duration_ms, boomerang)
        encodes += 1
        if len(data) <= budget_bytes:
            break
        if i == len(ladder) - 1:
            w, h = _dims(rung, width, height)
            raise Invalid("gif_too_big", budget=human_size(budget_bytes), width=w, height=h, colors=rung.colors,
                          frames=len(rung.keep), size=human_size(len(data)))
        # Jump to the first later rung predicted to fit (or the last one).
        nxt = i + 1
        while nxt < len(ladder) - 1 and _predict(len(data), rung, ladder[nxt], width, height) > budget_bytes * SAFETY:
            nxt += 1
        i = nxt

    w, h = _dims(rung, width, height)
    shown = len(rung.keep) if not boomerang else len(boomerang_frames(list(rung.keep)))
    return GifResult(data=data, width=w, height=h, frame_count=shown, colors=rung.colors,
                     reductions=_describe(ladder[0], rung, width, height, len(frames)),
                     duration_ms=_frame_duration(duration_ms, len(frames), len(rung.keep)), encodes=encodes)


def size_reduction(before: tuple[int, int], after: tuple[int, int]) -> Notice:
    """The notice that a picture was shrunk: its side (``512→384``) when square before and after, else both."""
    square = before[0] == before[1] and after[0] == after[1]
    return Notice("reduced_size", {"before": str(before[0]) if square else f"{before[0]}x{before[1]}",
                                   "after": str(after[0]) if square else f"{after[0]}x{after[1]}"})


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} kB"
    return f"{n} bytes"


def sheet_size(count: int, frame_size: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """The contact sheet's (width, height) for ``count`` candidates.

    Columns = min(count, 5), rows = ceil(count / 5); each cell is 256 px wide and 256 × h / w px high
    (the frames' aspect), with an 8 px gap around and between cells.
    """
    cols = min(count, SHEET_MAX_COLUMNS)
    rows = math.ceil(count / SHEET_MAX_COLUMNS)
    cell_w, cell_h = _cell(frame_size)
    return cols * cell_w + (cols + 1) * SHEET_GAP, rows * cell_h + (rows + 1) * SHEET_GAP


def _cell(frame_size: tuple[int, int]) -> tuple[int, int]:
    w, h = frame_size
    return SHEET_CELL, max(1, round(SHEET_CELL * h / w))


def contact_sheet(frames: list[Image.Image], labels: list[str] | None = None) -> Image.Image:
    """The candidates side by side (up to 5 per row), each with a large label ("1".."K" by default)
    on a dark box in its top-left corner so it reads even as a Discord thumbnail. Size: sheet_size()."""
    if not frames:
        raise MorphError("no candidate frames for the contact sheet")
    labels = [str(i + 1) for i in range(len(frames))] if labels is None else [str(x) for x in labels]
    if len(labels) != len(frames):
        raise MorphError(f"{len(frames)} frames but {len(labels)} labels for the contact sheet")
    cell_w, cell_h = _cell(frames[0].size)
    sheet = Image.new("RGB", sheet_size(len(frames), frames[0].size), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = _font(cell_h * 2 // 7)
    pad = max(4, cell_h // 40)
    for i, (frame, label) in enumerate(zip(frames, labels, strict=True)):
        row, col = divmod(i, SHEET_MAX_COLUMNS)
        x = SHEET_GAP + col * (cell_w + SHEET_GAP)
        y = SHEET_GAP + row * (cell_h + SHEET_GAP)
        sheet.paste(frame.convert("RGB").resize((cell_w, cell_h), Image.Resampling.LANCZOS), (x, y))
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        box = (x, y, x + (right - left) + 2 * pad, y + (bottom - top) + 2 * pad)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((x + pad - left, y + pad - top), label, font=font, fill=(255, 255, 255))
    return sheet


def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)  # bundled scalable font (Pillow ≥ 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def frame_filename(index: int) -> str:
    """File name of frame ``index`` (0-based) as :func:`save_frames` writes it."""
    return f"frame_{index:03d}.png"


def save_frames(frames: list[Image.Image], directory) -> list[Path]:
    """Write each frame as ``frame_000.png`` … into ``directory`` (created if needed); return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = directory / frame_filename(i)
        frame.save(path, format="PNG")
        paths.append(path)
    return paths

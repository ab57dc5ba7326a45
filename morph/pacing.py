"""Even pacing: where to put the frames of a morph so neighbouring frames differ by about the same amount.

A prompt morph does not change at a constant rate in t: the dog may turn into another breed between
t=0.05 and t=0.1 and then hardly change until t=0.6. Uniform t spacing shows that as a jump followed by a
still picture. :func:`pace` renders a coarse uniform set (every 4th or 2nd frame of the uniform grid),
measures the distance between neighbouring frames and inserts the next batch of frames into the largest
gaps, repeating until the frame budget is spent (three rounds where the batches allow, more where the inserts
need more batches). Every frame is rendered exactly once,
so the UNet work (frames x steps) equals uniform spacing's, and it never takes more than one UNet batch
more than uniform spacing (:func:`insert_rounds`): on a GPU whose batch holds the whole morph, the coarse
pass and one insert round. Inserts
snap to the uniform grid where the morph changes evenly, so pacing leaves an even morph exactly uniform and
never made one less even than uniform spacing in our synthetic tests (tests/test_pacing.py).

A chain (dog → cat → bird) is paced the same way over its whole path 0..segments, with a frame on every
prompt (the *knots*, also a refine range's two ends): the uniform grid shares the frames among the pieces
between knots (:func:`path_grid`), the coarse pass restarts at every knot, and the inserts go to the largest
gaps wherever they are, so a segment that changes more gets more frames; :func:`segment_picks` gives each
segment its own midpoint and candidates.

Everything here is pure numpy/Python: the engine passes a ``render(ts) -> features`` function and tests pass
a synthetic one.

Frame distance (:func:`image_features` / :func:`feature_distance`), chosen to need no downloads (LPIPS
needs network weights): each frame is downsampled to 64×64 with area averaging and blurred slightly, which
removes pixel noise and dithering so only visible changes count; the distance is the mean CIEDE2000 colour
difference of those images (per pixel, :func:`ciede2000`: the standard perceptual colour difference, which
also judges the morphs in bench.quality; plain CIELAB distance ΔE76, which does not discount chroma
differences of saturated colours as CIEDE2000 does, left the largest CIEDE2000 step at 1.58× the mean,
bench/RESULTS.md) plus the RMS difference of their luminance gradients
(Sobel-like), which responds to shapes and edges moving even when average colours stay the same (a dog
turning into a cat of the same colour), weighted so both terms count about equally for a typical change.
Pixel values are scaled to [0, 1], so distances from different renders and sizes compare.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

FEATURE_SIZE = 64
#: Luminance gradients are ~4x smaller than colour differences at 64 px; this puts the two terms on a par.
GRADIENT_WEIGHT = 4.0
#: CIEDE2000 differences (0..~100 between any two colours) divided by this are on the scale of the RGB
#: differences in [0, 1] the gradient weight was set against.
LAB_SCALE = 100.0


# ------------------------------------------------------------------------------------------------ metrics
def max_over_mean(distances: Sequence[float]) -> float:
    """Largest adjacent distance / mean adjacent distance: 1.0 is perfectly even; a jump shows as ≫ 1."""
    d = np.asarray(distances, dtype=np.float64)
    if d.size == 0 or d.mean() <= 0:
        return 1.0
    return float(d.max() / d.mean())


def one_minus_gini(distances: Sequence[float]) -> float:
    """1 − Gini coefficient of the adjacent distances: 1.0 is perfectly even, near 0 is one big jump."""
    d = np.sort(np.abs(np.asarray(distances, dtype=np.float64)))
    n = d.size
    if n == 0 or d.sum() <= 0:
        return 1.0
    index = np.arange(1, n + 1)
    gini = (2.0 * np.sum(index * d)) / (n * d.sum()) - (n + 1.0) / n
    return float(1.0 - gini)


def midpoint_index(distances: Sequence[float]) -> int:
    """Index of the frame closest to half the cumulative path length (frames = len(distances) + 1).

    With no change at all (zero path) it is the middle frame. Ties go to the earlier frame.
    """
    d = np.abs(np.asarray(distances, dtype=np.float64))
    n_frames = d.size + 1
    total = d.sum()
    if total <= 0:
        return (n_frames - 1) // 2
    cumulative = np.concatenate([[0.0], np.cumsum(d)])
    return int(np.argmin(np.abs(cumulative - total / 2.0)))


def candidate_indices(midpoint: int, n_frames: int, k: int) -> list[int]:
    """``k`` consecutive frame indices centred on ``midpoint`` (shifted to stay inside 0..n_frames-1)."""
    k = max(1, min(int(k), int(n_frames)))
    start = int(midpoint) - (k - 1) // 2
    start = max(0, min(start, n_frames - k))
    return list(range(start, start + k))


def segment_picks(ts: Sequence[float], distances: Sequence[float], knots: Sequence[float], k: int,
                  closed: bool = False) -> list[tuple[int, int, int, list[int]]]:
    """(first, last, midpoint, candidates) of each piece of the path between neighbouring ``knots``.

    ``ts`` and ``distances`` are the paced frames and their neighbour distances; with ``closed`` the last t
    is a loop's closing position, whose frame is the first one again and is not kept. A piece owns the frames
    from its starting knot up to the frame before the next knot (the final piece of an open path also owns
    the end frame), so no frame belongs to two pieces. The midpoint is the frame at half the piece's
    cumulative distance (:func:`midpoint_index`), the ``k`` candidates surround it inside the piece.
    """
    ts = list(ts)
    starts = [ts.index(knot) for knot in knots]
    out = []
    for p, (first, end) in enumerate(zip(starts, starts[1:], strict=False)):
        last = end if p == len(starts) - 2 and not closed else end - 1
        mid = min(last, first + midpoint_index(distances[first:end]))
        cands = [first + c for c in candidate_indices(mid - first, last - first + 1, k)]
        out.append((first, last, mid, cands))
    return out


# ------------------------------------------------------------------------------------------ planning
def default_stride(total: int, batch_size: int | None = None, rounds: int = 3,
                   knots: Sequence[float] = (0.0, 1.0)) -> int:
    """Stride of the coarse pass: 4 from 16 frames up (a quarter of the budget, at least 5 frames) where at
    least two insert rounds follow it (:func:`insert_rounds` with ``batch_size``; None: assume they do), else
    2 from 4 frames up (about half), else 1 (all frames; nothing left to pace).

    With one insert round only (the whole morph in one UNet batch: a GPU), stride 4 leaves three quarters of
    the frames to one placement that no later round can repair: on 300 synthetic smooth morphs of 24 frames
    it ended with a larger max/mean than uniform spacing in 20% of them (up to 1.4x), stride 2 in none; with
    two or more rounds stride 4 is the better one (measured with 16-120 frames, batches 4-48).
    """
    if total >= 16 and (batch_size is None
                        or insert_rounds(total, len(coarse_ts(total, 4, knots)), batch_size, rounds) >= 2):
        return 4
    return 2 if total >= 4 else 1


def coarse_ts(total: int, stride: int | None = None, knots: Sequence[float] = (0.0, 1.0)) -> list[float]:
    """The first, uniform pass: every ``stride``-th t of ``uniform_ts(total)`` plus t=1 (with ``knots``: of
    ``path_grid(total, knots)``, counted afresh from every knot, and every knot).

    Default stride: :func:`default_stride` without a batch size. Taking the coarse frames from the final
    uniform grid means a morph that changes at a constant rate ends up exactly uniform (``stride - 1``
    inserts per gap, snapped to the grid by :func:`plan_inserts`), so pacing does not make an already even
    morph worse; leaving ``stride - 1`` frames per gap lets a gap that changes more take several inserts
    while a still gap takes none. Even strides matter: with stride 3 the first insert into a gap falls
    between two grid points and the grid is lost (measured on 600 synthetic morphs: stride 2 and 4 never
    ended worse than uniform, stride 3 did in 2%).
    """
    grid = path_grid(total, knots)
    if stride is None:
        stride = default_stride(total, knots=knots)
    stride = max(1, int(stride))
    chosen: list[float] = []
    starts = [grid.index(k) for k in knots]
    for lo, hi in zip(starts, starts[1:], strict=False):
        chosen += grid[lo:hi:stride]
    chosen.append(grid[-1])
    return chosen


def insert_rounds(total: int, coarse: int, batch_size: int, rounds: int = 3) -> int:
    """How many insert rounds follow a coarse pass of ``coarse`` frames: about ``rounds`` (later rounds look
    at the earlier rounds' frames, so a sharp jump gets found by repeated splitting), but never so many that
    the render needs more than one UNet batch more than uniform spacing of ``total`` frames.

    Uniform spacing takes ceil(total / batch) batches. Each round is at most a batch, so the coarse pass and
    R rounds take ceil(coarse / batch) + R; R is the largest number up to ``rounds`` within that one spare
    batch, and at least the ceil(inserts / batch) rounds the inserts need (which always fits). Where the
    batch holds the whole morph (a GPU), that is one insert round: two UNet batches instead of one.
    """
    inserts = total - coarse
    if inserts <= 0:
        return 0
    b = max(1, int(batch_size))
    needed = math.ceil(inserts / b)
    spare = math.ceil(total / b) + 1 - math.ceil(coarse / b)
    return max(needed, min(max(1, int(rounds)), spare, inserts))


def uniform_ts(n: int) -> list[float]:
    """``n`` evenly spaced t in [0, 1], both ends included (exactly 0.0 and 1.0)."""
    if n < 2:
        return [0.0][:n]
    return [i / (n - 1) for i in range(n)]


def path_grid(total: int, knots: Sequence[float] = (0.0, 1.0)) -> list[float]:
    """Uniform spacing of ``total`` frames over a path that must have a frame at every knot (a chain's
    prompts, a refine's ends): the ``total - 1`` steps are shared among the pieces between neighbouring
    knots in proportion to their length (largest remainders, earlier pieces first on ties, at least one
    step each), and each piece is split evenly. ``path_grid(n)`` is ``uniform_ts(n)`` exactly; knots come out
    exactly as given.
    """
    knots = [float(k) for k in knots]
    pieces = len(knots) - 1
    if pieces < 1 or any(b <= a for a, b in zip(knots, knots[1:], strict=False)):
        raise ValueError(f"knots must increase, at least two: {knots}")
    if total < pieces + 1:
        raise ValueError(f"{total} frames cannot hold {pieces + 1} knots")
    lengths = np.diff(knots)
    share = (total - 1) * lengths / lengths.sum()
    steps = np.floor(share).astype(int)
    for i in sorted(range(pieces), key=lambda i: (-(share[i] - steps[i]), i))[:total - 1 - steps.sum()]:
        steps[i] += 1
    while (steps == 0).any():  # a short piece still needs its step: from the piece with the most
        steps[int(np.argmax(steps))] -= 1
        steps[int(np.argmin(steps))] += 1
    grid = []
    for lo, hi, m in zip(knots, knots[1:], steps, strict=False):
        grid += [lo + (hi - lo) * j / m for j in range(int(m))]
    return grid + [knots[-1]]


def plan_inserts(ts: Sequence[float], distances: Sequence[float], count: int,
                 grid: int | Sequence[float] | None = None) -> list[float]:
    """New t values to render next: ``count`` inserts given to the largest gaps first.

    Each insert goes to the gap whose distance per resulting sub-gap (``d / (inserts + 1)``) is largest, so
    a gap twice as big as the others gets two inserts before they get a second one; the inserts in one gap
    split its t range evenly. With ``grid`` (the final frame count, or the grid's points: :func:`path_grid`),
    an insert moves to the nearest point of ``uniform_ts(grid)`` that lies inside its gap, is free, and is at
    most half a grid cell away: where the morph changes evenly, frames land exactly on the uniform grid.
    Returns sorted new ts, never one already present.
    """
    ts = list(ts)
    d = np.asarray(distances, dtype=np.float64)
    if len(ts) < 2 or count <= 0:
        return []
    if d.size != len(ts) - 1:
        raise ValueError(f"need {len(ts) - 1} distances for {len(ts)} frames, got {d.size}")
    inserts = np.zeros(d.size, dtype=int)
    t_arr = np.asarray(ts, dtype=np.float64)
    for _ in range(count):
        widths = np.diff(t_arr) / (inserts + 1)
        # Gaps too narrow in t to split again never win; ties favour the wider gap, then the earlier one.
        score = np.where(widths > 1e-6, d / (inserts + 1), -np.inf)
        if not np.isfinite(score).any():
            break
        best = np.flatnonzero(score == score.max())
        inserts[best[np.argmax(widths[best])]] += 1
    taken = set(ts)
    points = uniform_ts(grid) if isinstance(grid, int) else list(grid or [])
    new: list[float] = []
    for i, m in enumerate(inserts):
        lo, hi = ts[i], ts[i + 1]
        # Snap only where the gap has a grid point for every insert; with fewer, two inserts could take
        # the same point and one would be lost (leaving a frame for another round).
        snap = len(points) > 1 and m <= sum(lo < g < hi for g in points)
        for j in range(1, m + 1):
            t = lo + (hi - lo) * j / (m + 1)
            if snap:
                t = _snap(t, points, lo, hi, taken)
            if t not in taken and lo < t < hi:
                taken.add(t)
                new.append(t)
    return sorted(new)


def _snap(t: float, points: Sequence[float], lo: float, hi: float, taken: set) -> float:
    """The grid point nearest ``t`` of the two around it (the lower on a tie) if it lies inside (lo, hi), is
    free and is at most half their cell away; else ``t``."""
    right = bisect.bisect_left(points, t)
    around = sorted({points[max(0, right - 1)], points[min(len(points) - 1, right)]})
    cell = around[-1] - around[0]
    for g in sorted(around, key=lambda g: (abs(g - t), g)):
        if lo < g < hi and g not in taken and abs(g - t) <= cell / 2 + 1e-12:
            return g
    return t


def pace(render: Callable[[list[float]], list[Any]], distance: Callable[[Any, Any], float], total: int,
         batch_size: int, perceptual: bool = True, rounds: int = 3,
         on_round: Callable[[list[float], list[float]], None] | None = None,
         knots: Sequence[float] = (0.0, 1.0)):
    """Choose and render ``total`` frames; return ``(ts, distances)`` in increasing t.

    ``render(ts)`` renders frames at those t and returns one item per t (whatever ``distance`` takes); it is
    called with at most ``batch_size`` ts at a time. Uniform pacing renders ``path_grid(total, knots)``.
    Perceptual pacing renders :func:`coarse_ts` (every :func:`default_stride`-th frame), then rounds of
    inserts of equal size, each at most a batch (:func:`insert_rounds`: about ``rounds``, fewer where more
    would take more than one batch beyond uniform spacing, more where the inserts need more batches), at the
    largest gaps (:func:`plan_inserts`) until ``total``
    frames exist; ``on_round(ts, distances)`` is called after each measurement. Every t is rendered
    exactly once, so the UNet work is the same as uniform spacing's.

    ``knots``: positions that always get a frame, the path's ends first and last (a chain's prompts, a
    refine's range); the uniform grid is then :func:`path_grid` and the coarse pass starts afresh at each
    knot, and the inserts go to the largest gaps of the whole path, so a segment that changes more gets
    more of the frames.
    """
    batch_size = max(1, int(batch_size))
    done: dict[float, Any] = {}

    def render_all(ts: list[float]) -> None:
        for i in range(0, len(ts), batch_size):
            chunk = ts[i:i + batch_size]
            items = render(chunk)
            if len(items) != len(chunk):
                raise ValueError(f"render returned {len(items)} items for {len(chunk)} ts")
            done.update(zip(chunk, items, strict=False))

    measured: dict[tuple[float, float], float] = {}  # a neighbours' distance is measured once

    def measure() -> tuple[list[float], list[float]]:
        ts = sorted(done)
        for a, b in zip(ts, ts[1:], strict=False):
            if (a, b) not in measured:
                measured[a, b] = float(distance(done[a], done[b]))
        return ts, [measured[a, b] for a, b in zip(ts, ts[1:], strict=False)]

    grid = path_grid(total, knots)
    first = coarse_ts(total, default_stride(total, batch_size, rounds, knots), knots) if perceptual else grid
    # the knots in the first batches: on the smooth path they are the ends every other frame reads
    render_all(sorted(first, key=lambda t: (t not in knots, t)))
    ts, dist = measure()
    rounds_left = insert_rounds(total, len(first), batch_size, rounds)
    while len(done) < total:
        if on_round is not None:
            on_round(ts, dist)
        count = min(batch_size, math.ceil((total - len(done)) / max(1, rounds_left)))  # rounds of equal size
        rounds_left -= 1
        new = plan_inserts(ts, dist, count, grid=grid)
        if not new:  # no gap can be split by distance (all ~0 wide): split the widest in t instead
            new = plan_inserts(ts, np.diff(ts).tolist(), total - len(done))
            if not new:
                break
        render_all(new)
        ts, dist = measure()
    return ts, dist


# ------------------------------------------------------------------------------------------ distance
def image_features(image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blurred 64×64 RGB in [0, 1], its luminance gradients, the same in CIELAB) for one PIL image or HxWx3
    uint8 array."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    small = image.convert("RGB").resize((FEATURE_SIZE, FEATURE_SIZE), Image.Resampling.BOX)
    rgb = np.asarray(small, dtype=np.float32) / 255.0
    rgb = _blur3(rgb)
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gy, gx = np.gradient(luma)
    return rgb, np.stack([gx, gy], axis=-1), _lab(rgb)


def feature_distance(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> float:
    """Mean CIEDE2000 colour difference / LAB_SCALE + GRADIENT_WEIGHT × RMS gradient difference (see the
    module docstring)."""
    colour = float(np.mean(ciede2000(a[2], b[2]))) / LAB_SCALE
    edges = float(np.sqrt(np.mean((a[1] - b[1]) ** 2)))
    return colour + GRADIENT_WEIGHT * edges


def image_distance(a, b) -> float:
    """Distance between two images (PIL or uint8 arrays) as used by perceptual pacing."""
    return feature_distance(image_features(a), image_features(b))


def _blur3(x: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1]/4 blur over the two spatial axes (edges replicated)."""
    for axis in (0, 1):
        p = np.concatenate([np.take(x, [0], axis=axis), x, np.take(x, [-1], axis=axis)], axis=axis)
        n = x.shape[axis]
        x = (np.take(p, range(0, n), axis=axis) + 2 * np.take(p, range(1, n + 1), axis=axis)
             + np.take(p, range(2, n + 2), axis=axis)) / 4.0
    return x


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """The CIEDE2000 colour difference of CIELAB colours (``... x 3``), per colour (kL = kC = kH = 1), as
    Sharma, Wu and Dalal, "The CIEDE2000 color-difference formula" (2005), write it out."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=np.float64), -1, 0)
    c7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2) ** 7
    g = 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    grey = c1 * c2 == 0  # a hue is undefined: no hue difference, the hues' sum as their mean
    dh = h2 - h1
    dh = np.where(grey, 0.0, np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh)))
    dL, dC, dH = L2 - L1, c2 - c1, 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    L, C = (L1 + L2) / 2, (c1 + c2) / 2
    hsum = h1 + h2
    h = np.where(grey, hsum, np.where(np.abs(h1 - h2) <= 180, hsum / 2,
                                      np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)))
    t = (1 - 0.17 * np.cos(np.radians(h - 30)) + 0.24 * np.cos(np.radians(2 * h))
         + 0.32 * np.cos(np.radians(3 * h + 6)) - 0.20 * np.cos(np.radians(4 * h - 63)))
    rotation = -np.sin(np.radians(60 * np.exp(-(((h - 275) / 25) ** 2)))) * 2 * np.sqrt(C ** 7 / (C ** 7 + 25.0 ** 7))
    sl = 1 + 0.015 * (L - 50) ** 2 / np.sqrt(20 + (L - 50) ** 2)
    sc, sh = 1 + 0.045 * C, 1 + 0.015 * C * t
    return np.sqrt((dL / sl) ** 2 + (dC / sc) ** 2 + (dH / sh) ** 2 + rotation * (dC / sc) * (dH / sh))


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (... x 3) to CIELAB (D65)."""
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = lin @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]])
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)

"""An independent judge of pictures of the shapes world (:mod:`toykit.shapes`): which shape, which colour, on
which background. It measures instead of learning, so it needs no weights and no training:

1. the **background** is the palette colour most of the picture's 2-pixel border is nearest to (shapes keep
   off the border), measured as the median of every pixel nearest to that palette colour (a model's
   background is rarely flat: often lighter at the border);
2. the **shape's pixels** are those far from it (more than half-way to the shape's own colour, which is the
   median of the pixels nearest to another palette colour), and the largest connected patch of them is the
   shape;
3. its **colour** is the median of the patch's inner pixels (edges blend with the background);
4. its **shape** is the outline that overlaps the patch best (intersection over union) when each of
   :data:`~toykit.shapes.SHAPES` is drawn into the patch's bounding box with the training pictures' own
   drawing code (:func:`toykit.shapes.shape_mask`).

Probabilities are softmaxes of those measures (colour: squared RGB distance to each palette colour, scale
:data:`COLOUR_SIGMA`; shape: IoU, temperature :data:`SHAPE_TEMPERATURE`). They are what "where does the
midpoint land" is read from (:func:`progress`). :func:`features` is a continuous description of the picture
(colours, overlap with every outline, area, position) for measuring how far apart two pictures are, with no
reference to the engine's own pacing distance (:mod:`morph.pacing`).

Helpers for scoring a model (:func:`render_prompts`, :func:`score_model`) and for judging approximate
renders against the exact one (:func:`frame_drift`) live here too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from toykit import shapes

#: RGB distance scale of the colour probabilities (palette colours are >= 82 apart).
COLOUR_SIGMA = 30.0
#: IoU temperature of the shape probabilities (a 0.1 better overlap is e^2 ≈ 7x likelier).
SHAPE_TEMPERATURE = 0.05
#: Patches smaller than this many pixels mean "nothing drawn".
MIN_PIXELS = 12
_PALETTE = np.array(list(shapes.COLOURS.values()), dtype=np.float64)
_NAMES = list(shapes.COLOURS)


@dataclass
class Verdict:
    """What the judge sees in one picture. ``shape``/``colour`` are None when nothing is drawn."""

    shape: str | None
    colour: str | None
    background: str
    size: str | None  # "small", "big" or None (in between, or nothing drawn)
    shape_probs: dict[str, float] = field(repr=False)
    colour_probs: dict[str, float] = field(repr=False)
    background_probs: dict[str, float] = field(repr=False)
    features: np.ndarray = field(repr=False)

    def probs(self, attribute: str) -> dict[str, float]:
        return {"shape": self.shape_probs, "colour": self.colour_probs, "background": self.background_probs}[attribute]

    def matches(self, wanted: dict[str, str], attributes=("shape", "colour", "background", "size")) -> bool:
        """Whether every attribute in ``attributes`` that ``wanted`` names (see :func:`toykit.shapes.parse`) is seen."""
        return all(getattr(self, a) == wanted[a] for a in attributes if a in wanted)


def judge(image) -> Verdict:
    """Judge one picture (PIL image or H×W×3 uint8 array; scaled to 64×64)."""
    rgb = as_array(image)
    bg, mask = _background_and_shape(rgb)
    background_probs = _colour_probs(bg)
    if mask.sum() < MIN_PIXELS:
        uniform = {s: 1.0 / len(shapes.SHAPES) for s in shapes.SHAPES}
        return Verdict(None, None, _best(background_probs), None, uniform, {c: 0.0 for c in _NAMES},
                       background_probs, _features(bg, bg, np.zeros(len(shapes.SHAPES)), mask))
    inner = mask & np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1)
    colour = np.median(rgb[inner if inner.sum() >= 4 else mask], axis=0)
    ys, xs = np.nonzero(mask)
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    ious = np.array([_iou(mask, np.asarray(shapes.shape_mask(s, box)) >= 128) for s in shapes.SHAPES])
    shape_probs = dict(zip(shapes.SHAPES, _softmax(ious / SHAPE_TEMPERATURE), strict=True))
    colour_probs = _colour_probs(colour)
    side = ((box[2] - box[0]) + (box[3] - box[1])) / 2
    size = "small" if side <= shapes.SMALL_MAX + 2 else "big" if side >= shapes.BIG_MIN - 2 else None
    return Verdict(_best(shape_probs), _best(colour_probs), _best(background_probs), size, shape_probs,
                   colour_probs, background_probs, _features(colour, bg, ious, mask))


def shape_mask(image) -> np.ndarray:
    """The 64×64 boolean mask of the pixels the judge takes for the shape (steps 1–2 of the module docstring;
    all False when nothing is drawn)."""
    _, mask = _background_and_shape(as_array(image))
    return mask if mask.sum() >= MIN_PIXELS else np.zeros_like(mask)


def _background_and_shape(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the background's colour, the shape's mask) of a 64×64×3 float picture."""
    nearest = ((rgb[..., None, :] - _PALETTE) ** 2).sum(axis=-1).argmin(axis=-1)  # palette colour per pixel
    border = np.concatenate([nearest[:2].ravel(), nearest[-2:].ravel(),
                             nearest[:, :2].ravel(), nearest[:, -2:].ravel()])
    background = np.bincount(border, minlength=len(_PALETTE)).argmax()
    bg = np.median(rgb[nearest == background], axis=0)
    off = np.linalg.norm(rgb - bg, axis=-1)
    rough = nearest != background
    fg = np.median(rgb[rough], axis=0) if rough.sum() >= MIN_PIXELS else bg
    return bg, _largest_patch(off > max(20.0, 0.5 * float(np.linalg.norm(fg - bg))))


def features(image) -> np.ndarray:
    """The judge's continuous description of a picture (see :func:`_features`)."""
    return judge(image).features


def feature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two :func:`features` vectors."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def progress(verdict: Verdict, a: dict[str, str], b: dict[str, str]) -> float | None:
    """How far the picture has gone from prompt ``a`` to prompt ``b`` (both :func:`toykit.shapes.parse` dicts),
    by the judge's probabilities: for each of shape, colour and background that both name and that differ,
    p(b's value) / (p(a's value) + p(b's value)); the mean of those (None when no attribute differs)."""
    shares = []
    for attribute in ("shape", "colour", "background"):
        if attribute in a and attribute in b and a[attribute] != b[attribute]:
            probs = verdict.probs(attribute)
            pa, pb = probs[a[attribute]], probs[b[attribute]]
            shares.append(0.5 if pa + pb <= 0 else pb / (pa + pb))
    return float(np.mean(shares)) if shares else None


# ------------------------------------------------------------------------------------ scoring a model
def render_prompts(model, prompts: list[str], seeds: list[int], steps: int = 25, guidance: float = 7.5,
                   scheduler: str = "dpm++2m", batch: int = 16) -> list:
    """One picture per (prompt, seed), rendered exactly as a morph's end frame would be (the engine's
    seeded noise and scheduler). ``model``: a :class:`morph.Morpher` or a model name/folder."""
    import torch

    from morph import Morpher
    from morph.models import make_scheduler

    morpher = model if isinstance(model, Morpher) else Morpher(model, device="cpu")
    pipe = morpher.pipe
    pictures = []
    with morpher._lock:  # the pipeline is shared; its scheduler is swapped for the render
        saved = pipe.scheduler
        try:
            pipe.scheduler = make_scheduler(pipe, scheduler)
            for i in range(0, len(prompts), batch):
                chunk = list(zip(prompts[i:i + batch], seeds[i:i + batch], strict=True))
                latents = torch.cat([morpher.noise(seed, morpher.native_size) for _, seed in chunk])
                pictures += pipe([p for p, _ in chunk], latents=latents, num_inference_steps=steps,
                                 guidance_scale=guidance, output_type="pil").images
        finally:
            pipe.scheduler = saved
    return pictures


def held_out_prompts(seeds=range(8)) -> list[tuple[str, int]]:
    """(prompt, seed) for every :data:`~toykit.shapes.HELD_OUT` shape/colour pair and seed: a shape/colour
    pair training never drew, alone on odd seeds, on a background (each seed another) on even ones."""
    out = []
    names = list(shapes.COLOURS)
    for k, (shape, colour) in enumerate(shapes.HELD_OUT):
        for seed in seeds:
            background = None
            if seed % 2 == 0:
                background = [c for c in names if c != colour][(seed // 2 + 3 * k) % (len(names) - 1)]
            out.append((shapes.prompt(shape, colour, background), int(seed)))
    return out


def trained_prompts(count: int = 32, seed: int = 1000) -> list[tuple[str, int]]:
    """(full prompt, seed) for ``count`` random scenes of the kind training drew (no held-out pair)."""
    import random

    rng = random.Random(seed)
    return [(shapes.describe(shapes.random_scene(rng)), seed + i) for i in range(count)]


def score(pictures, prompts: list[str]) -> dict:
    """Share of pictures whose shape and colour match the prompt (``match``), per attribute, and the misses."""
    verdicts = [judge(p) for p in pictures]
    wanted = [shapes.parse(p) for p in prompts]

    def share(attrs):
        pairs = [(v, w) for v, w in zip(verdicts, wanted, strict=True) if all(a in w for a in attrs)]
        return round(sum(v.matches(w, attrs) for v, w in pairs) / len(pairs), 4) if pairs else None

    misses = [f"{p!r}: saw {v.size or ''} {v.colour} {v.shape} on {v.background}".replace("  ", " ")
              for p, v, w in zip(prompts, verdicts, wanted, strict=True) if not v.matches(w, ("shape", "colour"))]
    return {"pictures": len(pictures), "match": share(("shape", "colour")), "shape": share(("shape",)),
            "colour": share(("colour",)), "background": share(("background",)), "misses": misses}


def score_model(model, cases: list[tuple[str, int]], steps: int = 25) -> dict:
    """:func:`score` of ``model``'s pictures for ``cases``, (prompt, seed) pairs such as :func:`held_out_prompts`."""
    prompts = [p for p, _ in cases]
    return score(render_prompts(model, prompts, [s for _, s in cases], steps=steps), prompts)


# ------------------------------------------------------------------------------------ approximations
def frame_drift(exact, approx) -> dict:
    """How far ``approx``'s frames are from ``exact``'s, frame by frame: for judging a speed-up that
    approximates the render (feature caching, guidance on part of the steps, fewer steps) on ``toy``.

    Both are :class:`morph.request.RenderResult` (their ``ts`` must agree: render both with uniform pacing,
    or the same ``ts``) or equally long lists of pictures. Returns the mean and largest distance per frame by
    the engine's measure (:func:`morph.pacing.image_distance`) and by the judge's (:func:`feature_distance`),
    the mean absolute pixel difference (0-255), and ``agreement``: the share of frames where the judge sees
    the same shape, colour and background in both.
    """
    from morph import pacing

    if hasattr(exact, "frames") and hasattr(approx, "frames"):
        if len(exact.ts) != len(approx.ts) or np.max(np.abs(np.subtract(exact.ts, approx.ts))) > 1e-9:
            raise ValueError("the two renders have frames at different t: compare renders with uniform pacing")
    a = list(getattr(exact, "frames", exact))
    b = list(getattr(approx, "frames", approx))
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same number of frames on both sides, got {len(a)} and {len(b)}")
    engine = [pacing.image_distance(x, y) for x, y in zip(a, b, strict=True)]
    va, vb = [judge(x) for x in a], [judge(y) for y in b]
    judged = [feature_distance(x.features, y.features) for x, y in zip(va, vb, strict=True)]
    pixels = [float(np.abs(as_array(x) - as_array(y)).mean()) for x, y in zip(a, b, strict=True)]
    same = [(x.shape, x.colour, x.background) == (y.shape, y.colour, y.background) for x, y in zip(va, vb, strict=True)]
    return {"frames": len(a), "engine_mean": float(np.mean(engine)), "engine_max": float(np.max(engine)),
            "judge_mean": float(np.mean(judged)), "judge_max": float(np.max(judged)),
            "pixel_mean": float(np.mean(pixels)), "agreement": float(np.mean(same))}


# ------------------------------------------------------------------------------------------- pieces
def as_array(image) -> np.ndarray:
    """A PIL image or uint8 array as the judge sees it: 64×64 RGB, float."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    image = image.convert("RGB")
    if image.size != (shapes.IMAGE_SIZE, shapes.IMAGE_SIZE):
        image = image.resize((shapes.IMAGE_SIZE, shapes.IMAGE_SIZE), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float64)


def _features(colour, background, ious, mask) -> np.ndarray:
    """Shape colour and background colour (RGB in 0..1), 3 × the IoU with each outline (so a change of
    shape counts about as much as a change of colour), area share ×4 and centre (0..1) of the patch."""
    n = mask.sum()
    ys, xs = np.nonzero(mask)
    centre = (np.array([xs.mean(), ys.mean()]) / shapes.IMAGE_SIZE) if n else np.array([0.5, 0.5])
    return np.concatenate([np.asarray(colour) / 255, np.asarray(background) / 255, 3 * np.asarray(ious),
                           [4 * n / mask.size], centre])


def _colour_probs(rgb) -> dict[str, float]:
    d2 = ((_PALETTE - np.asarray(rgb)) ** 2).sum(axis=1)
    return dict(zip(_NAMES, _softmax(-d2 / (2 * COLOUR_SIGMA ** 2)), strict=True))


def _softmax(x) -> list[float]:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return [float(v) for v in e / e.sum()]


def _best(probs: dict[str, float]) -> str:
    return max(probs, key=lambda name: probs[name])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def _largest_patch(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected patch of ``mask`` (flood fill; pictures are 64×64)."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    best, best_size, label = 0, 0, 0
    h, w = mask.shape
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if labels[y0, x0]:
            continue
        label += 1
        labels[y0, x0] = label
        stack, size = [(y0, x0)], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = label
                    stack.append((ny, nx))
        if size > best_size:
            best, best_size = label, size
    return labels == best if best else np.zeros_like(mask)

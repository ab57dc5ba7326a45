"""The synthetic world of the ``toy`` model: one flat shape on a flat background, and the words for it.

Used by the training script (:mod:`toykit.train`, which draws its training pictures here) and by the judge
(:mod:`toykit.judge`, which checks rendered pictures against the same drawings), so both agree on what
"a big red star on a blue background" looks like.

A scene is a shape (:data:`SHAPES`) of one colour (:data:`COLOURS`) drawn into a square box of side
``size`` pixels (of :data:`IMAGE_SIZE`) near the centre of a background of another colour. Every shape
fills its box exactly (its bounding box is the box), so a shape's outline is fixed by its box alone.
Sizes up to :data:`SMALL_MAX` are called "small", from :data:`BIG_MIN` "big", those between have no word.

:data:`HELD_OUT` lists shape/colour pairs that training never draws (one colour per shape): the judge's
accuracy on them shows the model composes words it learnt separately instead of recalling pictures.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from PIL import Image, ImageDraw

IMAGE_SIZE = 64
SHAPES = ("circle", "square", "triangle", "star", "heart", "ring", "cross", "diamond")
#: Flat sRGB colours, at least 75 apart (RGB distance) from each other so every pair is told apart.
COLOURS = {
    "red": (220, 40, 40), "orange": (245, 140, 20), "yellow": (245, 220, 40), "green": (40, 170, 60),
    "blue": (40, 90, 220), "purple": (140, 60, 190), "pink": (245, 130, 190), "white": (245, 245, 245),
    "black": (20, 20, 20), "gray": (128, 128, 128),
}
#: Other words the prompts may use for a colour or a size.
SYNONYMS = {"grey": "gray", "large": "big"}
MIN_SIZE, MAX_SIZE = 20, 48
SMALL_MAX, BIG_MIN = 26, 40
#: Largest distance (pixels) of the shape's centre from the image centre.
MAX_OFFSET = 8
#: Margin (pixels) the shape keeps from the image border, so the border shows the background only.
MARGIN = 3
#: Shape/colour pairs never drawn in training: shape i with colour (3i + 5) mod 10, each colour at most once
#: (keeps the demo prompts "a red circle" and "a blue square" among the trained pairs).
HELD_OUT = tuple((shape, list(COLOURS)[(3 * i + 5) % len(COLOURS)]) for i, shape in enumerate(SHAPES))
#: Words a prompt of this world uses; the toy model's tokenizer gives each a whole-word token.
WORDS = (*SHAPES, *COLOURS, *SYNONYMS, "small", "big", "a", "an", "on", "background", "shape")
_SUPERSAMPLE = 4  # draw at 4x and scale down: smooth edges, like a real picture


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    background: str
    size: int  # side of the shape's box in pixels
    cx: float  # centre of the box
    cy: float

    @property
    def size_word(self) -> str | None:
        return "small" if self.size <= SMALL_MAX else "big" if self.size >= BIG_MIN else None

    def box(self) -> tuple[float, float, float, float]:
        h = self.size / 2
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)


def random_scene(rng: random.Random, exclude=HELD_OUT) -> Scene:
    """A random scene; shape/colour pairs in ``exclude`` are never drawn, background ≠ shape colour."""
    while True:
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        if (shape, colour) not in exclude:
            break
    background = rng.choice([c for c in COLOURS if c != colour])
    size = rng.randint(MIN_SIZE, MAX_SIZE)
    room = min(MAX_OFFSET, IMAGE_SIZE / 2 - size / 2 - MARGIN)
    return Scene(shape, colour, background, size, IMAGE_SIZE / 2 + rng.uniform(-room, room),
                 IMAGE_SIZE / 2 + rng.uniform(-room, room))


def describe(scene: Scene, rng: random.Random | None = None) -> str:
    """A prompt for ``scene``. With ``rng``, some words are left out (as people do): the size (30%),
    the colour (15%), the background (40%); a left-out word means "any". Without it, the full prompt."""
    keep = (lambda p: rng.random() >= p) if rng is not None else (lambda p: True)
    words = []
    if scene.size_word and keep(0.3):
        words.append(scene.size_word)
    if keep(0.15):
        words.append(scene.colour)
    words.append(scene.shape)
    text = " ".join(words)
    if keep(0.4):
        text += f" on {_article(scene.background)} {scene.background} background"
    return f"{_article(text)} {text}"


def prompt(shape: str, colour: str | None = None, background: str | None = None, size: str | None = None) -> str:
    """The prompt for these attributes, e.g. ``prompt("star", "red", "blue")`` = 'a red star on a blue background'."""
    text = " ".join(w for w in (size, colour, shape) if w)
    if background:
        text += f" on {_article(background)} {background} background"
    return f"{_article(text)} {text}"


def parse(text: str) -> dict[str, str]:
    """What a prompt asks for: ``{"shape", "colour", "background", "size"}`` (each only when named).

    The colour word right before the shape is the shape's; one after "on" is the background's.
    """
    words = [SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+", text.lower())]
    found: dict[str, str] = {}
    on = False
    for w in words:
        if w == "on":
            on = True
        elif w in COLOURS:
            found.setdefault("background" if on else "colour", w)
        elif w in SHAPES and not on:
            found.setdefault("shape", w)
        elif w in ("small", "big") and not on:
            found.setdefault("size", w)
    return found


def draw(scene: Scene) -> Image.Image:
    """The scene as a 64×64 RGB picture (anti-aliased edges)."""
    s = _SUPERSAMPLE
    big = Image.new("RGB", (IMAGE_SIZE * s, IMAGE_SIZE * s), COLOURS[scene.background])
    draw_shape(ImageDraw.Draw(big), scene.shape, [v * s for v in scene.box()], COLOURS[scene.colour],
               COLOURS[scene.background])
    return big.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)


def shape_mask(shape: str, box, size: int = IMAGE_SIZE) -> Image.Image:
    """A greyscale ``size``×``size`` mask (255 inside) of ``shape`` filling ``box`` (pixel coordinates)."""
    s = _SUPERSAMPLE
    big = Image.new("L", (size * s, size * s), 0)
    draw_shape(ImageDraw.Draw(big), shape, [v * s for v in box], 255, 0)
    return big.resize((size, size), Image.Resampling.BOX)


def draw_shape(d: ImageDraw.ImageDraw, shape: str, box, fill, hole) -> None:
    """Draw ``shape`` so that its bounding box is ``box`` = (x0, y0, x1, y1); ``hole`` fills a ring's middle."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0

    def at(points):
        return [(x0 + u * w, y0 + v * h) for u, v in points]

    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "ring":
        d.ellipse(box, fill=fill)
        d.ellipse(at([(0.27, 0.27), (0.73, 0.73)]), fill=hole)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    elif shape == "cross":
        d.rectangle(at([(0, 0.33), (1, 0.67)]), fill=fill)
        d.rectangle(at([(0.33, 0), (0.67, 1)]), fill=fill)
    elif shape in _POLYGONS:
        d.polygon(at(_POLYGONS[shape]), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _article(text: str) -> str:
    return "an" if text[:1] in "aeiou" else "a"


def _fit(points):
    """Scale a polygon to fill the unit box exactly."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [((x - min(xs)) / (max(xs) - min(xs)), (y - min(ys)) / (max(ys) - min(ys))) for x, y in points]


def _star(points: int = 5, inner: float = 0.42):
    return _fit([((1 if k % 2 == 0 else inner) * math.sin(math.pi * k / points),
                  -(1 if k % 2 == 0 else inner) * math.cos(math.pi * k / points)) for k in range(2 * points)])


def _heart(n: int = 48):
    return _fit([(16 * math.sin(a) ** 3, -(13 * math.cos(a) - 5 * math.cos(2 * a) - 2 * math.cos(3 * a)
                                           - math.cos(4 * a))) for a in (2 * math.pi * k / n for k in range(n))])


_POLYGONS = {
    "triangle": [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)],
    "diamond": [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)],
    "star": _star(),
    "heart": _heart(),
}

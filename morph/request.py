"""What a render is asked to do, and the one place its input is validated.

Both the CLI and the Discord bot build a :class:`RenderRequest` and call :meth:`RenderRequest.validate`,
so a bad prompt or number gets the same clear message everywhere.
"""
from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass, field

MIN_FRAMES, MAX_FRAMES = 2, 120
MIN_STEPS, MAX_STEPS = 1, 150
MIN_SIZE, MAX_SIZE = 64, 1024
MAX_PROMPT_CHARS = 1000
MAX_CANDIDATES = 9
SEED_MAX = 2**32 - 1

#: Deterministic schedulers only: every frame must see the same noise at every step.
SCHEDULERS = ("dpm++2m", "ddim", "pndm", "euler")
#: Schedulers people ask for that add fresh noise per step (and so break frame coherence).
STOCHASTIC_SCHEDULERS = ("euler_a", "euler-ancestral", "dpm++2m-sde", "dpm++sde", "ddpm", "lcm", "k_euler_a")
INTERPOLATIONS = ("lerp", "slerp")
PACINGS = ("perceptual", "uniform")


#: Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt, stable since Unicode 6):
#: characters that render as nothing (joiners, variation selectors, tag characters) or as blank filler
#: letters (Hangul fillers U+115F, U+1160, U+3164, U+FFA0). They never count as a prompt's letters.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)


def is_default_ignorable(char: str) -> bool:
    """True for a character Unicode says to render invisibly (see :data:`DEFAULT_IGNORABLE`)."""
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in DEFAULT_IGNORABLE)


class MorphError(ValueError):
    """A problem the user can fix; ``str(err)`` is the message to show them (no traceback)."""


class Cancelled(Exception):
    """Raised by :meth:`morph.Morpher.render` when its cancel flag was set; the render stopped early."""


def clean_prompt(text: str, what: str = "prompt") -> str:
    """Return the prompt with surrounding whitespace removed, or raise MorphError.

    Refuses empty/whitespace-only text, control characters (newlines and tabs are folded to spaces
    first), text longer than MAX_PROMPT_CHARS, and text without a single visible letter or digit (only
    blank-looking characters such as U+3164 HANGUL FILLER or U+2800 BRAILLE PATTERN BLANK, or only
    symbols): such a prompt looks empty in a message and gives the model nothing to draw.
    """
    if text is None:
        raise MorphError(f"The {what} is empty: give a few words, e.g. 'a dog'.")
    text = str(text).replace("\t", " ").replace("\r", " ").replace("\n", " ").strip()
    if not text:
        raise MorphError(f"The {what} is empty: give a few words, e.g. 'a dog'.")
    if len(text) > MAX_PROMPT_CHARS:
        raise MorphError(f"The {what} is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}.")
    bad = [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")]
    if bad:
        raise MorphError(f"The {what} contains control or invisible characters (e.g. U+{ord(bad[0]):04X}); "
                         "use plain text.")
    if not any(c.isalnum() and not is_default_ignorable(c) for c in text):
        raise MorphError(f"The {what} has no letters or digits; give a few words, e.g. 'a dog'.")
    return " ".join(text.split())


@dataclass
class RenderRequest:
    """One morph from ``prompt_a`` (t=0) to ``prompt_b`` (t=1).

    ``size`` None means the model's native size (512 for SD 1.x, 768 for SD 2.x 768-v, 64 for ``tiny``).
    ``seed_b``, when given, slerps the starting noise from ``seed``'s to ``seed_b``'s along t.
    """

    prompt_a: str
    prompt_b: str
    frames: int = 24
    seed: int = 0
    seed_b: int | None = None
    negative: str = ""
    steps: int = 25
    size: int | None = None
    guidance: float = 7.5
    scheduler: str = "dpm++2m"
    interpolation: str = "lerp"
    pacing: str = "perceptual"
    candidates: int = 5

    def validate(self) -> "RenderRequest":
        """Return a normalised copy or raise MorphError naming the first problem."""
        r = dataclasses.replace(self)
        r.prompt_a = clean_prompt(r.prompt_a, "first prompt")
        r.prompt_b = clean_prompt(r.prompt_b, "second prompt")
        r.negative = clean_prompt(r.negative, "negative prompt") if (r.negative or "").strip() else ""
        _int_in("frames", r.frames, MIN_FRAMES, MAX_FRAMES)
        _int_in("steps", r.steps, MIN_STEPS, MAX_STEPS)
        _int_in("seed", r.seed, 0, SEED_MAX)
        if r.seed_b is not None:
            _int_in("second seed", r.seed_b, 0, SEED_MAX)
        _int_in("candidates", r.candidates, 1, MAX_CANDIDATES)
        r.candidates = min(r.candidates, r.frames)  # a 3-frame morph offers at most 3 candidates
        if r.size is not None:
            _int_in("size", r.size, MIN_SIZE, MAX_SIZE)
            if r.size % 8:
                raise MorphError(f"size must be a multiple of 8 (got {r.size}; try {r.size // 8 * 8}).")
        if not (0.0 <= float(r.guidance) <= 30.0):
            raise MorphError(f"guidance must be between 0 and 30 (got {r.guidance}).")
        r.scheduler = (r.scheduler or "").strip().lower()
        if r.scheduler in STOCHASTIC_SCHEDULERS:
            raise MorphError(f"scheduler '{r.scheduler}' adds fresh noise at every step, so neighbouring frames "
                             f"would not match; use one of: {', '.join(SCHEDULERS)}.")
        if r.scheduler not in SCHEDULERS:
            raise MorphError(f"unknown scheduler '{r.scheduler}'; use one of: {', '.join(SCHEDULERS)}.")
        if r.interpolation not in INTERPOLATIONS:
            raise MorphError(f"interpolation must be one of: {', '.join(INTERPOLATIONS)}.")
        if r.pacing not in PACINGS:
            raise MorphError(f"pacing must be one of: {', '.join(PACINGS)}.")
        return r

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RenderRequest":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _int_in(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MorphError(f"{name} must be a whole number between {lo} and {hi} (got {value!r}).")
    if not lo <= value <= hi:
        raise MorphError(f"{name} must be between {lo} and {hi} (got {value}).")


@dataclass
class Progress:
    """Passed to the render's progress callback (from the rendering thread)."""

    frames_done: int
    frames_total: int
    step: int  # denoising step within the current batch, 1-based
    steps: int
    fraction: float  # 0..1 of the whole render's UNet work
    stage: str = "denoise"  # "encode" | "denoise" | "decode" | "pace"


@dataclass
class RenderResult:
    """Frames in t order plus what the pacing and midpoint pick measured."""

    frames: list  # list[PIL.Image.Image], RGB, in increasing t
    ts: list[float]
    distances: list[float]  # len(frames) - 1 adjacent distances
    max_over_mean: float
    one_minus_gini: float
    midpoint: int  # index into frames: half the cumulative path length
    candidates: list[int]  # K indices around the midpoint, in t order
    warnings: list[str] = field(default_factory=list)  # e.g. prompt truncated to 77 tokens
    unet_evals: int = 0  # frames denoised (each = `steps` UNet calls incl. CFG); for checking pacing cost
    seconds: float = 0.0
    model: str = ""
    request: RenderRequest | None = None

"""What a render is asked to do, and the one place its input is validated.

Both the CLI and the Discord bot build a :class:`RenderRequest` and call :meth:`RenderRequest.validate`,
so a bad prompt or number gets the same clear message everywhere.
"""
from __future__ import annotations

import dataclasses
import os
import unicodedata
from dataclasses import dataclass, field

MIN_FRAMES, MAX_FRAMES = 2, 120
MIN_STEPS, MAX_STEPS = 1, 150
MIN_SIZE, MAX_SIZE = 64, 1024
MAX_PROMPT_CHARS = 1000
MAX_CANDIDATES = 9
SEED_MAX = 2**32 - 1

#: Every frame must see the same noise at every step: deterministic schedulers, and ``lcm``, whose multistep
#: sampling adds fresh noise at each step, which the engine makes the same noise for every frame.
SCHEDULERS = ("dpm++2m", "ddim", "pndm", "euler", "lcm")
#: Schedulers people ask for that add fresh noise per step (and so break frame coherence).
STOCHASTIC_SCHEDULERS = ("euler_a", "euler-ancestral", "dpm++2m-sde", "dpm++sde", "ddpm", "k_euler_a")
INTERPOLATIONS = ("lerp", "slerp")
PACINGS = ("perceptual", "uniform")


class MorphError(ValueError):
    """A problem the user can fix; ``str(err)`` is the message to show them (no traceback)."""


class Cancelled(Exception):
    """Raised by :meth:`morph.Morpher.render` when its cancel flag was set; the render stopped early."""


def clean_prompt(text: str, what: str = "prompt") -> str:
    """Return the prompt with surrounding whitespace removed, or raise MorphError.

    Refuses empty/whitespace-only text, control characters (newlines and tabs are folded to spaces
    first), and text longer than MAX_PROMPT_CHARS.
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
    return " ".join(text.split())


@dataclass
class RenderRequest:
    """One morph from ``prompt_a`` (t=0) to ``prompt_b`` (t=1).

    ``size`` None means the model's native size (512 for SD 1.x, 768 for SD 2.x 768-v, 1024 for SDXL, 64 for
    ``tiny``). ``steps``, ``guidance`` and ``scheduler`` None mean the model's defaults (its profile, see
    :mod:`morph.profiles`: 25 DPM-Solver++ steps with guidance for most models, 4 steps without guidance for
    Turbo/Lightning). ``seed_b``, when given, slerps the starting noise from ``seed``'s to ``seed_b``'s along t.
    """

    prompt_a: str
    prompt_b: str
    frames: int = 24
    seed: int = 0
    seed_b: int | None = None
    negative: str = ""
    steps: int | None = None
    size: int | None = None
    guidance: float | None = None
    scheduler: str | None = None
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
        if r.steps is not None:
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
        if r.guidance is not None and not (0.0 <= float(r.guidance) <= 30.0):
            raise MorphError(f"guidance must be between 0 and 30 (got {r.guidance}).")
        r.scheduler = (r.scheduler or "").strip().lower() or None
        if r.scheduler in STOCHASTIC_SCHEDULERS:
            raise MorphError(f"scheduler '{r.scheduler}' adds fresh noise at every step, so neighbouring frames "
                             f"would not match; use one of: {', '.join(SCHEDULERS)}.")
        if r.scheduler is not None and r.scheduler not in SCHEDULERS:
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


def parse_loras(text: str | None) -> tuple[tuple[str, float], ...]:
    """LoRA styles as ``MORPH_LORAS`` and ``morph render --lora`` write them: comma-separated
    ``path[:weight]`` entries, e.g. ``styles/ink.safetensors:0.8, styles/film.safetensors`` (weight 1 when
    left out; 0 turns a LoRA off, negative weights push away from its style). Each path must be an existing
    ``.safetensors`` file. Returns ((path, weight), ...) in the given order; raises MorphError naming the
    bad entry."""
    out = []
    for raw in (text or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        path, weight = entry, 1.0
        head, sep, tail = entry.rpartition(":")
        if sep and "/" not in tail and "\\" not in tail:  # "path:0.8", not the drive of "C:\\styles\\ink…"
            try:
                weight = float(tail)
            except ValueError:
                raise MorphError(f"LoRA '{entry}': the weight after ':' must be a number, e.g. "
                                 "styles/ink.safetensors:0.8.") from None
            path = head.strip()
        if weight != weight or abs(weight) == float("inf"):
            raise MorphError(f"LoRA '{entry}': the weight must be a finite number.")
        if not path.endswith(".safetensors"):
            raise MorphError(f"LoRA '{entry}': give a .safetensors file (as diffusers and kohya trainers save "
                             "them).")
        if not os.path.isfile(os.path.expanduser(path)):
            raise MorphError(f"LoRA '{entry}': no such file '{path}'.")
        out.append((os.path.expanduser(path), weight))
    return tuple(out)

"""What a render is asked to do, and the one place its input is validated.

Both the CLI and the Discord bot build a :class:`RenderRequest` and call :meth:`RenderRequest.validate`,
so a bad prompt or number gets the same clear message everywhere.
"""
from __future__ import annotations

import dataclasses
import math
import os
import unicodedata
from dataclasses import dataclass, field

MIN_FRAMES, MAX_FRAMES = 2, 120
MIN_PROMPTS, MAX_PROMPTS = 2, 4  # a chain morphs through up to 4 prompts in order
MIN_STEPS, MAX_STEPS = 1, 150
MIN_SIZE, MAX_SIZE = 64, 1024
MAX_PROMPT_CHARS = 1000
MAX_CANDIDATES = 9
SEED_MAX = 2**32 - 1
#: CLIP's context length: every SD 1.x/2.x/SDXL text encoder sees exactly this many tokens.
CLIP_MAX_TOKENS = 77

#: Every frame must see the same noise at every step: deterministic schedulers, and ``lcm``, whose multistep
#: sampling adds fresh noise at each step, which the engine makes the same noise for every frame.
SCHEDULERS = ("dpm++2m", "ddim", "pndm", "euler", "lcm")
#: Schedulers people ask for that add fresh noise per step (and so break frame coherence).
STOCHASTIC_SCHEDULERS = ("euler_a", "euler-ancestral", "dpm++2m-sde", "dpm++sde", "ddpm", "k_euler_a")
INTERPOLATIONS = ("lerp", "slerp")
PACINGS = ("perceptual", "uniform")
#: smooth: every frame's attention anchored to its segment's two ends (morph.anchoring); plain: without.
PATHS = ("smooth", "plain")
#: The sampler picture morphs use: the one DDIM inversion (morph.inversion) inverts.
IMAGE_SCHEDULER = "ddim"
#: Guidance picture morphs use unless the request asks for another: none, so inversion and render agree.
IMAGE_GUIDANCE = 1.0


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


def N_(message: str) -> str:
    """Mark an English message of :data:`PROBLEMS` for the bot's catalogue (a no-op: the engine itself speaks
    English; the bot translates the message where it shows it)."""
    return message


#: Every problem :class:`Invalid` names (its ``code``) with its English message, whose placeholders its facts
#: fill. Facts are plain values (text, numbers, lists of text), so a front can store them and word them in
#: another language: ``what`` names a prompt (:data:`PROMPT_NAMES`, ``negative prompt``), ``name`` a setting,
#: ``given`` is what was given as the message quotes it, lists are choices. ``make messages`` puts a new
#: message into the bot's catalogues.
PROBLEMS = {
    "prompt_empty": N_("The {what} is empty: give a few words, e.g. 'a dog'."),
    "prompt_too_long": N_("The {what} is {length} characters long; the limit is {limit}."),
    "prompt_invisible": N_("The {what} contains control or invisible characters (e.g. {char}); use plain text."),
    "prompt_no_letters": N_("The {what} has no letters or digits; give a few words, e.g. 'a dog'."),
    "prompt_count": N_("a chain takes {low} to {high} prompts (got {count})."),
    "prompt_one_text": N_("a chain takes {low} to {high} prompts (got one text)."),
    "not_true_or_false": N_("{name} must be true or false (got {given})."),
    "not_a_whole_number": N_("{name} must be a whole number between {low} and {high} (got {given})."),
    "out_of_range": N_("{name} must be between {low} and {high} (got {given})."),
    "not_a_number": N_("{name} must be a number (got {given})."),
    "not_a_choice": N_("{name} must be one of: {choices}."),
    "second_seed_chain": N_("a second seed only works for a plain two-prompt morph, not a chain or a loop (a chain "
                            "keeps one starting noise so its joins do not jump)."),
    "size_multiple": N_("size must be a multiple of 8 (got {given}; try {suggestion})."),
    "guidance_not_a_number": N_("guidance must be a number between 0 and 30 (got {given})."),
    "guidance_range": N_("guidance must be between 0 and 30 (got {given})."),
    "scheduler_noisy": N_("scheduler '{given}' adds fresh noise at every step, so neighbouring frames would not "
                          "match; use one of: {choices}."),
    "scheduler_unknown": N_("unknown scheduler '{given}'; use one of: {choices}."),
    "picture_ends": N_("a picture morph has two ends, a picture or a prompt each, and at least one picture."),
    "picture_path": N_("a picture end must be a picture file's path."),
    "picture_chain": N_("pictures can only be the two ends of a plain morph, not part of a chain or a loop."),
    "picture_second_seed": N_("a second seed does not work with pictures: a picture's own noise is found from it."),
    "picture_scheduler": N_("picture morphs sample with {scheduler} (the sampler a picture is inverted with); "
                            "leave the scheduler out."),
    "refine_one_end": N_("a refine range needs both ends (t_start and t_end), or neither."),
    "refine_range": N_("the refine range must run forwards inside the path 0..{length} (got {start}..{end})."),
    "refine_frames": N_("frames must be at least {needed} to refine {start}..{end}: its ends and the prompts "
                        "inside it each take a frame."),
    "chain_frames": N_("a chain of {segments} segments needs at least {needed} frames (2 per segment; got "
                       "{frames})."),
    "too_many_steps": N_("this model is distilled for 1-{max_steps} steps ({profile} profile); {steps} steps would "
                         "make its pictures worse. Ask for {default}, or leave steps out for the model's default."),
    "out_of_memory_batch": N_("Out of device memory even with one frame per batch at {size}px; try a smaller size, "
                              "or free the GPU from other programs."),
    "out_of_memory_decode": N_("Out of device memory while decoding one {size}px frame; try a smaller size."),
    "gif_too_big": N_("the GIF cannot fit in {budget}: even at {width}x{height}, {colors} colours and {frames} "
                      "frames it is {size}"),
    "mp4_too_big": N_("the MP4 cannot fit in {budget}: even at {width}x{height} and {kbits} kbit/s it is {size}"),
}


class Invalid(MorphError):
    """A request the engine refuses, as data: ``code`` (a :data:`PROBLEMS` key) and ``facts``, the values its
    message names. ``str(err)`` is that message in English (what the command line shows); the bot words it in
    a member's language from the code and the facts, and stores them for a failed job."""

    def __init__(self, code: str, /, **facts: object) -> None:
        self.code = code
        self.facts = facts
        shown = {k: ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in facts.items()}
        super().__init__(PROBLEMS[code].format(**shown))


#: What the engine tells about a render it did make (a :class:`Notice`'s ``code``) with its English message:
#: a render warning, or what an animation gave up to fit its byte budget. Facts as for :data:`PROBLEMS`;
#: ``before`` and ``after`` of a size are picture sizes as written (``512``, ``512x384``).
NOTICES = {
    "prompt_truncated": N_("The {what} is longer than CLIP's {limit} tokens; these words were dropped: {dropped}"),
    "negative_unused": N_("The negative prompt was not used: at guidance {guidance} this model renders without "
                          "classifier-free guidance, which is what a negative prompt steers."),
    "reduced_size": N_("size {before}→{after}"),
    "reduced_palette": N_("palette {before}→{after}"),
    "reduced_frames": N_("frames {before}→{after}"),
    "reduced_bitrate": N_("bitrate {kbits} kbit/s"),
}


@dataclass(frozen=True)
class Notice:
    """Something the engine tells about a render it made, as data: ``code`` (a :data:`NOTICES` key) and
    ``facts`` (plain values), so a front can store it and word it in a member's language; ``str()`` is the
    English the command line prints."""

    code: str
    facts: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.code not in NOTICES:
            raise ValueError(f"unknown notice {self.code!r}")

    def __str__(self) -> str:
        return NOTICES[self.code].format(**{k: _english(v) for k, v in self.facts.items()})

    @classmethod
    def from_dict(cls, d: dict) -> Notice:
        """The notice as ``dataclasses.asdict`` wrote it."""
        return cls(code=str(d["code"]), facts=dict(d["facts"]))


def _english(value: object) -> object:
    """A fact as the command line writes it: 1,234 and 7.5 (not 7.500000)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    return value


class ModelLoadError(MorphError):
    """The model (or a LoRA) cannot be loaded: a problem for whoever runs the engine, whose message names
    paths and the hub's error. The command line shows it; the bot logs it and tells members only that the
    model could not be loaded."""


class Cancelled(Exception):
    """Raised by :meth:`morph.Morpher.render` when its cancel flag was set; the render stopped early."""


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the device ran out of memory: torch's ``OutOfMemoryError`` (also
    ``torch.cuda.OutOfMemoryError``; matched by name, so this module needs no torch) or a RuntimeError saying
    "out of memory" (what other backends raise). The render halves its batch on it; the bot explains it."""
    return type(err).__name__ == "OutOfMemoryError" or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def _joins_emoji(text: str, i: int) -> bool:
    """True if ``text[i]`` is a zero-width joiner between two emoji (👨‍👩‍👧, 🏳️‍🌈): part of one picture, not
    an invisible character hidden in a word."""
    if text[i] != "\u200d":
        return False
    before = text[:i].rstrip("\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")  # emoji and skin tones
    return bool(before) and i + 1 < len(text) and unicodedata.category(before[-1]) == "So" \
        and unicodedata.category(text[i + 1]) == "So"


def clean_prompt(text: str, what: str = "prompt") -> str:
    """Return the prompt with surrounding whitespace removed, or raise MorphError.

    Refuses empty/whitespace-only text, control characters (newlines and tabs are folded to spaces
    first), text longer than MAX_PROMPT_CHARS, and text without a single visible letter or digit (only
    blank-looking characters such as U+3164 HANGUL FILLER or U+2800 BRAILLE PATTERN BLANK, or only
    symbols): such a prompt looks empty in a message and gives the model nothing to draw.
    """
    if text is None:
        raise Invalid("prompt_empty", what=what)
    text = str(text).replace("\t", " ").replace("\r", " ").replace("\n", " ").strip()
    if not text:
        raise Invalid("prompt_empty", what=what)
    if len(text) > MAX_PROMPT_CHARS:
        raise Invalid("prompt_too_long", what=what, length=len(text), limit=MAX_PROMPT_CHARS)
    bad = [c for i, c in enumerate(text)
           if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") and not _joins_emoji(text, i)]
    if bad:
        raise Invalid("prompt_invisible", what=what, char=f"U+{ord(bad[0]):04X}")
    if not any(c.isalnum() and not is_default_ignorable(c) for c in text):
        raise Invalid("prompt_no_letters", what=what)
    return " ".join(text.split())


PROMPT_NAMES = ("first prompt", "second prompt", "third prompt", "fourth prompt")


@dataclass
class RenderRequest:
    """One morph from ``prompts[0]`` (t=0) to ``prompts[1]`` (t=1), or a chain through all ``prompts`` in order.

    **The path.** Every frame sits at a position ``u`` on the morph's path: ``u = k`` is exactly prompt k
    (``prompts[k]``), and between two whole numbers the frame is that fraction of the way to the next prompt.
    A two-prompt morph's path is 0..1 (``u`` is the familiar t). A chain ``prompts=[dog, cat, bird]`` runs
    0..2 (the cat at u=1); with ``loop`` it runs on to the dog again at u=3 (its last segment is
    bird → dog; the closing frame equals the first, so a full looped render leaves it out and the animation
    loops without a repeated frame). :meth:`locate` turns ``u`` into (segment, t). Every frame starts from
    the same noise (one ``seed``), so a chain's frame at prompt k is the same picture as the end frame of a
    plain morph to that prompt.

    ``prompts``: the 2..4 prompts (two for a plain morph), cleaned by :meth:`validate`.

    **Refine.** ``t_start``/``t_end`` (both, or neither) render the ``frames`` over exactly that part of the
    path (positions as above, so in a chain a range may cross a prompt, whose frame is then rendered too);
    the first and last frames are the same pictures as an earlier render's frames at those positions with
    the same settings (:meth:`refine` makes such a request from an existing one). None: the whole path.

    ``size`` None means the model's native size (512 for SD 1.x, 768 for SD 2.x 768-v, 1024 for SDXL, 64 for
    ``tiny``). ``steps``, ``guidance`` and ``scheduler`` None mean the model's defaults (its profile, see
    :mod:`morph.profiles`: 25 DPM-Solver++ steps with guidance for most models, 4 steps without guidance for
    Turbo/Lightning). ``seed_b``, when given, slerps the starting noise from ``seed``'s to ``seed_b``'s along t.

    ``path``: ``smooth`` (default) anchors every frame's attention to its segment's two end renders
    (:mod:`morph.anchoring`), ``plain`` renders each frame from its mixed prompt alone (the ends are the same
    pictures either way). ``interpolation`` (lerp or slerp of the frames' text embeddings) applies to the plain
    path: on the smooth path the frames' cross-attention reads the two ends' texts, so only SDXL's pooled
    embedding still follows it.

    **Pictures.** ``images`` makes either end (or both) a picture instead of a prompt (:mod:`morph.inversion`):
    the end's noise is found from the picture, so its frame reproduces the picture; its prompt, which may be
    empty, describes it. Such a morph samples with ddim and, unless ``guidance`` is given, without guidance.
    On the smooth path its frames are anchored to the two end renders like any morph's: a picture end's render
    is its inverted noise denoised back, so the frames in between attend to the pictures' own keys/values.
    """

    prompts: list[str] = field(default_factory=list)
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
    path: str = "smooth"
    candidates: int = 5  # per segment (a chain offers this many around each segment's midpoint)
    loop: bool = False
    t_start: float | None = None
    t_end: float | None = None
    #: Picture ends (:mod:`morph.inversion`): empty for a prompt morph, else one entry per end (two), each
    #: the path of a picture file or None for an end that is a prompt. A picture end's prompt may be empty.
    images: list[str | None] = field(default_factory=list)

    # ------------------------------------------------------------------------------------------ path
    @property
    def segments(self) -> int:
        """Morphs in the path: prompts - 1, plus one back to the first prompt with ``loop``."""
        n = len(self.prompts)
        return n - 1 + bool(self.loop)

    def locate(self, u: float) -> tuple[int, float]:
        """(segment, t) of path position ``u``: segment k morphs from prompt k to the next (t 0..1).

        A prompt's own position belongs to the segment it starts (t=0), the path's end to the last one (t=1).
        """
        k = min(int(u), self.segments - 1)
        return k, float(u) - k

    def knots(self) -> list[float]:
        """The path positions of the prompts (0, 1, …, segments) that lie inside the rendered range,
        its two ends included."""
        lo, hi = self.path_range()
        inner = [float(k) for k in range(math.floor(lo) + 1, math.ceil(hi)) if lo < k < hi]
        return [lo] + inner + [hi]

    def path_range(self) -> tuple[float, float]:
        """The part of the path this request renders: (t_start, t_end), or the whole (0, segments)."""
        if self.t_start is None or self.t_end is None:
            return 0.0, float(self.segments)
        return float(self.t_start), float(self.t_end)

    def closes_loop(self) -> bool:
        """Whether the render covers a whole looped path, whose closing frame (the first again) is left out."""
        return bool(self.loop) and self.t_start is None

    def refine(self, t_start: float, t_end: float, frames: int) -> RenderRequest:
        """The same morph (prompts, seed, settings) with ``frames`` frames over exactly ``t_start..t_end``;
        its first and last frames are this request's frames at those positions (e.g. two neighbouring frames'
        ``RenderResult.ts``). Not validated yet."""
        return dataclasses.replace(self, prompts=list(self.prompts), images=list(self.images), t_start=t_start,
                                   t_end=t_end, frames=frames)

    def validate(self) -> RenderRequest:
        """Return a normalised copy or raise MorphError naming the first problem."""
        r = dataclasses.replace(self)
        if r.images:
            r.images, r.prompts = _check_pictures(r)
        else:
            r.images = []
            r.prompts = _check_prompts(r.prompts)
        if not isinstance(r.loop, bool):
            raise Invalid("not_true_or_false", name="loop", given=repr(r.loop))
        r.negative = clean_prompt(r.negative, "negative prompt") if (r.negative or "").strip() else ""
        _int_in("frames", r.frames, MIN_FRAMES, MAX_FRAMES)
        if r.steps is not None:
            _int_in("steps", r.steps, MIN_STEPS, MAX_STEPS)
        _int_in("seed", r.seed, 0, SEED_MAX)
        if r.seed_b is not None:
            _int_in("second seed", r.seed_b, 0, SEED_MAX)
        _int_in("candidates", r.candidates, 1, MAX_CANDIDATES)
        r.candidates = min(r.candidates, r.frames)  # a 3-frame morph offers at most 3 candidates
        if r.seed_b is not None and r.segments > 1:
            raise Invalid("second_seed_chain")
        _check_range(r)
        if r.size is not None:
            _int_in("size", r.size, MIN_SIZE, MAX_SIZE)
            if r.size % 8:
                raise Invalid("size_multiple", given=str(r.size), suggestion=r.size // 8 * 8)
        if r.guidance is not None:
            if isinstance(r.guidance, bool) or not isinstance(r.guidance, (int, float)):
                raise Invalid("guidance_not_a_number", given=repr(r.guidance))
            if not 0.0 <= float(r.guidance) <= 30.0:  # NaN fails this too
                raise Invalid("guidance_range", given=str(r.guidance))
            r.guidance = float(r.guidance)
        r.scheduler = (r.scheduler or "").strip().lower() or None
        if r.scheduler in STOCHASTIC_SCHEDULERS:
            raise Invalid("scheduler_noisy", given=r.scheduler, choices=list(SCHEDULERS))
        if r.scheduler is not None and r.scheduler not in SCHEDULERS:
            raise Invalid("scheduler_unknown", given=r.scheduler, choices=list(SCHEDULERS))
        if r.interpolation not in INTERPOLATIONS:
            raise Invalid("not_a_choice", name="interpolation", choices=list(INTERPOLATIONS))
        if r.pacing not in PACINGS:
            raise Invalid("not_a_choice", name="pacing", choices=list(PACINGS))
        if r.path not in PATHS:
            raise Invalid("not_a_choice", name="path", choices=list(PATHS))
        return r

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RenderRequest:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _check_prompts(prompts) -> list[str]:
    """The cleaned chain: ``prompts`` (2..4)."""
    if isinstance(prompts, str) or not MIN_PROMPTS <= len(prompts or ()) <= MAX_PROMPTS:
        if isinstance(prompts, str):
            raise Invalid("prompt_one_text", low=MIN_PROMPTS, high=MAX_PROMPTS)
        raise Invalid("prompt_count", low=MIN_PROMPTS, high=MAX_PROMPTS, count=len(prompts or ()))
    return [clean_prompt(p, PROMPT_NAMES[i]) for i, p in enumerate(prompts)]


def _check_pictures(r: RenderRequest) -> tuple[list[str | None], list[str]]:
    """(images, prompts) of a morph with picture ends: two ends, at least one a picture file; an end's prompt
    may be empty only when it is a picture. Picture morphs are two-end morphs (no chain, no loop) with the
    inverted sampler (morph.inversion), on the path the request asks for (the smooth one by default)."""
    images = list(r.images)
    if len(images) != 2 or not any(images):
        raise Invalid("picture_ends")
    if any(img is not None and (not isinstance(img, str) or not img.strip()) for img in images):
        raise Invalid("picture_path")
    if r.loop or (r.prompts and len(r.prompts) != 2):
        raise Invalid("picture_chain")
    if r.seed_b is not None:
        raise Invalid("picture_second_seed")
    if (r.scheduler or "").strip().lower() not in ("", IMAGE_SCHEDULER):
        raise Invalid("picture_scheduler", scheduler=IMAGE_SCHEDULER)
    given = list(r.prompts) if r.prompts else ["", ""]
    prompts = []
    for i, (text, picture) in enumerate(zip(given, images, strict=True)):
        if picture is not None and not (text or "").strip():
            prompts.append("")
        else:
            prompts.append(clean_prompt(text, PROMPT_NAMES[i]))
    r.scheduler = IMAGE_SCHEDULER
    if r.guidance is None:
        r.guidance = IMAGE_GUIDANCE  # inverted and rendered alike
    return images, prompts


def _check_range(r: RenderRequest) -> None:
    """A refine range inside the path, and enough frames for the path's prompts (whose frames are always
    rendered, so a chain's joins never fall between frames)."""
    if (r.t_start is None) != (r.t_end is None):
        raise Invalid("refine_one_end")
    length = r.segments
    if r.t_start is not None and r.t_end is not None:
        for name in ("t_start", "t_end"):
            value = getattr(r, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise Invalid("not_a_number", name=name, given=repr(value))
        t_start, t_end = float(r.t_start), float(r.t_end)
        r.t_start, r.t_end = t_start, t_end
        if not 0.0 <= t_start < t_end <= length:
            raise Invalid("refine_range", length=length, start=f"{t_start:g}", end=f"{t_end:g}")
        needed = len(r.knots())
        if r.frames < needed:
            raise Invalid("refine_frames", needed=needed, start=f"{t_start:g}", end=f"{t_end:g}")
    elif length > 1 and r.frames < 2 * length:
        raise Invalid("chain_frames", segments=length, needed=2 * length, frames=r.frames)


def _int_in(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("not_a_whole_number", name=name, low=lo, high=hi, given=repr(value))
    if not lo <= value <= hi:
        raise Invalid("out_of_range", name=name, low=lo, high=hi, given=str(value))


@dataclass
class Progress:
    """Passed to the render's progress callback (from the rendering thread)."""

    frames_done: int
    frames_total: int
    step: int  # denoising step within the current batch, 1-based
    steps: int
    fraction: float  # 0..1 of the whole render's UNet work
    stage: str = "denoise"  # "encode" | "invert" (a picture end) | "denoise" | "decode" | "pace"


@dataclass
class Segment:
    """The frames of one segment of the path (a refine: the part of it inside the range).

    ``index`` k: the morph from ``prompts[k]`` to the next prompt (the first again after the last, with loop).
    ``first``..``last``: the frames it owns, inclusive; each segment owns the frame at its starting prompt and
    the next segment starts at ``last + 1`` (the path's last segment also owns the end frame). ``midpoint``:
    the frame at half the segment's visual length; ``candidates``: up to ``request.candidates`` frames around
    it, within first..last.
    """

    index: int
    first: int
    last: int
    midpoint: int
    candidates: list[int]


@dataclass
class RenderResult:
    """Frames in path order plus what the pacing and midpoint pick measured.

    ``ts``: each frame's position on the path (see :class:`RenderRequest`: 0..1 for a two-prompt morph,
    0..segments for a chain; ``request.locate(u)`` gives (segment, t)). ``segments``: one :class:`Segment`
    per segment, each with its own midpoint and candidates; ``candidates`` lists them all in path order (for a
    two-prompt morph, the K frames around its midpoint). ``midpoint``: the frame at half the whole visual path.
    ``distances``: between neighbouring frames (len(frames) - 1); ``max_over_mean`` and ``one_minus_gini``
    also count the step from the last frame back to the first in a closed loop, which plays too.
    """

    frames: list  # list[PIL.Image.Image], RGB, in increasing t
    ts: list[float]
    distances: list[float]  # len(frames) - 1 adjacent distances
    max_over_mean: float
    one_minus_gini: float
    midpoint: int  # index into frames: half the cumulative path length
    candidates: list[int]  # K indices around each segment's midpoint, in path order
    warnings: list[Notice] = field(default_factory=list)  # e.g. the prompt truncated to 77 tokens
    unet_evals: int = 0  # frames denoised (each = `steps` UNet calls incl. CFG); for checking pacing cost
    seconds: float = 0.0
    model: str = ""
    request: RenderRequest | None = None
    segments: list[Segment] = field(default_factory=list)
    #: A picture morph's reconstruction: per end, the PSNR in dB of its rendered frame against the picture
    #: at the render's size (None for a prompt end or an end outside a refine range); empty otherwise.
    reconstruction: list[float | None] = field(default_factory=list)


#: The largest LoRA weight (either sign) accepted: far past any useful style strength, and small enough that
#: fusing it cannot overflow the weights into infinities.
MAX_LORA_WEIGHT = 10.0


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
        if not abs(weight) <= MAX_LORA_WEIGHT:  # NaN and infinities fail this too
            raise MorphError(f"LoRA '{entry}': the weight must be a finite number between -{MAX_LORA_WEIGHT:g} "
                             f"and {MAX_LORA_WEIGHT:g} (styles are usually fused at 0.5 to 1).")
        if not path.endswith(".safetensors"):
            raise MorphError(f"LoRA '{entry}': give a .safetensors file (as diffusers and kohya trainers save "
                             "them).")
        if not os.path.isfile(os.path.expanduser(path)):
            raise MorphError(f"LoRA '{entry}': no such file '{path}'.")
        out.append((os.path.expanduser(path), weight))
    return tuple(out)

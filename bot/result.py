"""What a job's row holds about its render: :class:`JobResult`, one typed, versioned record of the
outcome, and :class:`JobProgress`, the latest progress of a running job.

The worker builds it (:func:`bot.render_output.render_files`), the store writes it as JSON
(:meth:`JobResult.to_json`) and parses it once where the row is read (:meth:`bot.jobs.Job.from_row` →
``job.result``); messages, views, delivery and actions read its attributes. The JSON has a ``version``:
a change of its shape gets a new version and a migration that converts the stored rows (0005 converted
the untyped dicts written before the record existed, 0012 the English warnings and reductions of version 1
into notices), never a fallback in the code that reads it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from morph.request import Notice, Progress

#: The shape :meth:`JobResult.to_json` writes and :meth:`JobResult.from_json` reads.
RESULT_VERSION = 2


class ResultFormatError(ValueError):
    """A stored result of another version or shape (a row the migrations did not convert)."""


@dataclass(frozen=True)
class SegmentResult:
    """One segment of the path (see :class:`morph.request.Segment`): its frames ``first..last``, its
    ``midpoint`` and its ``candidates`` (frame indices)."""

    index: int
    first: int
    last: int
    midpoint: int
    candidates: tuple[int, ...] = ()


@dataclass(frozen=True)
class Animation:
    """One animation file the worker made: ``kind`` ``"mp4"`` or ``"gif"``, its size in bytes, how many
    frames and pixels it kept, what was given up to fit the upload limit (``reductions``: the engine's
    notices, :class:`morph.request.Notice`), and for an MP4 its bit rate."""

    kind: str
    bytes: int
    frame_count: int
    size: tuple[int, int]
    reductions: tuple[Notice, ...] = ()
    bitrate: int | None = None


#: Discord's most options in one select menu.
SELECT_LIMIT = 25


def choose_select_frames(frame_count: int, candidates: list[int] | None = None,
                         limit: int = SELECT_LIMIT) -> list[int]:
    """Up to ``limit`` frame indices for the select menu, ascending.

    All frames when they fit; otherwise the first, the last, every candidate, and the rest evenly spaced
    over the whole morph (so the menu spans it from start to end without gaps larger than needed).
    """
    if frame_count <= 0:
        return []
    if frame_count <= limit:
        return list(range(frame_count))
    chosen = {0, frame_count - 1}
    for c in sorted(set(c for c in (candidates or []) if 0 <= c < frame_count)):
        if len(chosen) < limit:
            chosen.add(c)
    free = limit - len(chosen)
    rest = [i for i in range(frame_count) if i not in chosen]
    if free > 0:  # evenly spaced over the frames not yet chosen (len(rest) > free here)
        step = len(rest) / free
        chosen.update(rest[int((i + 0.5) * step)] for i in range(free))
    return sorted(chosen)[:limit]


def pickable_frames(frame_count: int, candidates) -> tuple[int, ...]:
    """The frames a result offers to pick, ascending: its candidates (buttons, reactions) and the select menu's
    (:func:`choose_select_frames`). Only these are stored as pictures (``bot.render_output``)."""
    candidates = [int(c) for c in candidates]
    return tuple(sorted(set(c for c in candidates if 0 <= c < frame_count)
                        | set(choose_select_frames(frame_count, candidates))))


@dataclass(frozen=True)
class JobResult:
    """A render's outcome as stored with its job (the frames themselves are files: see bot.artifacts).

    ``ts``: each frame's position on the path; ``distances``: between neighbouring frames; ``candidates``:
    the frames offered to pick, in path order (each segment's in ``segments``). ``animations``: the files
    made, in the order they are posted (MP4 first). ``mp4_error``: why an MP4 that was asked for is not
    among them (for the log only: it may name paths); ``budget``: the bytes the animations were given.
    ``reconstruction``: for a picture morph, each end's PSNR (dB) against its picture (None: a prompt end);
    empty for a prompt morph. ``warnings``: the engine's notices about the render (a prompt cut at CLIP's
    77 tokens…), worded in the job's language where they are shown.
    """

    frame_count: int
    ts: tuple[float, ...] = ()
    distances: tuple[float, ...] = ()
    max_over_mean: float = 0.0
    one_minus_gini: float = 0.0
    midpoint: int = 0
    candidates: tuple[int, ...] = ()
    segments: tuple[SegmentResult, ...] = ()
    warnings: tuple[Notice, ...] = ()
    seconds: float = 0.0
    reconstruction: tuple[float | None, ...] = ()
    #: what was asked for: "mp4", "gif" or "both"
    format: str = "gif"
    animations: tuple[Animation, ...] = ()
    mp4_error: str | None = None
    budget: int = 0
    sheet_bytes: int = 0
    frame_size: tuple[int, int] = (0, 0)
    model: str | None = None
    unet_evals: int | None = None
    version: int = field(default=RESULT_VERSION)

    @property
    def files(self) -> tuple[str, ...]:
        """The kinds of animation made, in posting order: ``("mp4", "gif")``, ``("gif",)``…"""
        return tuple(a.kind for a in self.animations)

    @property
    def fell_back(self) -> bool:
        """An MP4 was asked for but could not be made here: a GIF took its place."""
        return self.mp4_error is not None

    @property
    def pickable_frames(self) -> tuple[int, ...]:
        """The frames one can pick (:func:`pickable_frames`): the only ones stored as pictures."""
        return pickable_frames(self.frame_count, self.candidates)

    def animation(self, kind: str) -> Animation | None:
        return next((a for a in self.animations if a.kind == kind), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> JobResult:
        """The record :meth:`to_json` wrote; :class:`ResultFormatError` for anything else."""
        try:
            return cls.from_dict(json.loads(text))
        except (TypeError, KeyError, ValueError) as e:
            raise ResultFormatError(f"not a version {RESULT_VERSION} result: {e}") from e

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobResult:
        if d.get("version") != RESULT_VERSION:
            raise ResultFormatError(f"result version {d.get('version')!r}, this code reads {RESULT_VERSION}")
        return cls(
            version=RESULT_VERSION,
            frame_count=int(d["frame_count"]),
            ts=tuple(float(t) for t in d["ts"]),
            distances=tuple(float(x) for x in d["distances"]),
            max_over_mean=float(d["max_over_mean"]),
            one_minus_gini=float(d["one_minus_gini"]),
            midpoint=int(d["midpoint"]),
            candidates=tuple(int(c) for c in d["candidates"]),
            segments=tuple(SegmentResult(index=int(s["index"]), first=int(s["first"]), last=int(s["last"]),
                                         midpoint=int(s["midpoint"]),
                                         candidates=tuple(int(c) for c in s["candidates"]))
                           for s in d["segments"]),
            warnings=tuple(Notice.from_dict(w) for w in d["warnings"]),
            seconds=float(d["seconds"]),
            reconstruction=tuple(None if p is None else float(p) for p in d["reconstruction"]),
            format=str(d["format"]),
            animations=tuple(Animation(kind=str(a["kind"]), bytes=int(a["bytes"]),
                                       frame_count=int(a["frame_count"]),
                                       size=(int(a["size"][0]), int(a["size"][1])),
                                       reductions=tuple(Notice.from_dict(r) for r in a["reductions"]),
                                       bitrate=None if a["bitrate"] is None else int(a["bitrate"]))
                             for a in d["animations"]),
            mp4_error=d["mp4_error"],
            budget=int(d["budget"]),
            sheet_bytes=int(d["sheet_bytes"]),
            frame_size=(int(d["frame_size"][0]), int(d["frame_size"][1])),
            model=d["model"],
            unet_evals=d["unet_evals"],
        )


@dataclass(frozen=True)
class JobProgress:
    """A running job's latest progress as its worker records it with each heartbeat and the fronts show
    it: the render's :class:`morph.request.Progress` and the estimated seconds left (None: too early)."""

    stage: str
    frames_done: int
    frames_total: int
    step: int
    steps: int
    fraction: float
    eta_s: float | None = None

    @classmethod
    def of(cls, p: Progress, eta_s: float | None) -> JobProgress:
        return cls(p.stage, p.frames_done, p.frames_total, p.step, p.steps, p.fraction, eta_s)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> JobProgress:
        d = json.loads(text)
        try:
            return cls(stage=str(d["stage"]), frames_done=int(d["frames_done"]), frames_total=int(d["frames_total"]),
                       step=int(d["step"]), steps=int(d["steps"]), fraction=float(d["fraction"]),
                       eta_s=None if d["eta_s"] is None else float(d["eta_s"]))
        except (TypeError, KeyError, ValueError) as e:
            raise ResultFormatError(f"not a job's progress: {e}") from e


#: The shape :meth:`SafetyOutcome.to_json` writes and :meth:`SafetyOutcome.from_json` reads.
SAFETY_VERSION = 1


@dataclass(frozen=True)
class SafetyOutcome:
    """What the image safety check of a job's frames found and what was done (the job's ``safety`` column;
    the policy is :func:`bot.safety.decide`). Frame indices are 0-based."""

    #: a checker ran (False: MORPH_SAFETY=off, an age-restricted channel)
    checked: bool
    #: frames the checker flagged, or whose check failed
    flagged: tuple[int, ...] = ()
    #: frames replaced by the placeholder in everything posted (they cannot be picked or refined)
    withheld: tuple[int, ...] = ()
    #: posted as rendered: an age-restricted channel of a server that allows it
    unfiltered: bool = False
    #: nothing posted: the midpoint, every candidate or more than half the frames were flagged
    whole: bool = False
    frame_count: int = 0
    #: seconds the check took
    seconds: float = 0.0
    version: int = field(default=SAFETY_VERSION)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SafetyOutcome:
        """The record :meth:`to_json` wrote; :class:`ResultFormatError` for anything else."""
        try:
            d = json.loads(text)
            if d.get("version") != SAFETY_VERSION:
                raise ResultFormatError(f"safety version {d.get('version')!r}, this code reads {SAFETY_VERSION}")
            return cls(checked=bool(d["checked"]), flagged=tuple(int(i) for i in d["flagged"]),
                       withheld=tuple(int(i) for i in d["withheld"]), unfiltered=bool(d["unfiltered"]),
                       whole=bool(d["whole"]), frame_count=int(d["frame_count"]), seconds=float(d["seconds"]))
        except (TypeError, KeyError, ValueError, AttributeError) as e:
            if isinstance(e, ResultFormatError):
                raise
            raise ResultFormatError(f"not a version {SAFETY_VERSION} safety outcome: {e}") from e

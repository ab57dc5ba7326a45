"""The morph as a file to post: MP4, GIF or both within one byte budget (:func:`encode_animation`).

MP4s come from :mod:`morph.video`, GIFs from :mod:`morph.output`; when an MP4 cannot be made here, a GIF
takes its place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from morph import video
from morph.output import DEFAULT_BUDGET, GifResult, encode_gif
from morph.request import MorphError

FORMATS = ("mp4", "gif", "both")


@dataclass
class Animation:
    """What :func:`encode_animation` made. ``mp4_error``: why an MP4 that was asked for could not be made
    (None otherwise); ``notes``: what to tell the user about it (e.g. that a GIF was sent instead)."""

    mp4: video.VideoResult | None = None
    gif: GifResult | None = None
    mp4_error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes of all files together."""
        return sum(len(x.data) for x in (self.mp4, self.gif) if x is not None)


def encode_animation(frames: list[Image.Image], format: str = "mp4", budget_bytes: int = DEFAULT_BUDGET,
                     duration_ms: int = 100, boomerang: bool = False) -> Animation:
    """The morph as ``format`` (``mp4``, ``gif`` or ``both``) within ``budget_bytes`` for all files together.

    ``mp4``: an H.264 MP4 (:func:`morph.video.encode_mp4`). ``both``: the MP4 gets at most half the budget
    (it rarely needs that much) and the GIF the rest. When the MP4 cannot be made here (PyAV missing, no
    H.264 encoder, FFmpeg failed: :class:`morph.video.VideoUnavailable`), a GIF takes its place within the
    whole budget, ``mp4_error`` says why and ``notes`` carries a sentence for the user. A budget even the
    smallest setting cannot meet raises MorphError, as :func:`encode_gif` does.
    """
    if format not in FORMATS:
        raise MorphError(f"format must be one of: {', '.join(FORMATS)} (got {format!r}).")

    out = Animation()
    if format in ("mp4", "both"):
        try:
            out.mp4 = video.encode_mp4(frames, budget_bytes // 2 if format == "both" else budget_bytes,
                                 duration_ms=duration_ms, boomerang=boomerang)
        except video.VideoUnavailable as err:
            out.mp4_error = str(err)
            out.notes.append(f"No MP4 this time, here is a GIF instead: {err}")
    if format == "gif" or out.mp4 is None or format == "both":
        rest = budget_bytes - (len(out.mp4.data) if out.mp4 else 0)
        out.gif = encode_gif(frames, budget_bytes=rest, duration_ms=duration_ms, boomerang=boomerang)
    return out

"""What a render leaves behind: the job's files and its :class:`~bot.result.JobResult`
(:func:`render_files`), or the failure stored when it failed (:func:`failure_reason`)."""
from __future__ import annotations

import logging
import sys

from bot.artifacts import GIF_FILE, MP4_FILE, SHEET_FILE
from bot.jobs import Failure, Refused, failure
from bot.result import Animation, JobResult, SegmentResult, pickable_frames
from morph.images import PictureError, Problem
from morph.request import Invalid, ModelLoadError, MorphError, RenderResult, is_out_of_memory

log = logging.getLogger(__name__)

#: Room left in the upload limit for the multipart envelope and the message body.
UPLOAD_HEADROOM = 256 * 1024
#: Smallest budget the worker gives the animation (MP4 and/or GIF), even when the upload limit is tiny.
MIN_GIF_BUDGET = 256 * 1024


def render_files(result: RenderResult, upload_limit: int, boomerang: bool = False,
                 output_format: str = "gif") -> tuple[dict[str, bytes], JobResult]:
    """The job's files — ``sheet.png`` (candidate frames), the animation as ``output_format`` (``morph.mp4``
    and/or ``morph.gif``, together within ``upload_limit`` minus the sheet and headroom: see
    :func:`morph.animation.encode_animation`) and a lossless ``frame_NNN.png`` of each frame one can pick
    (:func:`bot.result.pickable_frames`: the candidates and the select menu's, at most 25 + 9, not all of a
    60- or 120-frame morph; ``bench/storage.py`` measures it) — and its :class:`JobResult`.

    When an MP4 was asked for but cannot be made here, a GIF takes its place: the result's ``files``
    says what was made, ``mp4_error`` why there is no MP4 (for the log only: it may name paths), and
    ``fell_back`` is True.
    """
    import io

    from morph.animation import encode_animation
    from morph.output import contact_sheet, frame_filename

    def png(image, optimize: bool = False) -> bytes:
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=optimize)
        return buf.getvalue()

    frames = result.frames
    files = {frame_filename(i): png(frames[i]) for i in pickable_frames(len(frames), result.candidates)}
    sheet = png(contact_sheet([frames[i] for i in result.candidates],
                              [str(k + 1) for k in range(len(result.candidates))]), optimize=True)
    budget = max(MIN_GIF_BUDGET, int(upload_limit) - len(sheet) - UPLOAD_HEADROOM)
    anim = encode_animation(frames, output_format, budget_bytes=budget, boomerang=boomerang)
    files[SHEET_FILE] = sheet
    animations = []
    if anim.mp4 is not None:
        files[MP4_FILE] = anim.mp4.data
        animations.append(Animation("mp4", len(anim.mp4.data), anim.mp4.frame_count, (anim.mp4.width, anim.mp4.height),
                                    tuple(anim.mp4.reductions), bitrate=anim.mp4.bitrate))
    if anim.gif is not None:
        files[GIF_FILE] = anim.gif.data
        animations.append(Animation("gif", len(anim.gif.data), anim.gif.frame_count, (anim.gif.width, anim.gif.height),
                                    tuple(anim.gif.reductions)))
    summary = JobResult(
        ts=tuple(float(t) for t in result.ts),
        distances=tuple(float(d) for d in result.distances),
        max_over_mean=float(result.max_over_mean),
        one_minus_gini=float(result.one_minus_gini),
        midpoint=int(result.midpoint),
        candidates=tuple(int(i) for i in result.candidates),
        segments=tuple(SegmentResult(int(s.index), int(s.first), int(s.last), int(s.midpoint),
                                     tuple(int(c) for c in s.candidates)) for s in result.segments),
        frame_count=len(frames),
        warnings=tuple(result.warnings),
        seconds=float(result.seconds),
        reconstruction=tuple(None if p is None else float(p) for p in result.reconstruction),
        format=output_format,
        animations=tuple(animations),  # in the order they are posted (MP4 first)
        mp4_error=anim.mp4_error,
        budget=budget,
        sheet_bytes=len(sheet),
        frame_size=(int(frames[0].size[0]), int(frames[0].size[1])),
        model=result.model,
        unet_evals=result.unet_evals,
    )
    if anim.mp4_error is not None:
        log.warning("no MP4 for this render, a GIF instead: %s", anim.mp4_error)
    return files, summary


#: Picture problems that name a file on the worker's disk (its copy of an upload), never shown to members.
SERVER_FILE_PROBLEMS = (Problem.MISSING, Problem.FOLDER, Problem.UNREADABLE)


def failure_reason(e: BaseException) -> str:
    """The failure to store for a render that raised ``e`` (``jobs.error``, see :func:`bot.jobs.failure`):
    the engine's typed refusals and the Store's keep their facts (a front words them in the job's language);
    a model that cannot be loaded (its message names paths: the operator reads it in the log), an
    out-of-memory error and anything else (which may carry paths or internals of the server) only their
    kind."""
    if isinstance(e, ModelLoadError):
        return failure(Failure.MODEL_LOAD)
    if isinstance(e, Invalid):
        return failure(Failure.INVALID, code=e.code, facts=e.facts)
    if isinstance(e, Refused):
        return failure(Failure.REFUSED, refusal=e.kind.value, values=e.values)
    if isinstance(e, PictureError) and e.kind not in SERVER_FILE_PROBLEMS:
        return failure(Failure.PICTURE, kind=str(getattr(e.kind, "value", e.kind)), what=e.what, facts=e.facts)
    if isinstance(e, PictureError):  # names the worker's own files: the log has it
        return failure(Failure.RENDERER)
    if isinstance(e, MorphError):
        return failure(Failure.ENGINE, message=str(e))
    if is_out_of_memory(e):
        return failure(Failure.OUT_OF_MEMORY)
    return failure(Failure.RENDERER)


def free_gpu_memory() -> None:
    """Give the memory torch's CUDA allocator caches back after a failed render (if torch is loaded)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        try:
            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001  # pragma: no cover - best effort
            pass

"""An H.264 MP4 of the rendered frames that fits an upload limit: the video twin of :func:`morph.output.encode_gif`.

A GIF has 256 colours, so Stable Diffusion's smooth gradients get dithered and banded, and every frame is
compressed on its own. H.264 keeps full colour and codes what changes between frames, so the same frames
come out far smaller and closer to the rendered PNGs (bench/RESULTS.md, "GIF vs MP4"). What Discord plays
inline on desktop, web and mobile: H.264 (High profile) in an MP4 with the index at the front
(``+faststart``), 4:2:0 chroma (yuv420p), even width and height, colours converted and tagged as BT.709.

The encoder is FFmpeg's libx264 through PyAV (``av`` on PyPI), whose wheels bundle FFmpeg: no system ffmpeg.
If PyAV or its H.264 encoder is missing, or FFmpeg fails, :class:`VideoUnavailable` says why, and the caller
sends a GIF instead (:func:`morph.animation.encode_animation` does that and notes it).

Fitting the budget, best first (:func:`encode_mp4`):

1. constant quality (x264 CRF ``DEFAULT_CRF``, near transparent): most morphs fit with room to spare, and a
   generous upload limit is not filled with bits nobody can see;
2. otherwise a target bitrate (budget × 8 / length, a little under), measured and corrected: the bitrate is
   scaled by how much the last encode missed, up to ``BITRATE_TRIES`` encodes;
3. when that bitrate would leave fewer than ``MIN_BITS_PER_PIXEL`` bits per pixel of each frame (blocky), the
   picture is made smaller first, on the GIF's size ladder. The frame count is never reduced.
"""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction

from PIL import Image

from morph.output import boomerang_frames, even_size, human_size, size_reduction, size_scales
from morph.request import Invalid, MorphError, Notice

CODEC = "libx264"
DEFAULT_CRF = 18  # x264's scale: 0 lossless, 23 its default, ~18 "visually lossless"
PRESET = "medium"
#: Below this many bits per pixel of each frame a smaller picture looks better than a starved full-size one.
MIN_BITS_PER_PIXEL = 0.05
BITRATE_TRIES = 4
#: Below this x264 refuses to start or gives up on the picture.
MIN_BITRATE = 8_000
SAFETY = 0.95  # aim a little under the budget: the first bitrate guess ignores the container


class VideoUnavailable(RuntimeError):
    """MP4 encoding cannot run here: PyAV is not installed, its FFmpeg has no H.264 encoder, or FFmpeg failed.
    ``str(err)`` says which, in a sentence; the caller falls back to GIF."""


@dataclass
class VideoResult:
    """An encoded MP4 and what fitting it to the budget took."""

    data: bytes
    width: int
    height: int
    frame_count: int  # frames in the file (boomerang included)
    duration_ms: int  # how long each frame is shown
    bitrate: int | None = None  # bits/s the encoder was held to; None: constant quality (CRF) fitted
    reductions: list[Notice] = field(default_factory=list)  # e.g. size 512→384
    encodes: int = 0


def available() -> str | None:
    """None when MP4s can be encoded here, else the reason (as :class:`VideoUnavailable` would say it)."""
    try:
        _codec()
    except VideoUnavailable as err:
        return str(err)
    return None


def encode_mp4(frames: list[Image.Image], budget_bytes: int, duration_ms: int = 100,
               boomerang: bool = False, crf: int | None = DEFAULT_CRF) -> VideoResult:
    """Encode ``frames`` as an H.264 MP4 of at most ``budget_bytes`` bytes (see the module docstring).

    Each frame shows ``duration_ms``; ``boomerang`` plays them forward then backward (the end frames are not
    shown twice), as the GIF does. ``crf`` None skips the constant-quality try and fills the budget by bitrate
    (the benchmark's "MP4 as large as the GIF"). Raises :class:`VideoUnavailable` when MP4 cannot be encoded here, and
    MorphError when even the smallest picture at the lowest sensible bitrate is over the budget.
    """
    if not frames:
        raise MorphError("no frames to encode")
    if budget_bytes <= 0:
        raise MorphError(f"the MP4 budget must be positive (got {budget_bytes} bytes)")
    av = _codec()
    frames = [f.convert("RGB") for f in frames]
    width, height = frames[0].size
    frames = [f if f.size == (width, height) else f.resize((width, height)) for f in frames]
    if boomerang:
        frames = boomerang_frames(frames)
    seconds = len(frames) * duration_ms / 1000
    encodes = 0

    def encode(size: tuple[int, int], **rate) -> bytes:
        nonlocal encodes
        encodes += 1
        return _encode(av, frames, size, duration_ms, **rate)

    full = even_size(width, height, 1.0)
    if crf is not None:
        data = encode(full, crf=crf)
        if len(data) <= budget_bytes:
            return _result(data, full, len(frames), duration_ms, None, [], encodes)

    scales = size_scales(width, height)
    target = budget_bytes * SAFETY
    for scale in scales:
        size = even_size(width, height, scale)
        bitrate = int(target * 8 / seconds)
        last = scale == scales[-1]
        if bitrate < MIN_BITS_PER_PIXEL * size[0] * size[1] * 1000 / duration_ms and not last:
            continue  # too few bits for this size: try a smaller picture
        if last:
            bitrate = max(bitrate, MIN_BITRATE)  # measure the smallest setting at least once
        tried: list[tuple[int, int]] = []  # (bitrate, bytes) of the encodes at this size
        while len(tried) < BITRATE_TRIES and bitrate >= MIN_BITRATE:
            data = encode(size, bitrate=bitrate)
            if len(data) <= budget_bytes:
                reductions = [Notice("reduced_bitrate", {"kbits": round(bitrate / 1000)})]
                if size != full:
                    reductions.insert(0, size_reduction(full, size))
                return _result(data, size, len(frames), duration_ms, bitrate, reductions, encodes)
            tried.append((bitrate, len(data)))
            bitrate = _next_bitrate(tried, target)
    raise Invalid("mp4_too_big", budget=human_size(budget_bytes), width=size[0], height=size[1],
                  kbits=round(tried[-1][0] / 1000), size=human_size(min(b for _, b in tried)))


def _next_bitrate(tried: list[tuple[int, int]], target: float) -> int:
    """The bitrate to try after ``tried`` (all over the budget): on the line through the last two encodes
    (x264 misses short clips' targets by a near-fixed amount: the first frame, the container), else scaled
    by how much the last one missed. Always lower than the last."""
    (b1, s1) = tried[-1]
    guess = b1 * target / s1
    if len(tried) >= 2:
        (b0, s0) = tried[-2]
        if s0 != s1 and (s0 - s1) * (b0 - b1) > 0:  # size grows with bitrate, as it should
            guess = b1 + (target - s1) * (b0 - b1) / (s0 - s1)
    return int(min(guess, b1 * 0.9))


def decode_mp4(data: bytes) -> list[Image.Image]:
    """Every frame of an MP4 as RGB images (colours converted back as the file's tag says), in order."""
    av = _codec()
    with av.open(io.BytesIO(data)) as container:
        # Convert as the file is tagged (ours: BT.709); older PyAV converts with BT.601 unless told.
        return [frame.reformat(format="rgb24", src_colorspace="ITU709" if frame.colorspace == 1 else None).to_image()
                for frame in container.decode(video=0)]


def probe_mp4(data: bytes) -> dict:
    """What a player sees: codec, profile, pixel format, width, height, frames, frame rate, colour space."""
    av = _codec()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        return {"codec": ctx.name, "profile": stream.profile, "pix_fmt": ctx.pix_fmt, "width": ctx.width,
                "height": ctx.height, "frames": stream.frames, "rate": stream.average_rate,
                "colorspace": ctx.colorspace, "format": container.format.name}


def _result(data, size, count, duration_ms, bitrate, reductions, encodes) -> VideoResult:
    return VideoResult(data=data, width=size[0], height=size[1], frame_count=count, duration_ms=duration_ms,
                       bitrate=bitrate, reductions=reductions, encodes=encodes)


def _codec():
    """The ``av`` module, once it is known to have an H.264 encoder; else VideoUnavailable."""
    try:
        import av
    except ImportError as err:
        raise VideoUnavailable(f"MP4 needs PyAV, which is not installed here ({err}); pip install av") from None
    if CODEC not in av.codecs_available:
        raise VideoUnavailable(f"this PyAV's FFmpeg has no H.264 encoder ({CODEC})")
    return av


def _encode(av, frames: list[Image.Image], size: tuple[int, int], duration_ms: int, crf: int | None = None,
            bitrate: int | None = None) -> bytes:
    """One encode at ``size`` with constant quality ``crf`` or average ``bitrate`` (bits/s)."""
    with tempfile.TemporaryDirectory(prefix="morph-mp4-") as folder:
        # A file, not BytesIO: +faststart moves the index to the front by reading the written file back.
        path = os.path.join(folder, "out.mp4")
        try:
            with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
                stream = container.add_stream(CODEC, rate=Fraction(1000, duration_ms))
                stream.width, stream.height = size
                stream.pix_fmt = "yuv420p"
                ctx = stream.codec_context
                ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1  # BT.709, as the frames are converted
                ctx.color_range = 1  # limited ("TV") range, what players expect
                options = {"preset": PRESET}  # x264 makes 8-bit 4:2:0 High profile by itself
                if bitrate is None:
                    options["crf"] = str(crf)
                else:
                    stream.bit_rate = int(bitrate)
                stream.options = options
                for image in frames:
                    if image.size != size:
                        image = image.resize(size, Image.Resampling.LANCZOS)
                    frame = av.VideoFrame.from_image(image).reformat(format="yuv420p", dst_colorspace="ITU709")
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
        except av.error.FFmpegError as err:
            raise VideoUnavailable(f"FFmpeg could not encode the MP4: {err}") from err
        with open(path, "rb") as f:
            return f.read()

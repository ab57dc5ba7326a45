"""Pictures people upload, read as a careful bot would: the one place an uploaded or given picture is checked
and turned into what the model sees.

Taken: PNG, JPEG, WebP and GIF (its first frame; an animated WebP likewise), recognised by their content,
never by the file name. Refused with a :class:`PictureError` (a :class:`~morph.request.MorphError`) and
nothing else done: any other type, a file over :data:`MAX_BYTES`, a picture
over :data:`MAX_SIDE` pixels on a side (read from the header, before anything is decoded; Pillow's
decompression-bomb guard stays on as a second fence), a picture under :data:`MIN_SIDE`, and a broken or
truncated file.

A refusal is typed: :attr:`PictureError.kind` (a :class:`Problem`) and :attr:`PictureError.facts` say what is
wrong, for a caller that words it itself (the bot, in the member's language); ``str(err)`` is the engine's
own English (the command line's message).

:func:`prepare` then applies the EXIF orientation (a phone's portrait photo stands upright), flattens
transparency onto white, and centre-crops and resizes to the model's square size. Pillow only: the bot
checks an upload here before it queues anything, without loading the engine.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from morph.request import MorphError

#: Largest upload, in bytes (10 MiB).
MAX_BYTES = 10 * 1024 * 1024
#: Largest width or height, in pixels.
MAX_SIDE = 4096
#: Smallest width or height, in pixels: below this there is nothing for the model to keep.
MIN_SIDE = 16
#: Pillow's names of the formats taken (the only decoders Pillow may try on an upload).
FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
#: What people call them, for messages.
FORMAT_NAMES = "PNG, JPEG, WebP or GIF"
#: The colour transparency is flattened onto.
BACKGROUND = (255, 255, 255)


class Problem(str, Enum):
    """Why a picture is refused (the facts each kind carries, besides ``what``)."""

    MISSING = "missing"              # path
    FOLDER = "folder"                # path
    UNREADABLE = "unreadable"        # path, reason
    EMPTY = "empty"
    OVER_BYTES = "over_bytes"        # limit_mib; size_mib where the size is known before reading
    NOT_A_PICTURE = "not_a_picture"  # formats (FORMAT_NAMES); content_type where judged from a reported type
    DAMAGED = "damaged"
    OVER_PIXELS = "over_pixels"      # limit (MAX_SIDE); width, height where read from the header
    UNDER_PIXELS = "under_pixels"    # limit (MIN_SIDE), width, height


_ENGLISH: dict[str, str] = {
    Problem.MISSING: "the {what} '{path}' does not exist.",
    Problem.FOLDER: "the {what} '{path}' is a folder; give a picture file.",
    Problem.UNREADABLE: "cannot read the {what} '{path}': {reason}.",
    Problem.EMPTY: "the {what} is an empty file.",
    Problem.OVER_BYTES: "the {what} is over {limit_mib:g} MiB; use a smaller file.",
    Problem.NOT_A_PICTURE: "the {what} is not a {formats} picture (judged by its content, not its name); "
                           "use one of those.",
    Problem.DAMAGED: "the {what} is damaged and cannot be read; try it again or save it anew.",
    Problem.OVER_PIXELS: "the {what} is too large: at most {limit}×{limit} pixels.",
    Problem.UNDER_PIXELS: "the {what} is only {width}×{height} pixels; give one at least {limit}×{limit}.",
}


class PictureError(MorphError):
    """A picture that cannot be used: ``kind`` (a :class:`Problem`, or a caller's own kind such as the bot's
    download problems) and ``facts`` say why, ``what`` names the picture ("first picture"); ``str(err)`` is the
    engine's English sentence for its own kinds (a summary of the kind and facts for others)."""

    def __init__(self, kind: str, what: str = "picture", /, **facts: Any) -> None:
        self.kind = kind
        self.what = what
        self.facts = facts
        template = _ENGLISH.get(kind)
        if template is not None and kind == Problem.OVER_PIXELS and "width" in facts:
            template = "the {what} is {width}×{height} pixels; the limit is {limit}×{limit}. Use a smaller picture."
        summary = ", ".join(f"{k}={v!r}" for k, v in facts.items())
        super().__init__(template.format(what=what, **facts) if template is not None
                         else f"the {what}: {getattr(kind, 'value', kind)}" + (f" ({summary})" if summary else ""))


@dataclass(frozen=True)
class PictureInfo:
    """What :func:`check` found: Pillow's format name, width and height (after the EXIF orientation)."""

    format: str
    width: int
    height: int


def read_file(path: str | os.PathLike, what: str = "picture") -> bytes:
    """The bytes of the picture file ``path``, refused when missing or over :data:`MAX_BYTES` (read at most
    one byte past the limit)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise PictureError(Problem.MISSING, what, path=str(path)) from None
    except IsADirectoryError:
        raise PictureError(Problem.FOLDER, what, path=str(path)) from None
    except OSError as err:
        raise PictureError(Problem.UNREADABLE, what, path=str(path), reason=str(err.strerror or err)) from None
    _check_length(len(data), what)
    return data


def check(data: bytes, what: str = "picture") -> PictureInfo:
    """Check ``data`` is a usable picture (see the module); return its format and size. Decodes it fully,
    so a broken file is refused here, not halfway through a render."""
    image, fmt = _open(data, what)
    with image:
        image = _decoded_first_frame(image, what)
        oriented = ImageOps.exif_transpose(image)
        return PictureInfo(fmt, oriented.width, oriented.height)


def prepare(data: bytes, size: int, what: str = "picture") -> Image.Image:
    """``data`` as the model sees it: RGB, upright (EXIF orientation), transparency flattened onto white,
    centre-cropped to a square and resized to ``size``×``size``. Raises PictureError as :func:`check`."""
    image, _ = _open(data, what)
    with image:
        frame = ImageOps.exif_transpose(_decoded_first_frame(image, what))
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        flat.alpha_composite(rgba)
        frame = flat
    if frame.mode == "I" or frame.mode.startswith("I;16"):  # 16-bit greyscale: scaled to 8 bits, not clipped
        frame = frame.convert("I").point(lambda v: v / 257).convert("L")
    rgb = frame.convert("RGB")
    return ImageOps.fit(rgb, (size, size), Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def load(path: str | os.PathLike, size: int, what: str = "picture") -> Image.Image:
    """:func:`prepare` of the file ``path``."""
    return prepare(read_file(path, what), size, what)


# ------------------------------------------------------------------------------------------------ pieces
def _check_length(length: int, what: str) -> None:
    if length > MAX_BYTES:
        raise PictureError(Problem.OVER_BYTES, what, limit_mib=MAX_BYTES / 2**20)
    if length == 0:
        raise PictureError(Problem.EMPTY, what)


def _open(data: bytes, what: str) -> tuple[Image.Image, str]:
    """Open (header only) with only the taken formats' decoders; refuse other types and oversized pictures
    before any pixel is decoded."""
    _check_length(len(data), what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        if _signed_as_taken(data):
            raise PictureError(Problem.DAMAGED, what) from None
        raise PictureError(Problem.NOT_A_PICTURE, what, formats=FORMAT_NAMES) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PictureError(Problem.OVER_PIXELS, what, limit=MAX_SIDE) from None
    except Exception:  # noqa: BLE001 — a decoder's header parser failing on a broken file
        raise PictureError(Problem.DAMAGED, what) from None
    width, height = image.size
    if width > MAX_SIDE or height > MAX_SIDE:
        image.close()
        raise PictureError(Problem.OVER_PIXELS, what, limit=MAX_SIDE, width=width, height=height)
    if width < MIN_SIDE or height < MIN_SIDE:
        image.close()
        raise PictureError(Problem.UNDER_PIXELS, what, limit=MIN_SIDE, width=width, height=height)
    return image, str(image.format)


def _signed_as_taken(data: bytes) -> bool:
    """Whether ``data`` starts as a taken format's file does (its magic bytes): then it is broken, not foreign."""
    return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")) or (
        data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _decoded_first_frame(image: Image.Image, what: str) -> Image.Image:
    """The first frame, fully decoded (a GIF's or animated WebP's later frames are not read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.seek(0)
            image.load()
            frame = image.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PictureError(Problem.OVER_PIXELS, what, limit=MAX_SIDE) from None
    except Exception:  # noqa: BLE001 — truncated data, bad CRC, corrupt stream: any decoder error
        raise PictureError(Problem.DAMAGED, what) from None
    return frame

"""Pictures people upload, read as a careful bot would: the one place an uploaded or given picture is checked
and turned into what the model sees.

Taken: PNG, JPEG, WebP and GIF (its first frame; an animated WebP likewise), recognised by their content,
never by the file name. Refused with a :class:`PictureError` (a :class:`~morph.request.MorphError`, so its
text is the message to show) and nothing else done: any other type, a file over :data:`MAX_BYTES`, a picture
over :data:`MAX_SIDE` pixels on a side (read from the header, before anything is decoded; Pillow's
decompression-bomb guard stays on as a second fence), a picture under :data:`MIN_SIDE`, and a broken or
truncated file.

:func:`prepare` then applies the EXIF orientation (a phone's portrait photo stands upright), flattens
transparency onto white, and centre-crops and resizes to the model's square size. Pillow only: the bot
checks an upload here before it queues anything, without loading the engine.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

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


class PictureError(MorphError):
    """A picture that cannot be used; ``str(err)`` says why and what to do."""


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
        raise PictureError(f"the {what} '{path}' does not exist.") from None
    except IsADirectoryError:
        raise PictureError(f"the {what} '{path}' is a folder; give a picture file.") from None
    except OSError as err:
        raise PictureError(f"cannot read the {what} '{path}': {err.strerror or err}.") from None
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
        raise PictureError(f"the {what} is over {MAX_BYTES // (1024 * 1024)} MiB; use a smaller file.")
    if length == 0:
        raise PictureError(f"the {what} is an empty file.")


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
            raise PictureError(f"the {what} is damaged and cannot be read; try it again or save it anew.") from None
        raise PictureError(f"the {what} is not a {FORMAT_NAMES} picture (judged by its content, not its name); "
                           "use one of those.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PictureError(f"the {what} is too large: at most {MAX_SIDE}×{MAX_SIDE} pixels.") from None
    except Exception:  # noqa: BLE001 — a decoder's header parser failing on a broken file
        raise PictureError(f"the {what} is damaged and cannot be read; try it again or save it anew.") from None
    width, height = image.size
    if width > MAX_SIDE or height > MAX_SIDE:
        image.close()
        raise PictureError(f"the {what} is {width}×{height} pixels; the limit is {MAX_SIDE}×{MAX_SIDE}. "
                           "Use a smaller picture.")
    if width < MIN_SIDE or height < MIN_SIDE:
        image.close()
        raise PictureError(f"the {what} is only {width}×{height} pixels; give one at least {MIN_SIDE}×{MIN_SIDE}.")
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
        raise PictureError(f"the {what} is too large: at most {MAX_SIDE}×{MAX_SIDE} pixels.") from None
    except Exception:  # noqa: BLE001 — truncated data, bad CRC, corrupt stream: any decoder error
        raise PictureError(f"the {what} is damaged and cannot be read; try it again or save it anew.") from None
    return frame

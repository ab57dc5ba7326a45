"""The pictures members attach to ``/morph-images``: fetched from Discord, checked, handed to the queue.

:func:`fetch_pictures` is what runs between the command and the queue, inside the command's 3-second answer
(:func:`bot.interactions.deferring` shows "thinking…" when it takes longer; the database's limit of
:func:`bot.interactions.in_time` is not this one's, so each download has its full :data:`DOWNLOAD_TIMEOUT_S`):

1. what Discord reports of each attachment in the interaction is checked first, and a refusal downloads
   nothing (:func:`check_reported`): its size (over :data:`MAX_BYTES`), its content type (a type that is no
   picture at all, such as ``text/plain`` or ``video/mp4``; a type Discord does not know is left to the
   content check) and its width and height (over :data:`morph.images.MAX_SIDE` or under ``MIN_SIDE``);
2. the file is downloaded from the attachment's URL (Discord's CDN; the fake Discord's loopback in tests)
   with a total timeout of :data:`DOWNLOAD_TIMEOUT_S` and reading at most :data:`MAX_BYTES` + 1 bytes,
   whatever the server claims;
3. :func:`morph.images.check` judges it by content (type, pixel size with the decompression-bomb guard, a
   broken file), in a thread;
4. :data:`SafetyCheck`: the uploads are passed to the bot's image safety check before anything is queued
   (the default, :func:`allow_all`, lets everything through; ``ImagesCog(safety=...)`` puts the real one
   in). A refusal is a clear private message, and nothing is queued.

The bytes are then stored with the job (:mod:`bot.store.uploads`) and only the worker that renders it reads
them again.

Every refusal is a :class:`~morph.images.PictureError` with a kind (:class:`morph.images.Problem`, or a
:class:`Fetch` problem of the download) and facts; :func:`bot.messages.picture_text` words it in the member's
language.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum

import aiohttp
import discord

from morph import images
from morph.images import PictureError, Problem
from morph.request import MorphError

#: Largest picture taken, in bytes (the engine's limit: 10 MiB).
MAX_BYTES = images.MAX_BYTES
#: How long one download may take in all.
DOWNLOAD_TIMEOUT_S = 20.0
_CHUNK = 64 * 1024

#: ``await check(pictures, age_restricted)``: the refusal to show (one sentence) or None to go on.
#: ``pictures``: each upload's bytes (already known to be a picture); ``age_restricted``: the channel is
#: marked age-restricted (NSFW), where a server may allow more.
SafetyCheck = Callable[[Sequence[bytes], bool], Awaitable[str | None]]


class Fetch(str, Enum):
    """Why a download failed (the facts each kind carries, besides the picture's ``what``)."""

    NO_URL = "no_url"
    HTTP = "http"                    # status
    TIMEOUT = "timeout"              # seconds
    NETWORK = "network"              # error (the exception's class name)


#: Content types Discord may report for a file it does not recognise: judged by the content instead.
_UNKNOWN_TYPES = ("", "application/octet-stream", "binary/octet-stream")


def check_reported(attachment: discord.Attachment, what: str, *, max_bytes: int = MAX_BYTES) -> None:
    """Refuse ``attachment`` from what Discord reports of it (size, content type, width and height), before
    anything is downloaded. What Discord does not report is left to the checks of the real bytes."""
    if attachment.size > max_bytes:
        raise PictureError(Problem.OVER_BYTES, what, limit_mib=max_bytes / 2**20,
                           size_mib=round(attachment.size / 2**20, 1))
    content_type = (getattr(attachment, "content_type", None) or "").split(";")[0].strip().lower()
    if content_type not in _UNKNOWN_TYPES and not content_type.startswith("image/"):
        raise PictureError(Problem.NOT_A_PICTURE, what, formats=images.FORMAT_NAMES, content_type=content_type)
    width, height = getattr(attachment, "width", None), getattr(attachment, "height", None)
    if width is not None and height is not None:
        if width > images.MAX_SIDE or height > images.MAX_SIDE:
            raise PictureError(Problem.OVER_PIXELS, what, limit=images.MAX_SIDE, width=width, height=height)
        if width < images.MIN_SIDE or height < images.MIN_SIDE:
            raise PictureError(Problem.UNDER_PIXELS, what, limit=images.MIN_SIDE, width=width, height=height)


async def allow_all(pictures: Sequence[bytes], age_restricted: bool) -> str | None:
    """The safety check used when the bot is given none: every picture passes."""
    return None


async def download(attachment: discord.Attachment, what: str, *, max_bytes: int = MAX_BYTES,
                   timeout_s: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The bytes of ``attachment`` (``what``: "first picture"), refused with a PictureError when what Discord
    reports of it is refused (:func:`check_reported`), the download fails or takes too long, or more than
    ``max_bytes`` arrive."""
    check_reported(attachment, what, max_bytes=max_bytes)
    url = attachment.url
    if not url.startswith(("https://", "http://")):
        raise PictureError(Fetch.NO_URL, what)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.get(url) as response:
                if response.status != 200:
                    raise PictureError(Fetch.HTTP, what, status=response.status)
                data = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    data += chunk
                    if len(data) > max_bytes:
                        raise PictureError(Problem.OVER_BYTES, what, limit_mib=max_bytes / 2**20)
    except asyncio.TimeoutError:
        raise PictureError(Fetch.TIMEOUT, what, seconds=timeout_s) from None
    except aiohttp.ClientError as err:
        raise PictureError(Fetch.NETWORK, what, error=type(err).__name__) from None
    return bytes(data)


async def fetch_pictures(attachments: dict[int, discord.Attachment], *, age_restricted: bool,
                         safety: SafetyCheck = allow_all, max_bytes: int = MAX_BYTES,
                         timeout_s: float = DOWNLOAD_TIMEOUT_S) -> dict[int, bytes]:
    """Download and check the attachments by end (0 first, 1 second; see the module). Returns their bytes by
    end; raises PictureError (or MorphError from the safety check's refusal) naming the first problem."""
    names = {slot: f"{('first', 'second')[slot]} picture" for slot in attachments}
    for slot, attachment in attachments.items():  # both judged by Discord's report before either downloads
        check_reported(attachment, names[slot], max_bytes=max_bytes)
    data = dict(zip(attachments, await asyncio.gather(*(
        download(a, names[slot], max_bytes=max_bytes, timeout_s=timeout_s) for slot, a in attachments.items())),
        strict=True))
    for slot, content in data.items():
        await asyncio.to_thread(images.check, content, names[slot])
    refusal = await safety(list(data.values()), age_restricted)
    if refusal:
        raise MorphError(refusal)
    return data

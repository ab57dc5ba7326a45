"""The pictures members attach to ``/morph-images``: fetched from Discord, checked, handed to the queue.

:func:`fetch_pictures` is what runs between the command and the queue, inside the command's 3-second answer
(:func:`bot.interactions.deferring` shows "thinking…" when it takes longer; the database's limit of
:func:`bot.interactions.in_time` is not this one's, so each download has its full :data:`DOWNLOAD_TIMEOUT_S`):

1. each attachment's size as Discord reports it is checked first (over :data:`MAX_BYTES`: refused without
   downloading anything);
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
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import discord

from morph import images
from morph.images import PictureError

#: Largest picture taken, in bytes (the engine's limit: 10 MiB).
MAX_BYTES = images.MAX_BYTES
#: How long one download may take in all.
DOWNLOAD_TIMEOUT_S = 20.0
_CHUNK = 64 * 1024

#: ``await check(pictures, age_restricted)``: the refusal to show (one sentence) or None to go on.
#: ``pictures``: each upload's bytes (already known to be a picture); ``age_restricted``: the channel is
#: marked age-restricted (NSFW), where a server may allow more.
SafetyCheck = Callable[[Sequence[bytes], bool], Awaitable[str | None]]


async def allow_all(pictures: Sequence[bytes], age_restricted: bool) -> str | None:
    """The safety check used when the bot is given none: every picture passes."""
    return None


async def download(attachment: discord.Attachment, what: str, *, max_bytes: int = MAX_BYTES,
                   timeout_s: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The bytes of ``attachment`` (``what``: "first picture"), refused with a PictureError when Discord says
    it is too big, the download fails or takes too long, or more than ``max_bytes`` arrive."""
    limit_mib = f"{max_bytes / 2**20:g} MiB"
    if attachment.size > max_bytes:
        raise PictureError(f"the {what} is {attachment.size / 2**20:.1f} MiB; the limit is {limit_mib}.")
    url = attachment.url
    if not url.startswith(("https://", "http://")):
        raise PictureError(f"the {what} has no address to download it from; attach it again.")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.get(url) as response:
                if response.status != 200:
                    raise PictureError(f"could not download the {what} from Discord (HTTP {response.status}); "
                                       "attach it again.")
                data = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    data += chunk
                    if len(data) > max_bytes:
                        raise PictureError(f"the {what} is over {limit_mib}; the limit is {limit_mib}.")
    except asyncio.TimeoutError:
        raise PictureError(f"the {what} took longer than {timeout_s:g} s to download; try again.") from None
    except aiohttp.ClientError as err:
        raise PictureError(f"could not download the {what} from Discord ({type(err).__name__}); "
                           "try again.") from None
    return bytes(data)


async def fetch_pictures(attachments: dict[int, discord.Attachment], *, age_restricted: bool,
                         safety: SafetyCheck = allow_all, max_bytes: int = MAX_BYTES,
                         timeout_s: float = DOWNLOAD_TIMEOUT_S) -> dict[int, bytes]:
    """Download and check the attachments by end (0 first, 1 second; see the module). Returns their bytes by
    end; raises PictureError (or MorphError from the safety check's refusal) naming the first problem."""
    names = {slot: f"{('first', 'second')[slot]} picture" for slot in attachments}
    data = dict(zip(attachments, await asyncio.gather(*(
        download(a, names[slot], max_bytes=max_bytes, timeout_s=timeout_s) for slot, a in attachments.items())),
        strict=True))
    for slot, content in data.items():
        await asyncio.to_thread(images.check, content, names[slot])
    refusal = await safety(list(data.values()), age_restricted)
    if refusal:
        raise PictureError(refusal)
    return data

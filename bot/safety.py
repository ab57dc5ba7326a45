"""Content safety policy: what of a checked render may be shown where it goes.

The worker checks every frame (:class:`morph.safety.SafetyChecker`) before it writes any file meant for
Discord, then :func:`decide` says what happens, by where the result goes:

* **unfiltered**: the job's channel is age-restricted (Discord's ``nsfw`` flag; a thread follows its parent,
  recorded at ``/morph`` time as ``Job.channel_nsfw``) *and* the server allows it (``/morphadmin limits
  nsfw:allow``, default off): everything is posted as rendered;
* **withheld whole**: the midpoint frame, every midpoint candidate, or more than half the frames are flagged: nothing
  is posted; the job ends ``withheld`` with no files, its public status message says only "withheld by the
  safety filter", and the author is told privately (:meth:`bot.delivery.Delivery.show_withheld`);
* **uploads** (``/morph-images``): each picture is checked before its job is queued (:func:`upload_check`);
  a flagged one is refused privately and nothing is queued, unless the result would be unfiltered anyway;
* **partly withheld**: the flagged frames (a flagged candidate too) are replaced by :func:`placeholder` in the
  MP4, the GIF, the contact sheet and the frame PNGs, cannot be picked or refined (their buttons and menu
  entries are left out), and the result says how many.

The outcome is stored in the job's own ``safety`` column (:class:`bot.result.SafetyOutcome`, typed and
versioned like the job's result). ``MORPH_SAFETY=off`` loads no checker; then ``/morph`` works in
age-restricted channels only (:func:`refusal`) and the worker refuses a job for any other channel.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from bot.i18n import N_, text
from bot.jobs import Refusal, Refused
from bot.result import SafetyOutcome

if TYPE_CHECKING:  # pragma: no cover
    from bot.config import Settings

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- texts shown to users
# Here rather than in bot/messages.py: the worker and the store show them, and neither may import discord.py.
# Refusals are typed (:class:`bot.jobs.Refusal`: SAFETY_OFF, PROMPT_BLOCKED, WITHHELD_FRAME…) and worded in
# :func:`bot.messages.refusal_text`; the texts here go through the catalogue like every other (bot.i18n).
#: A job for an ordinary channel that reached a worker with the check off (queued before it was turned off);
#: translated where it is shown (:func:`bot.messages.failed_text`).
SAFETY_OFF_FAILURE = N_("the bot's image safety check is turned off; morphs work only in age-restricted channels "
                        "now.")


def withheld_frames_note(count: int, frame_count: int, locale: object = None) -> str:
    """The line a result gets when some of its frames were replaced by placeholders (in ``locale``'s language)."""
    tr = text(locale)
    return tr.ngettext("🛡️ {count} of {total} frame withheld by the safety filter (shown as grey placeholders; "
                       "they cannot be picked or refined).",
                       "🛡️ {count} of {total} frames withheld by the safety filter (shown as grey placeholders; "
                       "they cannot be picked or refined).", count, total=tr.number(frame_count))


#: The placeholder's look: flat grey with darker stripes and a label; nothing of the frame is kept.
PLACEHOLDER_GREY = (96, 96, 96)
PLACEHOLDER_STRIPE = (72, 72, 72)


def decide(flags: list[bool], candidates: list[int], midpoint: int | None = None, *, unfiltered: bool,
           seconds: float = 0.0) -> SafetyOutcome:
    """The outcome for a render whose frames the checker answered ``flags`` for (see the module docstring):
    withheld whole when the midpoint frame, every midpoint candidate, or more than half of the frames are
    flagged; else the flagged frames alone (a flagged candidate too: its place on the sheet is a placeholder)."""
    flagged = tuple(i for i, f in enumerate(flags) if f)
    out = SafetyOutcome(checked=True, flagged=flagged, unfiltered=unfiltered, frame_count=len(flags),
                        seconds=float(seconds))
    if unfiltered or not flagged:
        return out
    shown = [c for c in candidates if 0 <= c < len(flags)]
    whole = bool((midpoint is not None and 0 <= midpoint < len(flags) and flags[midpoint])
                 or (shown and all(flags[c] for c in shown)) or len(flagged) * 2 > len(flags))
    return replace(out, withheld=flagged, whole=whole)


def placeholder(size: tuple[int, int], label: str = "withheld"):
    """A plainly marked stand-in for a withheld frame, ``size`` pixels: grey, striped, labelled. It is drawn
    from nothing of the frame (not even a blur of it), so no byte of a flagged picture is ever posted."""
    from PIL import Image, ImageDraw

    w, h = size
    im = Image.new("RGB", (w, h), PLACEHOLDER_GREY)
    d = ImageDraw.Draw(im)
    step = max(6, min(w, h) // 8)
    for x in range(-h, w, step):
        d.line([(x, h), (x + h, 0)], fill=PLACEHOLDER_STRIPE, width=max(1, step // 3))
    box = d.textbbox((0, 0), label)
    tw, th = box[2] - box[0], box[3] - box[1]
    if tw + 4 <= w:
        x0, y0 = (w - tw) // 2, (h - th) // 2
        d.rectangle([x0 - 2, y0 - 2, x0 + tw + 2, y0 + th + 3], fill=(20, 20, 20))
        d.text((x0, y0 - box[1]), label, fill=(240, 240, 240))
    return im


def apply(frames: list, outcome: SafetyOutcome) -> list:
    """``frames`` with every withheld one replaced by its placeholder (the list is copied)."""
    out = list(frames)
    for i in outcome.withheld:
        out[i] = placeholder(out[i].size)
    return out


def withheld_frames(outcome: SafetyOutcome | None) -> set[int]:
    """The frames of a job (its ``safety``) that may not be picked or refined."""
    return set(outcome.withheld) if outcome is not None else set()


def check_blocklist(request, blocklist) -> None:
    """Raise :class:`Refused` (``PROMPT_BLOCKED``) when a prompt or the negative prompt of ``request`` (already
    checked by :func:`bot.validation.check_request`) contains an entry of the operator's ``MORPH_BLOCKLIST``, matched by
    the very function the servers' banned words use (:func:`bot.validation.contains_banned`)."""
    from bot.validation import contains_banned
    from morph.request import PROMPT_NAMES

    if not blocklist:
        return
    for i, prompt in enumerate(request.prompts):
        if contains_banned(prompt, blocklist):
            raise Refused(Refusal.PROMPT_BLOCKED, what=PROMPT_NAMES[i])
    if request.negative and contains_banned(request.negative, blocklist):
        raise Refused(Refusal.PROMPT_BLOCKED, what="negative prompt")


def channel_is_nsfw(channel) -> bool:
    """Whether Discord marks ``channel`` age-restricted: its ``nsfw`` flag; a thread has none of its own and
    follows its parent channel (an unknown parent counts as not restricted). Anything else (a DM, a channel
    discord.py could not resolve) is not."""
    if channel is None:
        return False
    if getattr(channel, "parent_id", None) is not None:  # a thread (discord.py's Thread)
        parent = getattr(channel, "parent", None)
        return bool(parent is not None and getattr(parent, "nsfw", False))
    return bool(getattr(channel, "nsfw", False))


def withheld_note(outcome: SafetyOutcome | None, locale: object = None) -> str | None:
    """The result message's line about withheld frames, or None when none were."""
    if outcome is None or not outcome.withheld:
        return None
    return withheld_frames_note(len(outcome.withheld), outcome.frame_count, locale)


def refusal(*, safety_on: bool, channel_nsfw: bool) -> Refused | None:
    """Why ``/morph`` (or a 🔁/🔍 job) may not start in this channel, or None. With ``MORPH_SAFETY=off``
    nothing is checked, so only age-restricted channels may get results."""
    if not safety_on and not channel_nsfw:
        return Refused(Refusal.SAFETY_OFF)
    return None


#: The side of the square an upload is checked at: the picture as the model sees it (centre-cropped,
#: :func:`morph.images.prepare`), large enough for the checker's own resizing.
UPLOAD_CHECK_SIZE = 512
#: What each end's picture is called in a refusal (:class:`Refusal` ``UPLOAD_FLAGGED``).
PICTURE_NAMES = ("first picture", "second picture")


def upload_check(settings: Settings) -> Callable[[Sequence[bytes], bool], Awaitable[str | None]]:
    """The check every ``/morph-images`` upload passes before its job is queued (``ImagesCog(safety=...)``,
    :data:`bot.uploads.SafetyCheck`): the image safety checker (:func:`morph.safety.check_images`, in a
    thread) on each picture as the model will see it. A flagged picture is refused (``UPLOAD_FLAGGED``,
    nothing queued); a checker that cannot be loaded refuses every upload (``SAFETY_UNAVAILABLE``).

    Its second argument says whether the result may be posted unfiltered (an age-restricted channel of a
    server that allows it: the cog decides): then nothing is checked, as for the frames. With
    ``MORPH_SAFETY=off`` nothing is checked either (the queue then takes age-restricted channels only)."""

    async def check(pictures: Sequence[bytes], unfiltered: bool) -> str | None:
        if not settings.safety or unfiltered:
            return None
        try:
            flags = await asyncio.to_thread(_check_uploads, list(pictures), settings)
        except Exception:
            log.exception("the image safety check of %d upload(s) could not run", len(pictures))
            raise Refused(Refusal.SAFETY_UNAVAILABLE) from None
        for slot, flagged in enumerate(flags):
            if flagged:
                log.info("an upload (%s) was flagged by the image safety check; nothing queued", PICTURE_NAMES[slot])
                raise Refused(Refusal.UPLOAD_FLAGGED, what=PICTURE_NAMES[slot])
        return None

    return check


def _check_uploads(pictures: list[bytes], settings: Settings) -> list[bool]:
    from morph import images
    from morph.safety import DEFAULT_CHECKER, check_images

    shown = [images.prepare(data, UPLOAD_CHECK_SIZE, PICTURE_NAMES[slot]) for slot, data in enumerate(pictures)]
    return check_images(shown, settings.model, settings.safety_checker or DEFAULT_CHECKER,
                        explicit=settings.safety_checker is not None)

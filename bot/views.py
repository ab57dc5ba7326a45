"""Buttons and the select menu, as ``discord.ui.DynamicItem`` so they work after a restart.

Every component carries its state in its ``custom_id`` (job number, the job's random token, frame index);
the rest comes from the database. The classes are registered once with ``bot.add_dynamic_items(*DYNAMIC_ITEMS)``.

Custom ids (``<job>`` is ``<number>-<token>``; results posted before tokens existed carry the number alone):

=============================  ================================================================
``morph:pick:<job>:<frame>``   button 1..K on a result: reply with that frame (0-based index)
``morph:frames:<job>``         select on a result: reply with the chosen frame (value = index)
``morph:refine:<job>``         🔍 select on a result: more frames between two neighbouring frames (value =
                               the first frame's index), queued for the clicker, posted as a reply
``morph:reroll:<job>``         same prompts, new random seed, queued for the clicker
``morph:delete:<job>``         delete the result message (author, guild admin or bot owner)
``morph:cancel:<job>``         cancel a queued/running job (button on the status message)
=============================  ================================================================

A component acts only when it comes from its job's own message, guild and channel with the job's token
(:meth:`bot.store.Job.came_from`): job numbers start at 1 again in a new database, and anyone can send any
custom id. The interaction-level actions (start a job, send a pick, cancel) live here too, so the slash
commands in ``bot/cogs`` and the components share one implementation.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import io
import logging
import random
import re
from typing import TYPE_CHECKING, Awaitable, Callable, TypeVar

import discord

from bot import messages as msg
from bot.jobs import DEFAULT_UPLOAD_LIMIT
from bot.permissions import can_manage_job
from morph.request import SEED_MAX, MorphError, RenderRequest

if TYPE_CHECKING:  # pragma: no cover
    from bot.bot import MorphBot
    from bot.jobs import Job

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_PINGS = discord.AllowedMentions.none()
#: Discord fails an interaction that is not answered within 3 s. Work that takes longer than this (a
#: database locked by another process) first answers "thinking…" and fills the answer in afterwards.
DEFER_AFTER_S = 1.5
#: Discord's error code for a second answer to one interaction. After a lost answer (applied, but the
#: reply was a 5xx) discord.py retries and gets it: the first answer stands.
ALREADY_ACKNOWLEDGED = 40060

_JOB = r"(?P<job>[0-9]+)(?:-(?P<token>[0-9a-f]{8}))?"
PICK_RE = rf"morph:pick:{_JOB}:(?P<frame>[0-9]+)"
FRAMES_RE = rf"morph:frames:{_JOB}"
REFINE_RE = rf"morph:refine:{_JOB}"
REROLL_RE = rf"morph:reroll:{_JOB}"
DELETE_RE = rf"morph:delete:{_JOB}"
CANCEL_RE = rf"morph:cancel:{_JOB}"


def _ref(job_id: int, token: str | None) -> str:
    return f"{int(job_id)}-{token}" if token else str(int(job_id))


def pick_id(job_id: int, frame: int, token: str | None = None) -> str:
    return f"morph:pick:{_ref(job_id, token)}:{int(frame)}"


def frames_id(job_id: int, token: str | None = None) -> str:
    return f"morph:frames:{_ref(job_id, token)}"


def refine_id(job_id: int, token: str | None = None) -> str:
    return f"morph:refine:{_ref(job_id, token)}"


def reroll_id(job_id: int, token: str | None = None) -> str:
    return f"morph:reroll:{_ref(job_id, token)}"


def delete_id(job_id: int, token: str | None = None) -> str:
    return f"morph:delete:{_ref(job_id, token)}"


def cancel_id(job_id: int, token: str | None = None) -> str:
    return f"morph:cancel:{_ref(job_id, token)}"


# ---------------------------------------------------------------------------------------------- helpers

def upload_limit_for(interaction: discord.Interaction) -> int:
    """Bytes the bot may attach in this channel: the interaction's attachment limit, capped by the
    guild's upload limit when the guild is cached; 10 MiB when neither is known."""
    limits = [v for v in (getattr(interaction, "filesize_limit", None),
                          interaction.guild.filesize_limit if interaction.guild else None) if v]
    return min(limits) if limits else DEFAULT_UPLOAD_LIMIT


def owner_ids(bot) -> frozenset[int]:
    return frozenset(getattr(bot, "owner_id_set", None) or getattr(bot.settings, "owner_ids", ()) or ())


async def reply(interaction: discord.Interaction, text: str, *, private: bool = False,
                file: discord.File | None = None, view: discord.ui.View | None = None) -> int | None:
    """Answer ``interaction`` (publicly, or only for the user with ``private``); return the message id
    when Discord tells it.

    Also after :func:`in_time` answered "thinking…": a public answer replaces that message, a private one
    removes it first (it must not stay behind for everyone).
    """
    text = msg.clip(text)
    extra = {k: v for k, v in (("file", file), ("view", view)) if v is not None}
    response = interaction.response
    if not response.is_done():
        sent = await response.send_message(text, ephemeral=private, allowed_mentions=NO_PINGS, **extra)
        return getattr(sent, "message_id", None)
    if response.type == discord.InteractionResponseType.deferred_channel_message:
        if not private:
            edited = await interaction.edit_original_response(
                content=text, attachments=[file] if file else discord.utils.MISSING, allowed_mentions=NO_PINGS,
                **({"view": view} if view is not None else {}))
            return edited.id
        await interaction.delete_original_response()
    sent = await interaction.followup.send(text, ephemeral=private, allowed_mentions=NO_PINGS, wait=True, **extra)
    return sent.id


async def ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Reply privately (or follow up privately if this interaction was already answered)."""
    await reply(interaction, text, private=True)


async def in_time(interaction: discord.Interaction, work: Awaitable[T]) -> T:
    """Await ``work``; if it takes longer than :data:`DEFER_AFTER_S`, answer "thinking…" meanwhile, so
    the interaction outlives Discord's 3 s window whatever the database does. Answer with :func:`reply`."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=DEFER_AFTER_S)
    if not done and not interaction.response.is_done():
        try:
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as err:  # too late already: the answer after the work will fail too
            log.warning("could not defer interaction %s: %s", interaction.id, err)
    return await task


async def own_job(interaction: discord.Interaction, job_id: int, token: str | None, *,
                  message: str = "result") -> "Job":
    """The job a component names, if the component really is one of that job's (see the module
    docstring); else :class:`~bot.store.Refused` "There is no morph #N." (as for an unknown number)."""
    from bot.jobs import Refused

    job = await interaction.client.store.get(job_id)  # type: ignore[attr-defined]
    origin = interaction.message.id if interaction.message is not None else None
    if job is None or not job.came_from(guild_id=interaction.guild_id, channel_id=interaction.channel_id,
                                        message_id=origin, token=token, message=message):
        raise Refused(f"There is no morph #{job_id}.")
    return job


def cancel_view(job: "Job") -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id, job.token))
    return view


def offered_candidates(request: RenderRequest) -> int:
    """Candidates per segment (``RenderRequest.candidates``) so that a result offers at most nine in all: the
    1️⃣..9️⃣ reactions and two rows of buttons. A plain morph or a refine offers 5, a chain of 2 segments 4
    each, of 3 segments 3 each, of 4 segments 2 each."""
    segments = len(request.knots()) - 1
    return max(1, min(RenderRequest.candidates, len(msg.KEYCAPS) // segments))


def result_view(job: "Job") -> discord.ui.View:
    """Rows 0–1: candidate buttons 1..K (≤ 9; a chain's labels name their segment, and with two segments each
    has its own row); row 2: frame select; row 3: 🔍 refine select (the gaps between neighbouring frames;
    ≤ 25 options each); row 4: reroll and delete. Discord's five rows."""
    result = job.result or {}
    frame_count, candidates, ts = int(result.get("frame_count") or 0), list(result.get("candidates") or []), result.get("ts")
    view = discord.ui.View(timeout=None)
    for frame, label, row in candidate_buttons(job.request, result)[: len(msg.KEYCAPS)]:
        view.add_item(PickButton(job.id, job.token, frame, label=label, row=row))
    frames = msg.choose_select_frames(frame_count, candidates)
    if frames:
        view.add_item(FramesSelect(job.id, job.token, [
            discord.SelectOption(label=msg.frame_label(f, frame_count, ts, candidates), value=str(f))
            for f in frames], row=2))
    gaps = msg.choose_select_frames(len(ts) - 1, candidates) if ts and len(ts) == frame_count else []
    if gaps:
        view.add_item(RefineSelect(job.id, job.token, [
            discord.SelectOption(label=msg.gap_label(g, ts), value=str(g)) for g in gaps], row=3))
    view.add_item(RerollButton(job.id, job.token, row=4))
    view.add_item(DeleteButton(job.id, job.token, row=4))
    return view


def candidate_buttons(request: RenderRequest, result: dict) -> list[tuple[int, str, int]]:
    """``(frame, label, row)`` of each candidate button, in number order. A plain morph: labels 1..K, five per row. A
    chain: ``4 · cat→bird`` (which segment the candidate is from), and one row per segment when there are
    two (each offers at most five)."""
    candidates = list(result.get("candidates") or [])
    parts = msg.candidate_parts(request, result)
    if len(parts) <= 1:
        return [(frame, str(n + 1), n // 5) for n, frame in enumerate(candidates)]
    out = []
    for part, (index, first, last) in enumerate(parts):
        for n in range(first, last + 1):
            label = f"{n} · {msg.short_segment(request, index)}"
            out.append((candidates[n - 1], label, part if len(parts) == 2 else (n - 1) // 5))
    return out


# ---------------------------------------------------------------------------------------------- actions

async def start_job(interaction: discord.Interaction, request: RenderRequest, *, boomerang: bool = False,
                    output_format: str | None = None, refines: "Job | None" = None,
                    note: str = "") -> "Job | None":
    """Validate, enqueue for ``interaction.user`` and answer publicly with job id, position and ❌ Cancel.

    ``output_format`` None: the server's default. ``refines``: the job whose result this 🔍 refine was asked
    on (its result message is ``interaction.message``): the new result is posted as a reply to it.

    ``Store.enqueue`` validates the request (``check_request`` with the guild's banned words and frame cap)
    and enforces bans, channel allow-list, per-user/guild/bot limits and the cooldown. Errors are answered
    ephemerally and enqueue nothing. A job whose answer Discord refused is withdrawn (the user saw
    "interaction failed"). Returns the Job or None.
    """
    bot: MorphBot = interaction.client  # type: ignore[assignment]
    store = bot.store
    if interaction.guild_id is None:
        await ephemeral(interaction, "❌ Morphs run in servers, not in direct messages.")
        return None

    reply_to = None
    if refines is not None:
        reply_to = interaction.message.id if interaction.message is not None else refines.result_message_id

    async def enqueue():
        job = await store.enqueue(guild_id=interaction.guild_id, channel_id=interaction.channel_id,
                                  user_id=interaction.user.id, request=request,
                                  upload_limit=upload_limit_for(interaction),
                                  interaction_token=interaction.token,
                                  application_id=interaction.application_id, boomerang=boomerang,
                                  output_format=output_format,
                                  parent_id=refines.id if refines is not None else None,
                                  reply_to_message_id=reply_to)
        return job, await store.position(job.id), await store.is_paused(job.guild_id)

    try:
        job, position, paused = await in_time(interaction, enqueue())
    except MorphError as err:
        await ephemeral(interaction, f"❌ {err}")
        return None
    request = job.request
    base = msg.queued_text(job.id, request, interaction.user.id, position, paused)
    text = msg.clip(base + "\n" + note) if note else base
    try:
        message_id = await reply(interaction, text, view=cancel_view(job))
    except discord.HTTPException as err:
        if err.code != ALREADY_ACKNOWLEDGED:
            # The user never saw an answer (e.g. the 3 s window passed): take the job back out of the queue.
            log.exception("could not answer /morph for job %s; withdrawing it", job.id)
            await store.withdraw(job.id)
            raise
        # Our answer was applied but its reply was lost; discord.py's retry then hit "already acknowledged".
        log.warning("the answer to /morph for job %s was already applied (40060); keeping the job", job.id)
        message_id = None
    if message_id is None:
        try:
            message_id = (await interaction.original_response()).id
        except discord.HTTPException as err:  # the job stands; its result is posted without a status message
            log.warning("could not read the /morph answer of job %s: %s", job.id, err)
            return job
    await store.set_status_message(job.id, message_id)
    delivery = getattr(bot, "delivery", None)
    if delivery is not None:
        delivery.remember_status(job, message_id, base)
        delivery.queue_changed()
        delivery.wake()  # a fast render may be waiting for this answer before it is posted
    log.info("job %s queued by %s in guild %s (position %s)", job.id, interaction.user.id,
             interaction.guild_id, position)
    return job


async def send_pick(interaction: discord.Interaction, job_id: int, token: str | None, frame: int,
                    source: str = "button") -> None:
    """Reply publicly with the full-size PNG of ``frame`` (0-based) of the job, naming who picked it.

    ``Store.pick`` records the pick and refuses unknown/expired/deleted jobs, frames out of range, banned
    users and picks in quick succession; a repeat of one's own pick is answered privately.
    """
    bot: MorphBot = interaction.client  # type: ignore[assignment]

    async def pick():
        job = await own_job(interaction, job_id, token)
        return job, await bot.store.pick(job.id, user_id=interaction.user.id, frame=frame, source=source)

    try:
        job, picked = await in_time(interaction, pick())
    except MorphError as err:
        await ephemeral(interaction, f"❌ {err}")
        return
    await reply(interaction, pick_text(job, frame, interaction.user.id), private=picked.repeat,
                file=frame_file(job.id, frame, picked.data))


def pick_text(job, frame: int, picker_id: int) -> str:
    result = job.result or {}
    candidates = list(result.get("candidates") or [])
    candidate = candidates.index(frame) + 1 if frame in candidates else None
    return msg.pick_text(job.id, frame, result.get("frame_count"), picker_id, candidate)


def frame_file(job_id: int, frame: int, data: bytes) -> discord.File:
    return discord.File(io.BytesIO(data), filename=f"morph-{job_id}-frame-{frame + 1:03d}.png")


async def cancel_job(interaction: discord.Interaction, job_id: int, *, token: str | None = None,
                     from_button: bool = False) -> None:
    """Cancel ``job_id`` for its author, an admin of its guild, or a bot owner; update its status message.
    ``from_button``: the ❌ button on the job's status message (which must be that job's, see :func:`own_job`)."""
    bot: MorphBot = interaction.client  # type: ignore[assignment]
    try:
        job = await (own_job(interaction, job_id, token, message="status") if from_button
                     else bot.store.get(job_id))
    except MorphError as err:
        await ephemeral(interaction, f"❌ {err}")
        return
    if job is None:
        await ephemeral(interaction, f"❌ There is no morph #{job_id}.")
        return
    owners = owner_ids(bot)
    if not can_manage_job(user_id=interaction.user.id, job_user_id=job.user_id, job_guild_id=job.guild_id,
                          permissions=interaction.permissions, owner_ids=owners,
                          caller_guild_id=interaction.guild_id):
        await ephemeral(interaction, f"❌ Only the author of job #{job_id} or a server admin can cancel it.")
        return
    is_owner = interaction.user.id in owners
    try:
        job = await bot.store.cancel(job_id, actor_id=interaction.user.id,
                                     admin=interaction.user.id != job.user_id,
                                     guild_id=None if is_owner else interaction.guild_id)
    except MorphError as err:
        await ephemeral(interaction, f"❌ {err}")
        return
    worker = getattr(bot, "worker", None)
    if worker is not None:
        worker.request_cancel(job_id)
    text = msg.cancelled_text(job_id, interaction.user.id)
    delivery = getattr(bot, "delivery", None)
    if (from_button and interaction.message is not None and interaction.message.id == job.status_message_id
            and not interaction.response.is_done()):
        if delivery is not None:  # no pending progress edit may overwrite the answer below
            delivery.editor.finalize(interaction.message.id)
        await interaction.response.edit_message(content=text, view=None, allowed_mentions=NO_PINGS)
    else:
        await ephemeral(interaction, f"🚫 Cancelled morph job #{job_id}.")
        if delivery is not None:
            await delivery.show_cancelled(job, interaction.user.id)
    if delivery is not None:
        delivery.forget_status(job_id)
        delivery.queue_changed()
    log.info("job %s cancelled by %s", job_id, interaction.user.id)


# ---------------------------------------------------------------------------------------------- items

def _guarded(callback):
    """Component callbacks: an unexpected error is logged and the clicker gets an apology, not
    Discord's bare "This interaction failed"."""
    @functools.wraps(callback)
    async def run(self, interaction: discord.Interaction) -> None:
        try:
            await callback(self, interaction)
        except Exception:  # noqa: BLE001
            log.exception("%s failed for %s", getattr(self, "custom_id", "?"), interaction.user.id)
            try:
                await ephemeral(interaction, "❌ Something went wrong on the bot's side; it has been logged.")
            except discord.HTTPException:
                pass

    return run


def _job_ref(match: re.Match[str]) -> tuple[int, str | None]:
    return int(match["job"]), match["token"]


async def first_to_answer(interaction: discord.Interaction) -> bool:
    """True if this process is the one to answer ``interaction``: every gateway session of a shard gets
    every interaction (two fronts on one shard, a resume replaying events), and only the first front to
    record it in the database answers (``Store.claim_interaction``); the others stay silent.

    A database that takes longer than :data:`DEFER_AFTER_S` (locked by another process) gets the
    interaction deferred meanwhile, as :func:`in_time` does, so Discord's 3 s are kept."""
    claim = asyncio.ensure_future(interaction.client.store.claim_interaction(interaction.id))  # type: ignore[attr-defined]
    done, _ = await asyncio.wait({claim}, timeout=DEFER_AFTER_S)
    if not done and interaction.type != discord.InteractionType.autocomplete and not interaction.response.is_done():
        try:
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as err:
            log.warning("could not defer interaction %s: %s", interaction.id, err)
    return await claim


class _JobItem:
    """What every component of a job shares: only the first front to record an interaction answers it."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await first_to_answer(interaction)


class PickButton(_JobItem, discord.ui.DynamicItem[discord.ui.Button], template=PICK_RE):
    def __init__(self, job_id: int, token: str | None, frame: int, *, label: str | None = None,
                 row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label=label or str(frame + 1), style=discord.ButtonStyle.primary,
                                           custom_id=pick_id(job_id, frame, token)), row=row)
        self.job_id, self.token, self.frame = job_id, token, frame

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(*_job_ref(match), int(match["frame"]), label=getattr(item, "label", None))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await send_pick(interaction, self.job_id, self.token, self.frame)


class _JobSelect(_JobItem):
    """A select menu of a job's result (one option per frame or gap): its options come back from the clicked
    message after a restart. Subclasses name their ``make_id`` (custom id) and ``placeholder``."""

    make_id: Callable[[int, str | None], str]
    placeholder: str

    def __init__(self, job_id: int, token: str | None, options: list[discord.SelectOption] | None = None, *,
                 row: int | None = None) -> None:
        options = (options or [discord.SelectOption(label="frame 1", value="0")])[: msg.SELECT_LIMIT]
        super().__init__(discord.ui.Select(custom_id=type(self).make_id(job_id, token), placeholder=self.placeholder,
                                           min_values=1, max_values=1, options=options), row=row)
        self.job_id, self.token = job_id, token

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(*_job_ref(match), list(getattr(item, "options", None) or []) or None)

    def chosen(self, interaction: discord.Interaction) -> int | None:
        """The chosen option's value (a frame index), or None when the interaction carries no number."""
        values = (interaction.data or {}).get("values") or self.item.values
        try:
            return int(values[0])
        except (IndexError, TypeError, ValueError):
            return None


class FramesSelect(_JobSelect, discord.ui.DynamicItem[discord.ui.Select], template=FRAMES_RE):
    make_id = staticmethod(frames_id)
    placeholder = "Pick any frame…"

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        frame = self.chosen(interaction)
        if frame is None:
            await ephemeral(interaction, "❌ Choose a frame from the menu.")
            return
        await send_pick(interaction, self.job_id, self.token, frame, source="select")


class RefineSelect(_JobSelect, discord.ui.DynamicItem[discord.ui.Select], template=REFINE_RE):
    """🔍 Refine: the chosen gap (value = index of its first frame) is rendered again with more frames
    (``MORPH_DEFAULT_FRAMES``, at most the server's cap) over exactly the path between the two frames, with the
    same prompts, seed and settings: the new job's first and last frames are those two frames. Queued for
    the clicker under the limits and bans of /morph; its result replies to this result."""

    make_id = staticmethod(refine_id)
    placeholder = "🔍 Refine: more frames between two neighbours…"

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        gap = self.chosen(interaction)
        if gap is None:
            await ephemeral(interaction, "❌ Choose two neighbouring frames from the menu.")
            return
        try:
            job = await own_job(interaction, self.job_id, self.token)
            cap = (await bot.store.get_limits(job.guild_id)).max_frames
        except MorphError as err:
            await ephemeral(interaction, f"❌ {err}")
            return
        ts = list((job.result or {}).get("ts") or [])
        if not 0 <= gap < len(ts) - 1:
            await ephemeral(interaction, f"❌ Morph #{job.id} has no frames {gap + 1} and {gap + 2} to refine between.")
            return
        request = job.request.refine(ts[gap], ts[gap + 1], min(bot.settings.default_frames, cap))
        request.candidates = offered_candidates(request)
        note = (f"🔍 Refine of job #{job.id}: {request.frames} frames from its frame {gap + 1} to frame {gap + 2}; "
                "the result comes as a reply to it.")
        await start_job(interaction, request, boomerang=job.boomerang, output_format=job.format, refines=job,
                        note=note)


class RerollButton(_JobItem, discord.ui.DynamicItem[discord.ui.Button], template=REROLL_RE):
    def __init__(self, job_id: int, token: str | None, *, row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label="Reroll", emoji="🔁", style=discord.ButtonStyle.secondary,
                                           custom_id=reroll_id(job_id, token)), row=row)
        self.job_id, self.token = job_id, token

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(*_job_ref(match))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            job = await own_job(interaction, self.job_id, self.token)
            cap = (await interaction.client.store.get_limits(job.guild_id)).max_frames
        except MorphError as err:
            await ephemeral(interaction, f"❌ {err}")
            return
        request = dataclasses.replace(job.request, seed=random.randint(0, SEED_MAX), seed_b=None,
                                      frames=min(job.request.frames, cap))
        note = f"🔁 Reroll of job #{self.job_id} with seed {request.seed}."
        if request.frames < job.request.frames:
            note += f" Frames lowered to this server's limit of {cap}."
        await start_job(interaction, request, boomerang=job.boomerang, output_format=job.format, note=note)


class DeleteButton(_JobItem, discord.ui.DynamicItem[discord.ui.Button], template=DELETE_RE):
    def __init__(self, job_id: int, token: str | None, *, row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label="Delete", emoji="❌", style=discord.ButtonStyle.danger,
                                           custom_id=delete_id(job_id, token)), row=row)
        self.job_id, self.token = job_id, token

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(*_job_ref(match))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        try:
            job = await own_job(interaction, self.job_id, self.token)
        except MorphError as err:
            await ephemeral(interaction, f"❌ {err}")
            return
        if not can_manage_job(user_id=interaction.user.id, job_user_id=job.user_id, job_guild_id=job.guild_id,
                              permissions=interaction.permissions, owner_ids=owner_ids(bot),
                              caller_guild_id=interaction.guild_id):
            await ephemeral(interaction, "❌ Only the author of this morph or a server admin can delete it.")
            return
        is_owner = interaction.user.id in owner_ids(bot)
        try:
            await bot.store.delete_result(self.job_id, actor_id=interaction.user.id,
                                          admin=interaction.user.id != job.user_id,
                                          guild_id=None if is_owner else interaction.guild_id)
        except MorphError as err:
            if job.deleted_at is None:  # "already deleted" is fine: remove the message anyway
                await ephemeral(interaction, f"❌ {err}")
                return
        await ephemeral(interaction, f"🗑️ Deleted the result of morph job #{self.job_id}.")
        if interaction.message is not None:
            try:
                await interaction.message.delete()
            except discord.NotFound:
                pass
            except discord.HTTPException as err:  # e.g. a result posted through the followup webhook
                log.warning("could not delete result message %s of job %s: %s", interaction.message.id,
                            self.job_id, err)
                await ephemeral(interaction, "The frames are deleted, but Discord did not let the bot remove "
                                             "the message; a server admin can delete it.")
        log.info("result of job %s deleted by %s", self.job_id, interaction.user.id)


class CancelButton(_JobItem, discord.ui.DynamicItem[discord.ui.Button], template=CANCEL_RE):
    def __init__(self, job_id: int, token: str | None, *, row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label="Cancel", emoji="❌", style=discord.ButtonStyle.secondary,
                                           custom_id=cancel_id(job_id, token)), row=row)
        self.job_id, self.token = job_id, token

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(*_job_ref(match))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await cancel_job(interaction, self.job_id, token=self.token, from_button=True)


DYNAMIC_ITEMS = (PickButton, FramesSelect, RefineSelect, RerollButton, DeleteButton, CancelButton)

"""Buttons and the select menu, as ``discord.ui.DynamicItem`` so they work after a restart.

Every component carries its state in its ``custom_id`` (job id, frame index); the rest comes from the
database. The classes are registered once with ``bot.add_dynamic_items(*DYNAMIC_ITEMS)``.

Custom ids:

=============================  ================================================================
``morph:pick:<job>:<frame>``   button 1..K on a result: reply with that frame (0-based index)
``morph:frames:<job>``         select on a result: reply with the chosen frame (value = index)
``morph:reroll:<job>``         same prompts, new random seed, queued for the clicker
``morph:delete:<job>``         delete the result message (author, guild admin or bot owner)
``morph:cancel:<job>``         cancel a queued/running job (button on the status message)
=============================  ================================================================

The interaction-level actions (start a job, send a pick, cancel) live here too, so the slash commands
in ``bot/cogs`` and the components share one implementation.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot import messages as msg
from bot.permissions import can_manage_job
from morph.request import SEED_MAX, MorphError, RenderRequest

if TYPE_CHECKING:  # pragma: no cover
    from bot.bot import MorphBot

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024

PICK_RE = r"morph:pick:(?P<job>[0-9]+):(?P<frame>[0-9]+)"
FRAMES_RE = r"morph:frames:(?P<job>[0-9]+)"
REROLL_RE = r"morph:reroll:(?P<job>[0-9]+)"
DELETE_RE = r"morph:delete:(?P<job>[0-9]+)"
CANCEL_RE = r"morph:cancel:(?P<job>[0-9]+)"
_ALL = {"pick": PICK_RE, "frames": FRAMES_RE, "reroll": REROLL_RE, "delete": DELETE_RE, "cancel": CANCEL_RE}


def pick_id(job_id: int, frame: int) -> str:
    return f"morph:pick:{int(job_id)}:{int(frame)}"


def frames_id(job_id: int) -> str:
    return f"morph:frames:{int(job_id)}"


def reroll_id(job_id: int) -> str:
    return f"morph:reroll:{int(job_id)}"


def delete_id(job_id: int) -> str:
    return f"morph:delete:{int(job_id)}"


def cancel_id(job_id: int) -> str:
    return f"morph:cancel:{int(job_id)}"


def parse_custom_id(custom_id: str) -> tuple[str, dict[str, int]] | None:
    """``"morph:pick:12:3"`` → ``("pick", {"job": 12, "frame": 3})``; None for anything else."""
    for kind, pattern in _ALL.items():
        m = re.fullmatch(pattern, custom_id or "")
        if m:
            return kind, {k: int(v) for k, v in m.groupdict().items()}
    return None


# ---------------------------------------------------------------------------------------------- helpers

def upload_limit_for(interaction: discord.Interaction) -> int:
    """Bytes the bot may attach in this channel: the interaction's attachment limit, capped by the
    guild's upload limit when the guild is cached; 10 MiB when neither is known."""
    limits = [v for v in (getattr(interaction, "filesize_limit", None),
                          interaction.guild.filesize_limit if interaction.guild else None) if v]
    return min(limits) if limits else DEFAULT_UPLOAD_LIMIT


def owner_ids(bot) -> frozenset[int]:
    return frozenset(getattr(bot, "owner_id_set", None) or getattr(bot.settings, "owner_ids", ()) or ())


async def ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Reply privately (or follow up privately if this interaction was already answered)."""
    text = msg.clip(text)
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


def cancel_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def result_view(job_id: int, frame_count: int, candidates: list[int], ts: list[float] | None = None
                ) -> discord.ui.View:
    """Rows 0–1: candidate buttons 1..K (≤ 9, five per row); row 2: frame select (≤ 25 options);
    row 3: reroll and delete. Four rows of Discord's five."""
    view = discord.ui.View(timeout=None)
    for n, frame in enumerate(candidates[: len(msg.KEYCAPS)]):
        view.add_item(PickButton(job_id, frame, label=str(n + 1), row=n // 5))
    frames = msg.choose_select_frames(frame_count, candidates)
    if frames:
        view.add_item(FramesSelect(job_id, [
            discord.SelectOption(label=msg.frame_label(f, frame_count, ts, candidates), value=str(f))
            for f in frames], row=2))
    view.add_item(RerollButton(job_id, row=3))
    view.add_item(DeleteButton(job_id, row=3))
    return view


# ---------------------------------------------------------------------------------------------- actions

async def start_job(interaction: discord.Interaction, request: RenderRequest, *, boomerang: bool = False,
                    note: str = "") -> object | None:
    """Validate, enqueue for ``interaction.user`` and answer publicly with job id, position and ❌ Cancel.

    ``Store.enqueue`` validates the request (``check_request`` with the guild's banned words and frame cap)
    and enforces bans, channel allow-list, per-user/guild limits and the cooldown. Errors are answered
    ephemerally and enqueue nothing. Returns the Job or None.
    """
    bot: MorphBot = interaction.client  # type: ignore[assignment]
    store = bot.store
    if interaction.guild_id is None:
        await ephemeral(interaction, "❌ Morphs run in servers, not in direct messages.")
        return None
    try:
        job = await store.enqueue(guild_id=interaction.guild_id, channel_id=interaction.channel_id,
                                  user_id=interaction.user.id, request=request,
                                  upload_limit=upload_limit_for(interaction),
                                  interaction_token=interaction.token,
                                  application_id=interaction.application_id, boomerang=boomerang)
    except MorphError as err:
        await ephemeral(interaction, f"❌ {err}")
        return None
    request = job.request
    position = await store.position(job.id)
    paused = await store.is_paused(interaction.guild_id)
    base = msg.queued_text(job.id, request.prompt_a, request.prompt_b, request.frames, interaction.user.id,
                           position, paused)
    text = msg.clip(base + "\n" + note) if note else base
    try:
        response = await interaction.response.send_message(text, view=cancel_view(job.id), allowed_mentions=NO_PINGS)
        message_id = getattr(response, "message_id", None)
        if message_id is None:
            message_id = (await interaction.original_response()).id
    except discord.HTTPException:
        # The user never saw an answer (e.g. the 3 s window passed): take the job back out of the queue.
        log.exception("could not answer /morph for job %s; withdrawing it", job.id)
        await store.withdraw(job.id)
        raise
    await store.set_status_message(job.id, message_id)
    delivery = getattr(bot, "delivery", None)
    if delivery is not None:
        delivery.remember_status(job, message_id, base)
        delivery.queue_changed()
        delivery.wake()  # a fast render may be waiting for this answer before it is posted
    worker = getattr(bot, "worker", None)
    if worker is not None:
        worker.wake()
    log.info("job %s queued by %s in guild %s (position %s)", job.id, interaction.user.id,
             interaction.guild_id, position)
    return job


async def send_pick(interaction: discord.Interaction, job_id: int, frame: int, source: str = "button") -> None:
    """Reply publicly with the full-size PNG of ``frame`` (0-based) of ``job_id``, naming who picked it.

    ``Store.pick`` records the pick and refuses unknown/expired/deleted jobs and frames out of range.
    """
    bot: MorphBot = interaction.client  # type: ignore[assignment]
    try:
        path = await bot.store.pick(job_id, user_id=interaction.user.id, frame=frame, source=source)
    except MorphError as err:
        await ephemeral(interaction, f"❌ {err}")
        return
    job = await bot.store.get(job_id)
    await interaction.response.send_message(
        pick_text(job, frame, interaction.user.id), file=frame_file(job_id, frame, path),
        allowed_mentions=NO_PINGS)


def pick_text(job, frame: int, picker_id: int) -> str:
    result = job.result or {}
    candidates = list(result.get("candidates") or [])
    candidate = candidates.index(frame) + 1 if frame in candidates else None
    return msg.pick_text(job.id, frame, result.get("frame_count"), picker_id, candidate)


def frame_file(job_id: int, frame: int, path: Path) -> discord.File:
    return discord.File(path, filename=f"morph-{job_id}-frame-{frame + 1:03d}.png")


async def cancel_job(interaction: discord.Interaction, job_id: int, *, from_button: bool = False) -> None:
    """Cancel ``job_id`` for its author, an admin of its guild, or a bot owner; update its status message."""
    bot: MorphBot = interaction.client  # type: ignore[assignment]
    job = await bot.store.get(job_id)
    if job is None:
        await ephemeral(interaction, f"❌ There is no morph job #{job_id}.")
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
    if from_button and interaction.message is not None and interaction.message.id == job.status_message_id:
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


class PickButton(discord.ui.DynamicItem[discord.ui.Button], template=PICK_RE):
    def __init__(self, job_id: int, frame: int, *, label: str | None = None, row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label=label or str(frame + 1), style=discord.ButtonStyle.primary,
                                           custom_id=pick_id(job_id, frame)), row=row)
        self.job_id, self.frame = job_id, frame

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(int(match["job"]), int(match["frame"]), label=getattr(item, "label", None))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await send_pick(interaction, self.job_id, self.frame)


class FramesSelect(discord.ui.DynamicItem[discord.ui.Select], template=FRAMES_RE):
    def __init__(self, job_id: int, options: list[discord.SelectOption] | None = None, *,
                 row: int | None = None) -> None:
        options = (options or [discord.SelectOption(label="frame", value="0")])[: msg.SELECT_LIMIT]
        super().__init__(discord.ui.Select(custom_id=frames_id(job_id), placeholder="Pick any frame…",
                                           min_values=1, max_values=1, options=options), row=row)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(int(match["job"]), list(getattr(item, "options", None) or []) or None)

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        values = (interaction.data or {}).get("values") or self.item.values
        try:
            frame = int(values[0])
        except (IndexError, TypeError, ValueError):
            await ephemeral(interaction, "❌ Choose a frame from the menu.")
            return
        await send_pick(interaction, self.job_id, frame, source="select")


class RerollButton(discord.ui.DynamicItem[discord.ui.Button], template=REROLL_RE):
    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label="Reroll", emoji="🔁", style=discord.ButtonStyle.secondary,
                                           custom_id=reroll_id(job_id)), row=row)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(int(match["job"]))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        job = await interaction.client.store.get(self.job_id)
        if job is None:
            await ephemeral(interaction, f"❌ Morph job #{self.job_id} no longer exists.")
            return
        request = dataclasses.replace(job.request, seed=random.randint(0, SEED_MAX), seed_b=None)
        await start_job(interaction, request, boomerang=job.boomerang,
                        note=f"🔁 Reroll of job #{self.job_id} with seed {request.seed}.")


class DeleteButton(discord.ui.DynamicItem[discord.ui.Button], template=DELETE_RE):
    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label="Delete", emoji="❌", style=discord.ButtonStyle.danger,
                                           custom_id=delete_id(job_id)), row=row)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(int(match["job"]))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        job = await bot.store.get(self.job_id)
        author = job.user_id if job is not None else None
        if not can_manage_job(user_id=interaction.user.id, job_user_id=author or 0,
                              job_guild_id=job.guild_id if job else interaction.guild_id,
                              permissions=interaction.permissions, owner_ids=owner_ids(bot),
                              caller_guild_id=interaction.guild_id):
            await ephemeral(interaction, "❌ Only the author of this morph or a server admin can delete it.")
            return
        is_owner = interaction.user.id in owner_ids(bot)
        if job is not None:
            try:
                await bot.store.delete_result(self.job_id, actor_id=interaction.user.id,
                                              admin=interaction.user.id != job.user_id,
                                              guild_id=None if is_owner else interaction.guild_id)
            except MorphError as err:
                if job.deleted_at is None:  # "already deleted" is fine: remove the message anyway
                    await ephemeral(interaction, f"❌ {err}")
                    return
        await interaction.response.send_message(f"🗑️ Deleted the result of morph job #{self.job_id}.",
                                                ephemeral=True, allowed_mentions=NO_PINGS)
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


class CancelButton(discord.ui.DynamicItem[discord.ui.Button], template=CANCEL_RE):
    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label="Cancel", emoji="❌", style=discord.ButtonStyle.secondary,
                                           custom_id=cancel_id(job_id)), row=row)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str], /):
        return cls(int(match["job"]))

    @_guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await cancel_job(interaction, self.job_id, from_button=True)


DYNAMIC_ITEMS = (PickButton, FramesSelect, RerollButton, DeleteButton, CancelButton)

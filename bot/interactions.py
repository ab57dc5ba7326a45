"""Answering a Discord interaction: in time (Discord's 3 s), publicly or privately, once per interaction.

Shared by the slash commands (``bot/cogs``), the components (``bot/views``) and the use cases
(``bot/actions``); knows nothing about jobs.

While the database is down, slow or locked, every interaction still gets an answer in time. The bound sits
at the one place every interaction enters the bot, :func:`first_to_answer` (the command tree's and the
components' ``interaction_check``, run first in the task that handles the interaction): it starts the
interaction's deadline (:func:`answer_in_time`). Whatever command or component runs next, and whichever of its
database calls hangs, an interaction still unanswered after :data:`ANSWER_LIMIT_S` has its handling cancelled
(nothing half done: its open transaction rolls back) and gets the private :data:`bot.messages.QUEUE_UNAVAILABLE`
(:func:`answer_unavailable`): nothing queued, nothing public. A database that fails at once
(:class:`~bot.db.DatabaseUnavailable`) gets the same answer from the command's error handler. Work known to
take longer answers "thinking…" first: :func:`in_time` (the database work of /morph and picks, bounded by
:data:`WORK_LIMIT_S`) and :func:`deferring` (a download with its own timeout). The outage is logged once.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import discord
from discord import app_commands

from bot import messages as msg
from bot.db import DatabaseUnavailable
from bot.i18n import text
from bot.jobs import DEFAULT_UPLOAD_LIMIT

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_PINGS = discord.AllowedMentions.none()
#: Discord fails an interaction that is not answered within 3 s. Work that takes longer than this (a
#: database locked by another process) first answers "thinking…" and fills the answer in afterwards.
DEFER_AFTER_S = 1.5
#: The longest an interaction may go unanswered (no answer, no "thinking…") before its handling is cancelled
#: and the member is told the queue is unavailable (:func:`answer_in_time`): Discord's 3 s also hold the trip
#: of the event here and of the answer back.
ANSWER_LIMIT_S = 2.0
#: The longest the work under :func:`in_time` waits for the database, deferred meanwhile.
WORK_LIMIT_S = 10.0
#: Discord's error code for a second answer to one interaction. After a lost answer (applied, but the
#: reply was a 5xx) discord.py retries and gets it: the first answer stands.
ALREADY_ACKNOWLEDGED = 40060
#: Keys of ``Interaction.extras``: the deadline's task, an answer on its way, the deadline passed.
_DEADLINE, _ANSWERING, _EXPIRED = "morph.deadline", "morph.answering", "morph.expired"


def upload_limit_for(interaction: discord.Interaction) -> int:
    """Bytes the bot may attach in this channel: the interaction's attachment limit, capped by the
    guild's upload limit when the guild is cached; 10 MiB when neither is known."""
    limits = [v for v in (getattr(interaction, "filesize_limit", None),
                          interaction.guild.filesize_limit if interaction.guild else None) if v]
    return min(limits) if limits else DEFAULT_UPLOAD_LIMIT


def guild_of(interaction: discord.Interaction) -> int:
    """The guild of a guild-only command's interaction (Discord sends none from a direct message)."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


async def reply(interaction: discord.Interaction, text: str, *, private: bool = False,
                file: discord.File | None = None, view: discord.ui.View | None = None) -> int | None:
    """Answer ``interaction`` (publicly, or only for the user with ``private``); return the message id
    when Discord tells it.

    Also after :func:`in_time` answered "thinking…": a public answer replaces that message, a private one
    removes it first (it must not stay behind for everyone).
    """
    text = msg.clip(text)
    interaction.extras[_ANSWERING] = True  # an answer is on its way: the deadline stands down
    extra: dict[str, Any] = {k: v for k, v in (("file", file), ("view", view)) if v is not None}
    response = interaction.response
    if not response.is_done():
        sent = await response.send_message(text, ephemeral=private, allowed_mentions=NO_PINGS, **extra)
        return getattr(sent, "message_id", None)
    if response.type == discord.InteractionResponseType.deferred_channel_message:
        if not private:
            edited = await interaction.edit_original_response(
                content=text, attachments=[file] if file else discord.utils.MISSING, allowed_mentions=NO_PINGS,
                view=view if view is not None else discord.utils.MISSING)
            return edited.id
        await interaction.delete_original_response()
    sent_message = await interaction.followup.send(text, ephemeral=private, allowed_mentions=NO_PINGS, wait=True,
                                                   **extra)
    return sent_message.id


async def ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Reply privately (or follow up privately if this interaction was already answered)."""
    await reply(interaction, text, private=True)


async def answer_unavailable(interaction: discord.Interaction) -> None:
    """Tell the member privately that the queue is unavailable for a moment (the database does not answer).
    Never raises: a second front that answered first (40060) or a lost answer changes nothing."""
    if interaction.type == discord.InteractionType.autocomplete:
        return
    try:
        await ephemeral(interaction, text(interaction.locale)._(msg.QUEUE_UNAVAILABLE))
    except discord.HTTPException as err:
        log.debug("could not tell interaction %s the queue is unavailable: %s", interaction.id, err)


async def _within(work: asyncio.Future[T], limit_s: float) -> T:
    """``await work``, or :class:`DatabaseUnavailable` once ``limit_s`` passed. The work is cancelled then but
    not waited for: its clean-up (a rollback on a connection that hangs) must not hold the answer back."""
    done, _ = await asyncio.wait({work}, timeout=limit_s)
    if not done:
        work.cancel()
        work.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved" log
        raise DatabaseUnavailable(f"the database did not answer within {limit_s:g} s")
    return work.result()


async def _defer_if_slow(interaction: discord.Interaction, work: asyncio.Future[T], after_s: float) -> None:
    """Wait for ``work`` at most ``after_s``; if it is not done by then, answer "thinking…"."""
    done, _ = await asyncio.wait({work}, timeout=max(0.0, after_s))
    if (not done and interaction.type != discord.InteractionType.autocomplete
            and not interaction.response.is_done()):
        try:
            interaction.extras[_ANSWERING] = True
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as err:  # too late already: the answer after the work will fail too
            log.warning("could not defer interaction %s: %s", interaction.id, err)


async def in_time(interaction: discord.Interaction, work: Awaitable[T], *,
                  defer_after_s: float = DEFER_AFTER_S) -> T:
    """Await ``work``; if it takes longer than ``defer_after_s`` (:data:`DEFER_AFTER_S`; less when other work
    of this interaction came first, see :func:`deferring`), answer "thinking…" meanwhile, so the interaction
    outlives Discord's 3 s window whatever the database does. Answer with :func:`reply`. Work that is still
    waiting for the database after :data:`WORK_LIMIT_S` raises :class:`DatabaseUnavailable` (the command's
    error handler answers :func:`answer_unavailable`)."""
    future = asyncio.ensure_future(work)
    await _defer_if_slow(interaction, future, defer_after_s)
    return await _within(future, WORK_LIMIT_S - max(0.0, defer_after_s))


async def deferring(interaction: discord.Interaction, work: Awaitable[T]) -> tuple[T, float]:
    """Await ``work`` that bounds its own time and is no database call (a download: :mod:`bot.uploads` has its
    timeout), answering "thinking…" once it takes longer than :data:`DEFER_AFTER_S`. Returns its result and
    what is left of :data:`DEFER_AFTER_S` for the database work after it (``in_time(defer_after_s=...)``)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    future = asyncio.ensure_future(work)
    await _defer_if_slow(interaction, future, DEFER_AFTER_S)
    result = await future
    return result, DEFER_AFTER_S - (loop.time() - began)


def answer_in_time(interaction: discord.Interaction, limit_s: float | None = None) -> None:
    """Start ``interaction``'s deadline over the task running now (the one that handles it): if after ``limit_s``
    (:data:`ANSWER_LIMIT_S`) it is neither answered nor deferred, nor on its way to be, nor left to another
    front (:func:`stand_down`), the task is cancelled and the member gets the private "unavailable for a
    moment" answer. Every interaction passes here (:func:`first_to_answer`), before any database call."""
    task = asyncio.current_task()
    if task is None or _DEADLINE in interaction.extras:
        return
    watch = asyncio.ensure_future(_watch(interaction, task, ANSWER_LIMIT_S if limit_s is None else limit_s))
    interaction.extras[_DEADLINE] = watch

    def handled(_: asyncio.Task) -> None:  # answered or not, the handling is over: nothing left to watch
        if not interaction.extras.get(_EXPIRED):  # (unless the deadline is answering right now)
            watch.cancel()

    task.add_done_callback(handled)


def stand_down(interaction: discord.Interaction) -> None:
    """This front does not answer ``interaction`` (another did, or it answered itself): no deadline for it."""
    watch = interaction.extras.get(_DEADLINE)
    if watch is not None:
        watch.cancel()


async def _watch(interaction: discord.Interaction, task: asyncio.Task, limit_s: float) -> None:
    await asyncio.sleep(limit_s)
    if task.done() or interaction.response.is_done() or interaction.extras.get(_ANSWERING):
        return
    interaction.extras[_EXPIRED] = True
    task.cancel()  # a transaction it holds rolls back: what it was doing did not happen
    store = getattr(interaction.client, "store", None)
    if store is not None:  # logged once per outage (a slow database raises nothing itself)
        store.db.availability.failed(DatabaseUnavailable(f"no answer within {limit_s:g} s"))
    await answer_unavailable(interaction)


async def first_to_answer(interaction: discord.Interaction) -> bool:
    """True if this process is the one to answer ``interaction``: every gateway session of a shard gets
    every interaction (two fronts on one shard, a resume replaying events), and only the first front to
    record it in the database answers (``Store.claim_interaction``); the others stay silent.

    The entry of every interaction (the command tree's and the components' ``interaction_check``): starts its
    deadline (:func:`answer_in_time`) first, so a database that does not record it (or answer any later call)
    in time (slow, locked by another process) gets the member the private "unavailable for a moment" answer;
    one that is down gets it at once, and False: the command or component does not run. (Every front of the
    shard may answer so; the first answer stands.)"""
    answer_in_time(interaction)
    store = interaction.client.store  # type: ignore[attr-defined]  # MorphBot's; this module knows no bot class
    try:
        first = await store.claim_interaction(interaction.id)
    except DatabaseUnavailable:
        stand_down(interaction)
        await answer_unavailable(interaction)
        return False
    if not first:
        stand_down(interaction)
    return first

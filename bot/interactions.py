"""Answering a Discord interaction: in time (Discord's 3 s), publicly or privately, once per interaction.

Shared by the slash commands (``bot/cogs``), the components (``bot/views``) and the use cases
(``bot/actions``); knows nothing about jobs.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import discord
from discord import app_commands

from bot import messages as msg
from bot.jobs import DEFAULT_UPLOAD_LIMIT

log = logging.getLogger(__name__)
T = TypeVar("T")

NO_PINGS = discord.AllowedMentions.none()
#: Discord fails an interaction that is not answered within 3 s. Work that takes longer than this (a
#: database locked by another process) first answers "thinking…" and fills the answer in afterwards.
DEFER_AFTER_S = 1.5
#: Discord's error code for a second answer to one interaction. After a lost answer (applied, but the
#: reply was a 5xx) discord.py retries and gets it: the first answer stands.
ALREADY_ACKNOWLEDGED = 40060


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


async def _defer_meanwhile(interaction: discord.Interaction, work: asyncio.Future[T]) -> T:
    """Await ``work``; if it takes longer than :data:`DEFER_AFTER_S`, answer "thinking…" meanwhile."""
    done, _ = await asyncio.wait({work}, timeout=DEFER_AFTER_S)
    if (not done and interaction.type != discord.InteractionType.autocomplete
            and not interaction.response.is_done()):
        try:
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as err:  # too late already: the answer after the work will fail too
            log.warning("could not defer interaction %s: %s", interaction.id, err)
    return await work


async def in_time(interaction: discord.Interaction, work: Awaitable[T]) -> T:
    """Await ``work``; if it takes longer than :data:`DEFER_AFTER_S`, answer "thinking…" meanwhile, so
    the interaction outlives Discord's 3 s window whatever the database does. Answer with :func:`reply`."""
    return await _defer_meanwhile(interaction, asyncio.ensure_future(work))


async def first_to_answer(interaction: discord.Interaction) -> bool:
    """True if this process is the one to answer ``interaction``: every gateway session of a shard gets
    every interaction (two fronts on one shard, a resume replaying events), and only the first front to
    record it in the database answers (``Store.claim_interaction``); the others stay silent.

    A database that takes longer than :data:`DEFER_AFTER_S` (locked by another process) gets the
    interaction deferred meanwhile, as :func:`in_time` does, so Discord's 3 s are kept."""
    store = interaction.client.store  # type: ignore[attr-defined]  # MorphBot's; this module knows no bot class
    return await _defer_meanwhile(interaction, asyncio.ensure_future(store.claim_interaction(interaction.id)))

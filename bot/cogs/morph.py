"""/morph (plain morphs and chains), /morph-cancel, /morph-queue and the 1️⃣..9️⃣ reactions on result messages."""
from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot import messages as msg
from bot.actions import Actions, offered_candidates
from bot.cogs.options import BOOMERANG_DESCRIPTION, FORMAT_CHOICES, FORMAT_DESCRIPTION, set_frames_bound
from bot.db import DatabaseUnavailable
from bot.i18n import text
from bot.interactions import ephemeral, guild_of
from morph.request import MAX_FRAMES, MIN_FRAMES, SEED_MAX, RenderRequest

if TYPE_CHECKING:  # pragma: no cover
    from bot.jobs import Job
    from bot.store import Limits

log = logging.getLogger(__name__)

class MorphCogStore(Protocol):
    """What /morph-cancel's choices, /morph-queue and leaving a server read of :class:`bot.store.Store`
    (the use cases go through :class:`~bot.actions.Actions`)."""

    async def get_limits(self, guild_id: int) -> Limits: ...

    async def is_paused(self, guild_id: int) -> bool: ...

    async def user_jobs(self, guild_id: int, user_id: int, states: Iterable[str] = ...) -> list[Job]: ...

    async def queued_positions(self) -> list[tuple[Job, int, bool]]: ...

    async def guild_left(self, guild_id: int, now: float | None = ...) -> list[Job]: ...


class MorphCog(commands.Cog):
    def __init__(self, bot: commands.Bot, actions: Actions, store: MorphCogStore) -> None:
        self.bot = bot
        self.actions = actions
        self.store = store
        self.settings = actions.settings
        # The frames option's upper bound is the bot's MORPH_MAX_FRAMES (Store.enqueue checks it again, with
        # a guild's own lower cap).
        set_frames_bound(self.morph, self.settings.max_frames, self.settings.default_frames)

    # ------------------------------------------------------------------ /morph
    # Every name, description and choice is a locale_str (see bot.cogs.options, which holds the options
    # /morph-images shares).
    @app_commands.command(name=locale_str("morph"),
                          description=locale_str("Morph one prompt into another (or through up to 4): an animation "
                                                 "and frames to pick from."))
    @app_commands.guild_only()
    @app_commands.rename(from_=locale_str("from"), to=locale_str("to"), then=locale_str("then"),
                         then2=locale_str("then2"), loop=locale_str("loop"), frames=locale_str("frames"),
                         seed=locale_str("seed"), negative=locale_str("negative"), boomerang=locale_str("boomerang"),
                         pacing=locale_str("pacing"), path=locale_str("path"),
                         output_format=locale_str("format"))
    @app_commands.describe(
        from_=locale_str("What the morph starts as, e.g. 'a dog'"),
        to=locale_str("What it turns into, e.g. 'a cat'"),
        then=locale_str("A third prompt the morph goes on to, e.g. 'a bird' (a chain)"),
        then2=locale_str("A fourth prompt, after 'then'"),
        loop=locale_str("Go on from the last prompt back to the first, so the animation loops (default: no)"),
        seed=locale_str("Starting noise: the same seed gives the same morph (default: random)"),
        negative=locale_str("What to avoid in every frame, e.g. 'blurry, text'"),
        boomerang=BOOMERANG_DESCRIPTION,
        pacing=locale_str("perceptual: evenly spaced changes (default); uniform: evenly spaced prompt mix"),
        path=locale_str("smooth: frames anchored to both ends (default); plain: each frame from its prompt mix alone"),
        output_format=FORMAT_DESCRIPTION,
    )  # frames: set_frames_bound
    @app_commands.choices(
        pacing=[app_commands.Choice(name=locale_str("perceptual (even visual steps)"), value="perceptual"),
                app_commands.Choice(name=locale_str("uniform (even prompt steps)"), value="uniform")],
        path=[app_commands.Choice(name=locale_str("smooth (anchored to both ends)"), value="smooth"),
              app_commands.Choice(name=locale_str("plain (each frame on its own)"), value="plain")],
        output_format=FORMAT_CHOICES)
    async def morph(self, interaction: discord.Interaction, from_: app_commands.Range[str, 1, 1000],
                    to: app_commands.Range[str, 1, 1000],
                    then: app_commands.Range[str, 1, 1000] | None = None,
                    then2: app_commands.Range[str, 1, 1000] | None = None, loop: bool = False,
                    frames: app_commands.Range[int, MIN_FRAMES, MAX_FRAMES] | None = None,
                    seed: app_commands.Range[int, 0, SEED_MAX] | None = None,
                    negative: app_commands.Range[str, 0, 1000] | None = None,
                    boomerang: bool = False, pacing: app_commands.Choice[str] | None = None,
                    path: app_commands.Choice[str] | None = None,
                    output_format: app_commands.Choice[str] | None = None) -> None:
        settings = self.settings
        if then2 is not None and then is None:
            tr = text(interaction.locale)
            await ephemeral(interaction, tr._("❌ {then2} is the fourth prompt: give the third one as {then} first.",
                                              then2=tr._("then2"), then=tr._("then")))
            return
        if frames is None:  # the bot's default, but never above this server's own cap
            frames = (await self.store.get_limits(guild_of(interaction))).capped_frames(settings.default_frames)
        request = RenderRequest(
            prompts=[p for p in (from_, to, then, then2) if p is not None], loop=loop, frames=frames,
            seed=random.randint(0, SEED_MAX) if seed is None else seed,
            negative=negative or "",
            steps=settings.default_steps,
            pacing=pacing.value if pacing is not None else "perceptual",
            path=path.value if path is not None else settings.path,
        )
        request.candidates = offered_candidates(request)
        await self.actions.start_job(interaction, request, boomerang=boomerang,
                                     output_format=output_format.value if output_format is not None else None)

    # ------------------------------------------------------------------ /morph-cancel
    @app_commands.command(name=locale_str("morph-cancel"),
                          description=locale_str("Cancel one of your queued or rendering morphs."))
    @app_commands.guild_only()
    @app_commands.rename(job=locale_str("job"))
    @app_commands.describe(job=locale_str("The job number, e.g. 12 (shown in the /morph reply)"))
    async def morph_cancel(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, None]) -> None:
        await self.actions.cancel_job(interaction, job)

    @morph_cancel.autocomplete("job")
    async def _cancel_autocomplete(self, interaction: discord.Interaction, current: str
                                   ) -> list[app_commands.Choice[int]]:
        if interaction.guild_id is None:
            return []
        jobs = await self.store.user_jobs(guild_of(interaction), interaction.user.id)
        out = []
        for job in jobs:
            name = f"#{job.id} {' → '.join(msg.path_prompts(job.request, interaction.locale))} " \
                   f"({msg.state_name(text(interaction.locale), job.state)})"
            if current.strip() in str(job.id) or current.strip().lower() in name.lower():
                out.append(app_commands.Choice(name=name[:100], value=job.id))
        return out[:25]

    # ------------------------------------------------------------------ /morph-queue
    @app_commands.command(name=locale_str("morph-queue"),
                          description=locale_str("Your morphs in the queue and their positions."))
    @app_commands.guild_only()
    async def morph_queue(self, interaction: discord.Interaction) -> None:
        store = self.store
        jobs = await store.user_jobs(guild_of(interaction), interaction.user.id)
        places = {job.id: place for job, place, _ in await store.queued_positions()}
        rows: list[tuple[int, str, object, int | None]] = [(j.id, j.state, j.request, places.get(j.id)) for j in jobs]
        shown = msg.queue_list_text(rows, interaction.locale)
        if await store.is_paused(guild_of(interaction)):
            shown = msg.clip(shown + "\n" + text(interaction.locale)._("(The queue of this server is paused by an "
                                                                       "admin.)"))
        await ephemeral(interaction, shown)

    # ------------------------------------------------------------------ reactions
    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """1️⃣..9️⃣ on a result message of this bot picks that candidate (``Actions.pick_by_reaction``).

        Raw event, so it works for messages not in the cache (e.g. after a restart). The job comes from
        the result marker at the start of the message (``🎞️ Morph job #N``). While the database is
        unavailable a reaction is ignored (the outage is logged once, by the database).
        """
        try:
            await self._reaction_pick(payload)
        except DatabaseUnavailable:
            log.info("reaction on message %s ignored: the database is unavailable", payload.message_id)

    async def _reaction_pick(self, payload: discord.RawReactionActionEvent) -> None:
        me = self.bot.user
        if me is None or payload.user_id == me.id or (payload.member is not None and payload.member.bot):
            return
        n = msg.keycap_index(str(payload.emoji))
        if n is None:
            return
        channel = self.bot.get_partial_messageable(payload.channel_id, guild_id=payload.guild_id)
        try:
            message = await channel.fetch_message(payload.message_id)
        except discord.HTTPException as err:
            log.info("reaction on message %s: cannot read it (%s)", payload.message_id, err)
            return
        m = msg.RESULT_MARKER_RE.match(message.content or "")
        if message.author.id != me.id or not m:
            return
        await self.actions.pick_by_reaction(channel, message, job_id=int(m.group(1)), guild_id=payload.guild_id,
                                            channel_id=payload.channel_id, user_id=payload.user_id, n=n)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left (or was removed from) a server: its queued and rendering morphs are cancelled."""
        jobs = await self.store.guild_left(guild.id)
        for job in jobs:
            self.actions.cancel_render(job.id)
        if jobs:
            log.info("left guild %s: cancelled %d morph(s)", guild.id, len(jobs))
            self.actions.events.queue_changed()

"""/morph-images: morph a member's picture into another picture, or into a prompt.

The pictures are fetched and checked (:mod:`bot.uploads`) inside the command's answer and stored with the job;
from the queue on, a picture morph is an ordinary job (limits, fairness, progress, MP4/GIF, candidates, picks,
🔍 refine, 🔁 reroll, delete, retention). The engine finds each picture's own starting noise
(:mod:`morph.inversion`), so the first frame (and the last, for two pictures) is the upload itself.
"""
from __future__ import annotations

import functools
import random

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.actions import Actions, offered_candidates
from bot.cogs.morph import MorphCogStore
from bot.cogs.options import BOOMERANG_DESCRIPTION, FORMAT_CHOICES, FORMAT_DESCRIPTION, set_frames_bound
from bot.i18n import text
from bot.interactions import ephemeral, guild_of
from bot.safety import channel_is_nsfw
from bot.uploads import SafetyCheck, allow_all, fetch_pictures
from morph.request import MAX_FRAMES, MIN_FRAMES, SEED_MAX, RenderRequest

#: What a picture end is called in the stored request (the worker replaces it with the job's upload).
UPLOAD_NAMES = ("upload:first", "upload:second")


class ImagesCog(commands.Cog):
    """``safety``: the check every upload passes before its job is queued (see :mod:`bot.uploads`)."""

    def __init__(self, bot: commands.Bot, actions: Actions, store: MorphCogStore, *,
                 safety: SafetyCheck = allow_all) -> None:
        self.bot = bot
        self.actions = actions
        self.store = store
        self.settings = actions.settings
        self.safety = safety
        set_frames_bound(self.morph_images, self.settings.max_frames, self.settings.default_frames)

    # Every name, description and choice is a locale_str, as /morph's (the shared ones: bot.cogs.options).
    @app_commands.command(name=locale_str("morph-images"),
                          description=locale_str("Morph your picture into another picture, or into a prompt: an "
                                                 "animation and frames to pick from."))
    @app_commands.guild_only()
    @app_commands.rename(first=locale_str("first"), second=locale_str("second"), to=locale_str("to"),
                         first_prompt=locale_str("first_prompt"), second_prompt=locale_str("second_prompt"),
                         frames=locale_str("frames"), seed=locale_str("seed"), boomerang=locale_str("boomerang"),
                         pacing=locale_str("pacing"), output_format=locale_str("format"))
    @app_commands.describe(
        first=locale_str("The picture the morph starts as (PNG, JPEG, WebP or GIF, up to 10 MiB and 4096×4096)"),
        second=locale_str("The picture it turns into (or give 'to' instead)"),
        to=locale_str("A prompt it turns into instead of a second picture, e.g. 'a cat'"),
        first_prompt=locale_str("A few words describing the first picture (optional; helps the middle frames)"),
        second_prompt=locale_str("A few words describing the second picture (optional)"),
        seed=locale_str("Varies the frames between the pictures (and the prompt end's noise); default: random"),
        boomerang=BOOMERANG_DESCRIPTION,
        pacing=locale_str("perceptual: evenly spaced changes (default); uniform: evenly spaced mix"),
        output_format=FORMAT_DESCRIPTION,
    )  # frames: set_frames_bound
    @app_commands.choices(
        pacing=[app_commands.Choice(name=locale_str("perceptual (even visual steps)"), value="perceptual"),
                app_commands.Choice(name=locale_str("uniform (even mix steps)"), value="uniform")],
        output_format=FORMAT_CHOICES)
    async def morph_images(self, interaction: discord.Interaction, first: discord.Attachment,
                           second: discord.Attachment | None = None,
                           to: app_commands.Range[str, 1, 1000] | None = None,
                           first_prompt: app_commands.Range[str, 1, 1000] | None = None,
                           second_prompt: app_commands.Range[str, 1, 1000] | None = None,
                           frames: app_commands.Range[int, MIN_FRAMES, MAX_FRAMES] | None = None,
                           seed: app_commands.Range[int, 0, SEED_MAX] | None = None,
                           boomerang: bool = False, pacing: app_commands.Choice[str] | None = None,
                           output_format: app_commands.Choice[str] | None = None) -> None:
        tr = text(interaction.locale)
        if (second is None) == (to is None):
            await ephemeral(interaction, tr._("❌ Give what the morph turns into: a second picture ('{second}') or "
                                              "a prompt ('{to}'), one of the two.", second=tr._("second"),
                                              to=tr._("to")))
            return
        if to is not None and second_prompt is not None:
            await ephemeral(interaction, tr._("❌ With '{to}' the second end is that prompt already: leave "
                                              "'{second_prompt}' out.", to=tr._("to"),
                                              second_prompt=tr._("second_prompt")))
            return
        limits = await self.store.get_limits(guild_of(interaction))
        if frames is None:  # the bot's default, but never above this server's own cap
            frames = limits.capped_frames(self.settings.default_frames)
        attachments = {0: first} if second is None else {0: first, 1: second}
        request = RenderRequest(
            prompts=[first_prompt or "", to if to is not None else second_prompt or ""],
            images=[UPLOAD_NAMES[0], UPLOAD_NAMES[1] if second is not None else None],
            frames=frames, seed=random.randint(0, SEED_MAX) if seed is None else seed,
            steps=self.settings.default_steps, path=self.settings.path,  # MORPH_PATH, as for /morph
            pacing=pacing.value if pacing is not None else "perceptual")
        request.candidates = offered_candidates(request)
        # the uploads go unchecked only where the result would be posted unfiltered (bot.safety.upload_check)
        unfiltered = channel_is_nsfw(interaction.channel) and limits.nsfw_allow
        pictures = functools.partial(fetch_pictures, attachments, age_restricted=unfiltered, safety=self.safety)
        await self.actions.start_job(interaction, request, boomerang=boomerang, pictures=pictures,
                                     output_format=output_format.value if output_format is not None else None)

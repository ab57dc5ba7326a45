"""The options /morph and /morph-images share (and /morphadmin's format choices): their descriptions and
choices, written once so both commands and their translations stay the same, and the frames option's bounds.

Every name, description and choice is a locale_str: the bot's translator gives Discord their translations from
the catalogues when the commands are synced. Descriptions stay within Discord's 100 characters, or Discord
refuses the whole command sync.
"""
from __future__ import annotations

import dataclasses

from discord import app_commands
from discord.app_commands import locale_str

from bot.i18n import N_
from morph.request import MIN_FRAMES

#: the output formats a member may ask for (``format``), and a server's default (``default_format``)
FORMAT_CHOICES = [app_commands.Choice(name=locale_str("MP4 video (full colour, smaller)"), value="mp4"),
                  app_commands.Choice(name=locale_str("GIF (256 colours)"), value="gif"),
                  app_commands.Choice(name=locale_str("both"), value="both")]
FORMAT_DESCRIPTION = locale_str("mp4 (full colour), gif (plays by itself everywhere) or both (default: this "
                                "server's choice)")
BOOMERANG_DESCRIPTION = locale_str("Play forward and then back (default: no)")

#: the frames option's description, with the bounds of this bot (:func:`set_frames_bound`)
FRAMES_DESCRIPTION = N_("How many frames, {min}–{max} (default {default})")


def set_frames_bound(command: app_commands.Command, max_frames: int, default_frames: int) -> None:
    """Give ``command``'s ``frames`` option the upper bound ``max_frames`` (Discord enforces it in the client)
    and its description (:data:`FRAMES_DESCRIPTION`, from :data:`morph.request.MIN_FRAMES` to ``max_frames``).

    discord.py has no public way to change an option after the decorators built it, so this writes the
    command's private parameter table, here only; ``tests/test_cogs_morph.py`` fails if a discord.py upgrade
    breaks it (the synced option must carry the bound)."""
    params = command._params  # the cog instance's own copy of the command: other instances keep theirs
    values = {"min": MIN_FRAMES, "max": max_frames, "default": default_frames}
    # locale_str: the English text is the description, the template and values let the translator translate it
    description = locale_str(FRAMES_DESCRIPTION.format(**values), template=FRAMES_DESCRIPTION, values=values)
    params["frames"] = dataclasses.replace(params["frames"], max_value=max_frames, description=description)

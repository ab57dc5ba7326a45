"""/morphadmin: queue control for server admins, checked by the bot itself.

``default_permissions(manage_guild=True)`` only hides the command from members by default (server admins
can change that in Integrations), so :meth:`AdminCog.interaction_check` checks every call with
:func:`bot.permissions.can_admin`: Manage Server (or Administrator) in this guild, or a bot owner.
Everything acts on the caller's guild; job ids of other guilds are refused (owners excepted), and owners
may list/stats every guild with ``everywhere:true``. Store methods audit every change; ``list`` and
``stats`` show the latest audit entries. All replies are ephemeral.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Protocol

import discord
from discord import app_commands
from discord.ext import commands

from bot import messages as msg
from bot.actions import Actions
from bot.interactions import ephemeral, guild_of
from bot.jobs import Job, JobState
from bot.permissions import can_admin
from bot.store import Limits
from morph.request import MAX_FRAMES, MIN_FRAMES, MorphError

log = logging.getLogger(__name__)


class NotAdmin(app_commands.CheckFailure):
    """Raised by the admin check; its text is shown to the caller."""


def format_limits(limits: Limits, settings=None) -> str:
    """The limits as ``/morphadmin limits`` shows them; with ``settings``, also the operator's bounds, which
    a server can only make stricter."""
    words, chans = limits.banned_words, limits.allowed_channels
    bounds = [] if settings is None else [
        f"This bot allows at most {settings.max_user_active} per person, {settings.max_guild_queue} per server and "
        f"{settings.max_frames} frames, with a cooldown of at least {settings.cooldown_s:g} s."]
    return "\n".join([
        f"• max_user_active: {limits.max_user_active}",
        f"• max_guild_queue: {limits.max_guild_queue}",
        f"• cooldown: {limits.cooldown_s:g} s",
        f"• max_frames: {limits.max_frames}",
        f"• banned_words: {len(words)}" + (f" ({msg.safe(', '.join(words), 300)})" if words else ""),
        "• allowed_channels: " + (", ".join(f"<#{c}>" for c in chans) if chans else "every channel"),
        f"• default_format: {limits.default_format} (what /morph sends when not told)",
        f"• paused: {'yes' if limits.paused else 'no'}",
        *bounds,
    ])


def format_audit(entries: list[dict]) -> str:
    if not entries:
        return "Audit log: (empty)"
    lines = ["Audit log (newest first):"]
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.get("created_at") or 0))
        where = "" if e.get("guild_id") is not None else " [all servers]"
        lines.append(f"• {when} UTC {msg.user(e.get('actor_id'))} {e.get('action')}"
                     f"{(': ' + msg.safe(e['detail'], 120)) if e.get('detail') else ''}{where}")
    return "\n".join(lines)


def format_bytes(n) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def parse_channel_ids(text: str) -> list[int]:
    """``"<#1>, 2 <#3>"`` → [1, 2, 3]; raises MorphError on anything else."""
    ids = []
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        m = re.fullmatch(r"<#(\d+)>|(\d+)", part)
        if not m:
            raise MorphError(f"allowed_channels: {msg.safe(part, 40)} is not a channel (use #channel or its id; "
                             "'all' allows every channel).")
        ids.append(int(m.group(1) or m.group(2)))
    return ids


class AdminStore(Protocol):
    """What /morphadmin reads and changes of :class:`bot.store.Store` (cancelling goes through
    :class:`~bot.actions.Actions`, like every way in to it)."""

    async def get(self, job_id: int) -> Job | None: ...

    async def list_jobs(self, guild_id: int | None, states=..., limit: int = ...) -> list[Job]: ...

    async def queued_positions(self) -> list[tuple[Job, int, bool]]: ...

    async def is_paused(self, guild_id: int) -> bool: ...

    async def pause(self, guild_id: int, actor_id: int, now: float | None = ...) -> None: ...

    async def resume(self, guild_id: int, actor_id: int, now: float | None = ...) -> None: ...

    async def clear(self, guild_id: int, actor_id: int, now: float | None = ...) -> int: ...

    async def ban(self, guild_id: int, user_id: int, actor_id: int, now: float | None = ...) -> int: ...

    async def unban(self, guild_id: int, user_id: int, actor_id: int, now: float | None = ...) -> bool: ...

    async def get_limits(self, guild_id: int) -> Limits: ...

    async def set_limits(self, guild_id: int, actor_id: int, now: float | None = ..., **changes) -> Limits: ...

    async def audit_log(self, guild_id: int | None, limit: int = ...) -> list[dict]: ...

    async def stats(self, guild_id: int | None, now: float | None = ...) -> dict: ...


class AdminCog(commands.Cog):
    admin = app_commands.Group(name="morphadmin", description="Morph queue controls for server admins",
                               guild_only=True, default_permissions=discord.Permissions(manage_guild=True))

    def __init__(self, actions: Actions, store: AdminStore) -> None:
        self.actions = actions
        self.store = store
        self.settings = actions.settings

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # every command here
        if not can_admin(user_id=interaction.user.id, permissions=interaction.permissions,
                         owner_ids=self.actions.owner_ids, caller_guild_id=interaction.guild_id,
                         target_guild_id=None):
            raise NotAdmin("❌ /morphadmin needs the Manage Server permission in this server.")
        return True

    def _is_owner(self, interaction: discord.Interaction) -> bool:
        return self.actions.is_owner(interaction.user.id)

    def _shown_guild(self, interaction: discord.Interaction, everywhere: bool) -> int | None:
        """The server whose jobs or figures a command shows: the caller's, or None (every server: bot owners
        only)."""
        if everywhere and not self._is_owner(interaction):
            raise NotAdmin("❌ Only the bot owner can look at every server.")
        return None if everywhere else interaction.guild_id

    # ------------------------------------------------------------------ commands
    @admin.command(name="list", description="Queued and rendering morphs of this server, and recent admin actions")
    @app_commands.describe(everywhere="Bot owner only: every server")
    async def list_(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        guild = self._shown_guild(interaction, everywhere)
        store = self.store
        jobs = await store.list_jobs(guild, states=[JobState.QUEUED, JobState.RUNNING, JobState.RENDERED], limit=30)
        lines = [f"Morph jobs ({'every server' if guild is None else 'this server'}):"]
        if not jobs:
            lines.append("(none queued or rendering)")
        places = {job.id: place for job, place, _ in await store.queued_positions()}
        for job in sorted(jobs, key=lambda j: j.id):
            pos = places.get(job.id)
            state = f"position {pos}" if pos else job.state
            lines.append(f"• #{job.id} {msg.user(job.user_id)} {msg.title(job.request)}"
                         f" · {job.request.frames} frames · {state}")
        if guild is not None and await store.is_paused(guild):
            lines.append("⏸️ The queue of this server is paused (/morphadmin resume).")
        lines.append(format_audit(await store.audit_log(guild, limit=5)))
        await ephemeral(interaction, msg.clip("\n".join(lines)))

    @admin.command(name="pause", description="Stop starting this server's morphs (a rendering one finishes)")
    async def pause(self, interaction: discord.Interaction) -> None:
        await self.store.pause(guild_of(interaction), interaction.user.id)
        self.actions.events.queue_changed()
        await ephemeral(interaction, "⏸️ Paused: new morphs wait in the queue until /morphadmin resume.")

    @admin.command(name="resume", description="Start this server's morphs again")
    async def resume(self, interaction: discord.Interaction) -> None:
        await self.store.resume(guild_of(interaction), interaction.user.id)  # wakes the workers
        self.actions.events.queue_changed()
        await ephemeral(interaction, "▶️ Resumed.")

    @admin.command(name="cancel", description="Cancel any queued or rendering morph of this server")
    @app_commands.describe(job="The job number")
    async def cancel(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, None]) -> None:
        await self.actions.admin_cancel(interaction, job)

    @admin.command(name="clear", description="Cancel every queued morph of this server")
    async def clear(self, interaction: discord.Interaction) -> None:
        store = self.store
        queued = await store.list_jobs(guild_of(interaction), states=[JobState.QUEUED], limit=10_000)
        n = await store.clear(guild_of(interaction), interaction.user.id)
        await ephemeral(interaction, f"🧹 Cancelled {n} queued morph{'s' if n != 1 else ''}.")
        await self.actions.jobs_cancelled(queued, interaction.user.id)

    @admin.command(name="ban", description="Stop someone from using /morph here (their queued morphs are cancelled)")
    @app_commands.describe(user="Who may no longer use /morph in this server")
    async def ban(self, interaction: discord.Interaction, user: discord.User) -> None:
        store = self.store
        queued = [j for j in await store.list_jobs(guild_of(interaction), states=[JobState.QUEUED], limit=10_000)
                  if j.user_id == user.id]
        n = await store.ban(guild_of(interaction), user.id, interaction.user.id)
        await ephemeral(interaction, f"🔨 {msg.user(user.id)} may no longer use /morph here"
                                     f" ({n} queued morph{'s' if n != 1 else ''} cancelled).")
        await self.actions.jobs_cancelled(queued, interaction.user.id)

    @admin.command(name="unban", description="Allow someone to use /morph here again")
    @app_commands.describe(user="Who may use /morph again")
    async def unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        was = await self.store.unban(guild_of(interaction), user.id, interaction.user.id)
        await ephemeral(interaction, f"✅ {msg.user(user.id)} may use /morph here again." if was
                        else f"{msg.user(user.id)} was not banned.")

    @admin.command(name="limits", description="Show or change this server's limits (no options: show)")
    @app_commands.describe(
        max_user_active="Queued + rendering morphs per person (at most the bot's own limit)",
        max_guild_queue="Queued + rendering morphs for the whole server (at most the bot's own limit)",
        cooldown="Seconds between two /morph of one person (at least the bot's own cooldown)",
        max_frames="Most frames per morph (at most the bot's own limit)",
        banned_words="Comma-separated words/phrases refused in prompts; 'none' clears the list",
        allowed_channels="Channels where /morph works (#a #b or ids); 'all' = every channel",
        default_format="What /morph sends when its format option is not given: mp4, gif or both",
    )
    @app_commands.choices(default_format=[app_commands.Choice(name="MP4 video", value="mp4"),
                                          app_commands.Choice(name="GIF", value="gif"),
                                          app_commands.Choice(name="both", value="both")])
    async def limits(self, interaction: discord.Interaction,
                     max_user_active: app_commands.Range[int, 1, 100] | None = None,
                     max_guild_queue: app_commands.Range[int, 1, 10000] | None = None,
                     cooldown: app_commands.Range[float, 0, 86400] | None = None,
                     max_frames: app_commands.Range[int, MIN_FRAMES, MAX_FRAMES] | None = None,
                     banned_words: str | None = None,
                     allowed_channels: str | None = None,
                     default_format: app_commands.Choice[str] | None = None) -> None:
        store = self.store
        changes: dict = {}
        try:
            if max_user_active is not None:
                changes["max_user_active"] = max_user_active
            if max_guild_queue is not None:
                changes["max_guild_queue"] = max_guild_queue
            if cooldown is not None:
                changes["cooldown_s"] = float(cooldown)
            if max_frames is not None:
                changes["max_frames"] = max_frames
            if banned_words is not None:
                words = [] if banned_words.strip().lower() in ("none", "-", "") else banned_words.split(",")
                changes["banned_words"] = words
            if allowed_channels is not None:
                text = allowed_channels.strip().lower()
                changes["allowed_channels"] = [] if text in ("all", "none", "-", "") else parse_channel_ids(
                    allowed_channels)
            if default_format is not None:
                changes["default_format"] = default_format.value
            if changes:
                current = await store.set_limits(guild_of(interaction), interaction.user.id, **changes)
                head = "✅ Limits updated:"
            else:
                current = await store.get_limits(guild_of(interaction))
                head = "Limits of this server:"
        except MorphError as err:
            await ephemeral(interaction, f"❌ {err}")
            return
        await ephemeral(interaction, msg.clip(head + "\n" + format_limits(current, self.settings)))

    @admin.command(name="stats", description="Queue length, throughput, render time, GPU")
    @app_commands.describe(everywhere="Bot owner only: every server")
    async def stats(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        guild = self._shown_guild(interaction, everywhere)
        store = self.store
        s = await store.stats(guild)
        mean = s.get("mean_render_s")
        lines = [
            f"📊 Morph stats ({'every server' if guild is None else 'this server'})",
            f"• queue: {s.get('queued', 0)} queued, {s.get('running', 0)} rendering, "
            f"{s.get('rendered', 0)} waiting to be posted; {s.get('queue_total', 0)} queued on the whole bot",
            f"• last hour: {s.get('jobs_last_hour', 0)} submitted, {s.get('done_last_hour', 0)} rendered, "
            f"{s.get('failed_last_hour', 0)} failed",
            f"• mean render time (24 h): {msg.duration(mean) if mean is not None else 'no renders yet'}",
            f"• totals: {s.get('delivered', 0)} delivered, {s.get('failed', 0)} failed, "
            f"{s.get('cancelled', 0)} cancelled",
            "• " + self._device_line(show_model=self._is_owner(interaction)),
        ]
        if s.get("paused"):
            lines.append("⏸️ The queue of this server is paused.")
        lines.append(format_audit(await store.audit_log(guild, limit=5)))
        await ephemeral(interaction, msg.clip("\n".join(lines)))

    def _device_line(self, *, show_model: bool) -> str:
        """The render device, its memory and (``show_model``: bot owners only) the model, which may be a path
        on the server."""
        worker = self.actions.worker
        morpher = worker.morpher if worker is not None else None
        model = msg.safe(self.settings.model, 80) if show_model else "the model"
        if morpher is None:
            return (f"device: model not loaded yet ({model} is loaded at start-up, in the background)"
                    if worker is not None else "device: none in this process (separate morph-worker processes render)")
        try:
            info = morpher.device_info()
        except Exception:
            log.warning("could not read the render device", exc_info=True)
            return "device: unknown"
        model = msg.safe(str(info.get('model')), 80) if show_model else "loaded"
        return (f"device: {msg.safe(str(info.get('device')), 80)}, "
                f"memory {format_bytes(info.get('memory_free'))} free of {format_bytes(info.get('memory_total'))}; "
                f"model {model} ({info.get('native_size')} px)")


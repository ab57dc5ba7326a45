"""/morphadmin: queue control for server admins, checked by the bot itself.

``default_permissions(manage_guild=True)`` only hides the command from members by default (server admins
can change that in Integrations), so :meth:`AdminCog.interaction_check` checks every call with
:func:`bot.permissions.can_admin`: Manage Server (or Administrator) in this guild, or a bot owner.
Everything acts on the caller's guild; job ids of other guilds are refused (owners excepted), and owners
may list/stats every guild with ``everywhere:true``. Store methods audit every change; ``list`` and
``stats`` show the latest audit entries. All replies are ephemeral, in the caller's language
(``interaction.locale``); ``limits language:`` sets the language of the server's public posts.
"""
from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

import discord
from babel import Locale
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot import messages as msg
from bot.actions import Actions
from bot.cogs.options import FORMAT_CHOICES
from bot.i18n import N_, Text, languages, text
from bot.interactions import ephemeral, guild_of
from bot.jobs import Job, JobState
from bot.permissions import can_admin
from bot.store import Limits
from morph.request import MAX_FRAMES, MIN_FRAMES, MorphError

log = logging.getLogger(__name__)

#: the ``language:`` choice that hands the language back to the server's own (Discord's preferred locale)
AUTO_LANGUAGE = "auto"


class NotAdmin(app_commands.CheckFailure):
    """Raised by the admin check; its text is shown to the caller."""


def language_name(lang: str | None, tr: Text) -> str:
    """``日本語 (ja)``: a language by its own name; None: the server's language as Discord sends it."""
    if lang is None:
        return tr._("the server's language in Discord")
    return f"{Locale.parse(lang.replace('-', '_')).get_display_name(lang.replace('-', '_'))} ({lang})"


def format_limits(limits: Limits, settings=None, locale: object = None) -> str:
    """The limits as ``/morphadmin limits`` shows them; with ``settings``, also the operator's bounds, which
    a server can only make stricter. The option names stay as they are typed."""
    tr = text(locale)
    words, chans = limits.banned_words, limits.allowed_channels
    bounds = [] if settings is None else [tr._(
        "This bot allows at most {per_person} per person, {per_server} per server and {frames} frames, with a "
        "cooldown of at least {cooldown}.", per_person=tr.number(settings.max_user_active),
        per_server=tr.number(settings.max_guild_queue), frames=tr.number(settings.max_frames),
        cooldown=msg.duration(settings.cooldown_s, locale))]
    key = functools.partial(msg.option_name, tr)
    return "\n".join([
        f"• {key('max_user_active')}: {tr.number(limits.max_user_active)}",
        f"• {key('max_guild_queue')}: {tr.number(limits.max_guild_queue)}",
        f"• {key('cooldown_s')}: {msg.duration(limits.cooldown_s, locale)}",
        f"• {key('max_frames')}: {tr.number(limits.max_frames)}",
        f"• {key('banned_words')}: {tr.number(len(words))}"
        + (f" ({msg.safe(', '.join(words), 300)})" if words else ""),
        f"• {key('allowed_channels')}: " + (", ".join(f"<#{c}>" for c in chans) if chans else tr._("every channel")),
        f"• {key('default_format')}: " + tr._("{format} (what {morph} sends when not told)",
                                             format=limits.default_format, morph=msg.command(tr, "morph")),
        f"• {key('language')}: {language_name(limits.language, tr)}",
        f"• {key('nsfw_allow')}: " + (tr._("allow (unfiltered results in age-restricted channels)")
                                     if limits.nsfw_allow else tr._("deny (results are filtered everywhere)")),
        f"• {key('report_hide_after')}: " + (tr.ngettext("{count} report", "{count} reports", limits.report_hide_after)
                                            if limits.report_hide_after else tr._("never")),
        "• " + tr._("paused") + ": " + (tr._("yes") if limits.paused else tr._("no")),
        *bounds,
    ])


def format_bytes(n) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def parse_channel_ids(typed: str, locale: object = None) -> list[int]:
    """``"<#1>, 2 <#3>"`` → [1, 2, 3]; raises MorphError (in the language of ``locale``) on anything else."""
    ids = []
    for part in re.split(r"[\s,]+", typed.strip()):
        if not part:
            continue
        m = re.fullmatch(r"<#(\d+)>|(\d+)", part)
        if not m:
            raise MorphError(text(locale)._("allowed_channels: {value} is not a channel (use #channel or its id; "
                                            "'all' allows every channel).", value=msg.safe(part, 40)))
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

    async def clear(self, guild_id: int, actor_id: int, now: float | None = ...) -> list[Job]: ...

    async def ban(self, guild_id: int, user_id: int, actor_id: int, now: float | None = ...) -> list[Job]: ...

    async def unban(self, guild_id: int, user_id: int, actor_id: int, now: float | None = ...) -> bool: ...

    async def get_limits(self, guild_id: int) -> Limits: ...

    async def set_limits(self, guild_id: int, actor_id: int, now: float | None = ..., **changes) -> Limits: ...

    async def audit_log(self, guild_id: int | None, limit: int = ...) -> list[dict]: ...

    async def stats(self, guild_id: int | None, now: float | None = ...) -> dict: ...

    async def storage_full(self) -> list[dict]: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    async def reports(self, guild_id: int | None, limit: int = ...) -> list[dict]: ...


class AdminCog(commands.Cog):
    admin = app_commands.Group(name=locale_str("morphadmin"),
                               description=locale_str("Morph queue controls for server admins"),
                               guild_only=True, default_permissions=discord.Permissions(manage_guild=True))

    def __init__(self, actions: Actions, store: AdminStore) -> None:
        self.actions = actions
        self.store = store
        self.settings = actions.settings

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # every command here
        if not can_admin(user_id=interaction.user.id, permissions=interaction.permissions,
                         owner_ids=self.actions.owner_ids, caller_guild_id=interaction.guild_id,
                         target_guild_id=None):
            tr = text(interaction.locale)
            raise NotAdmin(tr._("❌ {command} needs the Manage Server permission in this server.",
                                command=msg.command(tr, "morphadmin")))
        return True

    def _is_owner(self, interaction: discord.Interaction) -> bool:
        return self.actions.is_owner(interaction.user.id)

    def _shown_guild(self, interaction: discord.Interaction, everywhere: bool) -> int | None:
        """The server whose jobs or figures a command shows: the caller's, or None (every server: bot owners
        only)."""
        if everywhere and not self._is_owner(interaction):
            raise NotAdmin(text(interaction.locale)._("❌ Only the bot owner can look at every server."))
        return None if everywhere else interaction.guild_id

    # ------------------------------------------------------------------ commands
    @admin.command(name=locale_str("list"),
                   description=locale_str("Queued and rendering morphs of this server, and recent admin actions"))
    @app_commands.rename(everywhere=locale_str("everywhere"))
    @app_commands.describe(everywhere=locale_str("Bot owner only: every server"))
    async def list_(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        guild = self._shown_guild(interaction, everywhere)
        store = self.store
        tr = text(interaction.locale)
        jobs = await store.list_jobs(guild, states=[JobState.QUEUED, JobState.RUNNING, JobState.RENDERED], limit=30)
        lines = [tr._("Morph jobs (every server):") if guild is None else tr._("Morph jobs (this server):")]
        if not jobs:
            lines.append(tr._("(none queued or rendering)"))
        places = {job.id: place for job, place, _ in await store.queued_positions()}
        for job in sorted(jobs, key=lambda j: j.id):
            pos = places.get(job.id)
            state = tr._("position {position}", position=tr.number(pos)) if pos else msg.state_name(tr, job.state)
            frames = tr.ngettext("{count} frame", "{count} frames", job.request.frames)
            lines.append(f"• #{job.id} {msg.user(job.user_id, tr.lang)} {msg.title(job.request, tr.lang)} · {frames} · "
                         f"{state}")
        if guild is not None and await store.is_paused(guild):
            lines.append(tr._("⏸️ The queue of this server is paused ({command}).",
                              command=msg.command(tr, "morphadmin resume")))
        lines.append(format_audit(await store.audit_log(guild, limit=5), interaction.locale))
        await ephemeral(interaction, msg.clip("\n".join(lines)))

    @admin.command(name=locale_str("pause"),
                   description=locale_str("Stop starting this server's morphs (a rendering one finishes)"))
    async def pause(self, interaction: discord.Interaction) -> None:
        await self.store.pause(guild_of(interaction), interaction.user.id)
        self.actions.events.queue_changed()
        tr = text(interaction.locale)
        await ephemeral(interaction, tr._("⏸️ Paused: new morphs wait in the queue until {command}.",
                                          command=msg.command(tr, "morphadmin resume")))

    @admin.command(name=locale_str("resume"), description=locale_str("Start this server's morphs again"))
    async def resume(self, interaction: discord.Interaction) -> None:
        await self.store.resume(guild_of(interaction), interaction.user.id)  # wakes the workers
        self.actions.events.queue_changed()
        await ephemeral(interaction, text(interaction.locale)._("▶️ Resumed."))

    @admin.command(name=locale_str("cancel"),
                   description=locale_str("Cancel any queued or rendering morph of this server"))
    @app_commands.rename(job=locale_str("job"))
    @app_commands.describe(job=locale_str("The job number"))
    async def cancel(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, None]) -> None:
        await self.actions.admin_cancel(interaction, job)

    @admin.command(name=locale_str("clear"), description=locale_str("Cancel every queued morph of this server"))
    async def clear(self, interaction: discord.Interaction) -> None:
        cancelled = await self.store.clear(guild_of(interaction), interaction.user.id)
        await ephemeral(interaction, text(interaction.locale).ngettext("🧹 Cancelled {count} queued morph.",
                                                                       "🧹 Cancelled {count} queued morphs.",
                                                                       len(cancelled)))
        await self.actions.jobs_cancelled(cancelled, interaction.user.id)

    @admin.command(name=locale_str("ban"),
                   description=locale_str("Stop someone from using /morph here (their queued morphs are cancelled)"))
    @app_commands.rename(user=locale_str("user"))
    @app_commands.describe(user=locale_str("Who may no longer use /morph in this server"))
    async def ban(self, interaction: discord.Interaction, user: discord.User) -> None:
        tr = text(interaction.locale)
        cancelled = await self.store.ban(guild_of(interaction), user.id, interaction.user.id)
        await ephemeral(interaction, tr.ngettext("🔨 {user} may no longer use {morph} here ({count} queued morph "
                                                 "cancelled).",
                                                 "🔨 {user} may no longer use {morph} here ({count} queued morphs "
                                                 "cancelled).", len(cancelled), user=msg.user(user.id),
                                                 morph=msg.command(tr, "morph")))
        await self.actions.jobs_cancelled(cancelled, interaction.user.id)

    @admin.command(name=locale_str("unban"), description=locale_str("Allow someone to use /morph here again"))
    @app_commands.rename(user=locale_str("user"))
    @app_commands.describe(user=locale_str("Who may use /morph again"))
    async def unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        was = await self.store.unban(guild_of(interaction), user.id, interaction.user.id)
        tr = text(interaction.locale)
        await ephemeral(interaction, tr._("✅ {user} may use {morph} here again.", user=msg.user(user.id),
                                          morph=msg.command(tr, "morph")) if was
                        else tr._("{user} was not banned.", user=msg.user(user.id)))

    @admin.command(name=locale_str("limits"),
                   description=locale_str("Show or change this server's limits (no options: show)"))
    @app_commands.rename(max_user_active=locale_str("max_user_active"), max_guild_queue=locale_str("max_guild_queue"),
                         cooldown=locale_str("cooldown"), max_frames=locale_str("max_frames"),
                         banned_words=locale_str("banned_words"), allowed_channels=locale_str("allowed_channels"),
                         default_format=locale_str("default_format"), language=locale_str("language"),
                         nsfw=locale_str("nsfw"), report_hide_after=locale_str("report_hide_after"))
    @app_commands.describe(
        max_user_active=locale_str("Queued + rendering morphs per person (at most the bot's own limit)"),
        max_guild_queue=locale_str("Queued + rendering morphs for the whole server (at most the bot's own limit)"),
        cooldown=locale_str("Seconds between two /morph of one person (at least the bot's own cooldown)"),
        max_frames=locale_str("Most frames per morph (at most the bot's own limit)"),
        banned_words=locale_str("Comma-separated words/phrases refused in prompts; 'none' clears the list"),
        allowed_channels=locale_str("Channels where /morph works (#a #b or ids); 'all' = every channel"),
        default_format=locale_str("What /morph sends when its format option is not given: mp4, gif or both"),
        language=locale_str("The language of the bot's public posts here (default: the server's language)"),
        nsfw=locale_str("allow: results in age-restricted channels are posted unfiltered; deny (default): filtered "
                        "everywhere"),
        report_hide_after=locale_str("Hide a result automatically after this many members reported it (0: never)"),
    )
    @app_commands.choices(default_format=FORMAT_CHOICES,
                          language=[app_commands.Choice(name=locale_str("the server's language in Discord"),
                                                        value=AUTO_LANGUAGE)]
                          + [app_commands.Choice(name=language_name(lang, text(lang)), value=lang)
                             for lang in languages()],
                          nsfw=[app_commands.Choice(name=locale_str("allow (age-restricted channels only)"),
                                                    value="allow"),
                                app_commands.Choice(name=locale_str("deny (default)"), value="deny")])
    async def limits(self, interaction: discord.Interaction,
                     max_user_active: app_commands.Range[int, 1, 100] | None = None,
                     max_guild_queue: app_commands.Range[int, 1, 10000] | None = None,
                     cooldown: app_commands.Range[float, 0, 86400] | None = None,
                     max_frames: app_commands.Range[int, MIN_FRAMES, MAX_FRAMES] | None = None,
                     banned_words: str | None = None,
                     allowed_channels: str | None = None,
                     default_format: app_commands.Choice[str] | None = None,
                     language: app_commands.Choice[str] | None = None,
                     nsfw: app_commands.Choice[str] | None = None,
                     report_hide_after: app_commands.Range[int, 0, 1000] | None = None) -> None:
        store = self.store
        tr = text(interaction.locale)
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
                typed = allowed_channels.strip().lower()
                changes["allowed_channels"] = [] if typed in ("all", "none", "-", "") else parse_channel_ids(
                    allowed_channels, interaction.locale)
            if default_format is not None:
                changes["default_format"] = default_format.value
            if language is not None:
                changes["language"] = None if language.value == AUTO_LANGUAGE else language.value
            if nsfw is not None:
                changes["nsfw_allow"] = nsfw.value == "allow"
            if report_hide_after is not None:
                changes["report_hide_after"] = report_hide_after or None
            if changes:
                current = await store.set_limits(guild_of(interaction), interaction.user.id, **changes)
                head = tr._("✅ Limits updated:")
            else:
                current = await store.get_limits(guild_of(interaction))
                head = tr._("Limits of this server:")
        except MorphError as err:
            await ephemeral(interaction, msg.error_text(err, interaction.locale))
            return
        await ephemeral(interaction, msg.clip(head + "\n" + format_limits(current, self.settings, interaction.locale)))

    @admin.command(name=locale_str("reports"),
                   description=locale_str("Results members reported with 🚩, the most recent first"))
    @app_commands.rename(everywhere=locale_str("everywhere"))
    @app_commands.describe(everywhere=locale_str("Bot owner only: every server"))
    async def reports(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        guild = self._shown_guild(interaction, everywhere)
        await ephemeral(interaction, msg.reports_list_text(await self.store.reports(guild), interaction.locale))

    @admin.command(name=locale_str("delete"),
                   description=locale_str("Delete a result of this server (its message and frames)"))
    @app_commands.rename(job=locale_str("job"))
    @app_commands.describe(job=locale_str("The job number"))
    async def delete(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, None]) -> None:
        await self.actions.admin_delete_result(interaction, job)

    @admin.command(name=locale_str("stats"), description=locale_str("Queue length, throughput, render time, GPU"))
    @app_commands.rename(everywhere=locale_str("everywhere"))
    @app_commands.describe(everywhere=locale_str("Bot owner only: every server"))
    async def stats(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        guild = self._shown_guild(interaction, everywhere)
        store = self.store
        tr = text(interaction.locale)
        s = await store.stats(guild)
        mean = s.get("mean_render_s")
        n = tr.number
        lines = [
            tr._("📊 Morph stats (every server)") if guild is None else tr._("📊 Morph stats (this server)"),
            tr._("• queue: {queued} queued, {running} rendering, {rendered} waiting to be posted; {total} queued on "
                 "the whole bot", queued=n(s.get("queued", 0)), running=n(s.get("running", 0)),
                 rendered=n(s.get("rendered", 0)), total=n(s.get("queue_total", 0))),
            tr._("• last hour: {submitted} submitted, {rendered} rendered, {failed} failed",
                 submitted=n(s.get("jobs_last_hour", 0)), rendered=n(s.get("done_last_hour", 0)),
                 failed=n(s.get("failed_last_hour", 0))),
            tr._("• mean render time (24 h): {duration}", duration=msg.duration(mean, interaction.locale)
                 if mean is not None else tr._("no renders yet")),
            tr._("• totals: {delivered} delivered, {failed} failed, {cancelled} cancelled, {withheld} withheld by the "
                 "safety filter", delivered=n(s.get("delivered", 0)), failed=n(s.get("failed", 0)),
                 cancelled=n(s.get("cancelled", 0)), withheld=n(s.get("withheld", 0))),
            "• " + self._device_line(tr, show_model=self._is_owner(interaction)),
            "• " + self._safety_line(tr, show_details=self._is_owner(interaction)),
        ]
        if s.get("paused"):
            lines.append(tr._("⏸️ The queue of this server is paused."))
        if full := await store.storage_full():  # every server's queue waits for it
            lines.append(tr._("⚠️ Storage has been full for {duration}: {workers} render worker(s) cannot store "
                              "finished morphs and render nothing until there is room. Queued morphs wait; the bot "
                              "owner can free space or lower MORPH_RETENTION_DAYS or MORPH_STORAGE_MAX_GB.",
                              workers=n(len(full)), duration=msg.duration(
                                  max(0.0, store.clock() - min(r["since"] for r in full)), interaction.locale)))
        lines.append(format_audit(await store.audit_log(guild, limit=5), interaction.locale))
        await ephemeral(interaction, msg.clip("\n".join(lines)))

    def _safety_line(self, tr: Text, *, show_details: bool) -> str:
        """The image safety check as this process's worker has it (a worker elsewhere logs its own).
        ``show_details`` (bot owners only): where the checker came from and why it failed, which may name paths
        on the server."""
        if not self.settings.safety:
            return tr._("image safety check: off (MORPH_SAFETY=off): {morph} works only in age-restricted channels",
                        morph=msg.command(tr, "morph"))
        worker = self.actions.worker
        if worker is None:
            return tr._("image safety check: on (the render workers run elsewhere; their logs say whether it loaded)")
        if worker.safety_error is not None:
            why = msg.safe(worker.safety_error, 300) if show_details else tr._("the details are in the bot's log")
            return tr._("⚠️ image safety check: could not be loaded, so nothing renders (jobs wait): {why}", why=why)
        checker = worker.checker
        if checker is None:
            return tr._("image safety check: on (loads with the model)")
        if show_details:
            return tr._("image safety check: on ({source})", source=msg.safe(str(getattr(checker, "source", "?")), 100))
        return tr._("image safety check: on")

    def _device_line(self, tr: Text, *, show_model: bool) -> str:
        """The render device, its memory and (``show_model``: bot owners only) the model, which may be a path
        on the server."""
        worker = self.actions.worker
        morpher = worker.morpher if worker is not None else None
        model = msg.safe(self.settings.model, 80)
        if morpher is None:
            if not show_model:
                return tr._("device: the model is not loaded yet")
            return tr._("device: model not loaded yet ({model} loads when the worker starts)", model=model)
        try:
            info = morpher.device_info()
        except Exception:
            log.warning("could not read the render device", exc_info=True)
            return tr._("device: unknown")
        values = dict(device=msg.safe(str(info.get("device")), 80), free=format_bytes(info.get("memory_free")),
                      total=format_bytes(info.get("memory_total")), size=info.get("native_size"))
        if not show_model:
            return tr._("device: {device}, memory {free} free of {total}; model loaded ({size} px)", **values)
        return tr._("device: {device}, memory {free} free of {total}; model {model} ({size} px)",
                    model=msg.safe(str(info.get("model")), 80), **values)


# ---------------------------------------------------------------------------------- the audit log
#: The admin actions ``bot.store`` records (``audit_log.action``) as an admin reads them: a command's own name
#: where the action is one (``/morphadmin pause`` is audited as ``pause``).
AUDIT_ACTIONS = {"pause": N_("pause"), "resume": N_("resume"), "cancel": N_("cancel"), "clear": N_("clear"),
                 "ban": N_("ban"), "unban": N_("unban"), "limits": N_("limits"), "delete": N_("delete"),
                 "report": N_("report"), "hide": N_("hide"), "left": N_("left")}


def audit_detail(action: str, facts: dict, tr: Text) -> str:
    """An audit entry's facts (what ``bot.store.base.audit`` wrote with ``action``) in ``tr``'s language;
    ``""`` for an action that has none (pause, resume)."""
    if "text" in facts:  # an entry from before migration 0013: its English line, as written
        return msg.safe(str(facts["text"]), 120)
    if action == "limits":
        return tr._(", ").join(f"{msg.safe(msg.option_name(tr, key), 40)}={_limit_value(key, value, tr)}"
                               for key, value in (facts.get("changes") or {}).items())
    n = int(facts.get("count") or 0)
    values = dict(job=facts.get("job"), user=msg.user(int(facts.get("author") or facts.get("user") or 0), tr.lang),
                  count=tr.number(n))
    match action:
        case "cancel":
            return tr._("#{job} by {user} ({state})", state=msg.state_name(tr, facts.get("state")), **values)
        case "delete":
            return tr._("#{job} by {user}", **values)
        case "report":
            return tr._("#{job} by {user} ({count} in all)", **values)
        case "hide":
            return tr.ngettext("#{job} by {user} hidden after {count} report",
                               "#{job} by {user} hidden after {count} reports", n, **values)
        case "clear":
            return tr.ngettext("{count} queued morph cancelled", "{count} queued morphs cancelled", n)
        case "left":
            return tr.ngettext("the bot left the server: {count} morph cancelled",
                               "the bot left the server: {count} morphs cancelled", n)
        case "ban":
            return tr._("{user} ({count} queued cancelled)", **values)
        case "unban" if not facts.get("was_banned", True):
            return tr._("{user} (was not banned)", **values)
        case "unban":
            return str(values["user"])
    return ""


def _limit_value(key: str, value: Any, tr: Text) -> str:
    """A changed limit's new value as the admin reads it: ``default``, yes/no, a count of banned words (the
    words stay out of the log), channels as channels, numbers the language's way."""
    if key == "language":
        return language_name(None if value is None else str(value), tr)
    if value is None:
        return tr._("default")
    if isinstance(value, bool):
        return tr._("yes") if value else tr._("no")
    if key == "banned_words":
        return tr.ngettext("{count} word", "{count} words", int(value))
    if key == "cooldown_s":
        return msg.duration(float(value), tr.lang)
    if key == "allowed_channels":
        return tr._(", ").join(f"<#{int(c)}>" for c in value) or tr._("every channel")
    if isinstance(value, (int, float)):
        return tr.number(value)
    return msg.safe(str(value), 60)


def format_audit(entries: list[dict], locale: object = None) -> str:
    """The latest audit entries for ``/morphadmin list`` and ``stats``, in the language of ``locale``."""
    tr = text(locale)
    if not entries:
        return tr._("Audit log: (empty)")
    lines = [tr._("Audit log (newest first):")]
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.get("created_at") or 0))
        where = "" if e.get("guild_id") is not None else " " + tr._("[all servers]")
        actor = tr._("the bot") if e.get("actor_id") == 0 else msg.user(e.get("actor_id"), tr.lang)
        action = str(e.get("action") or "")
        what = tr._(AUDIT_ACTIONS[action]) if action in AUDIT_ACTIONS else msg.safe(action, 40)
        detail = audit_detail(action, e.get("facts") or {}, tr)
        lines.append(f"• {when} UTC {actor} {what}{(': ' + detail) if detail else ''}{where}")
    return "\n".join(lines)

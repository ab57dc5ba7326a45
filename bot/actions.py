"""The use cases behind the slash commands, the components and the reactions: start a job, send a picked
frame, cancel, refine, reroll, delete a result.

One implementation for every way in (``/morph`` and the 🔍/🔁 components start jobs; ``/morph-cancel``, the
❌ button and ``/morphadmin cancel`` cancel; the frame buttons, the frame menu and the 1️⃣..9️⃣ reactions
pick). The cogs and ``bot.views`` only turn Discord events into these calls. :class:`Actions` gets
everything it acts on passed in by the bot (``setup_hook``): the Store, the settings, the bot owners, the
in-process render worker if there is one, and :class:`JobEvents`, through which it tells the front's
delivery (status messages, queue positions) what happened.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import discord

from bot import messages as msg
from bot.db import DatabaseUnavailable
from bot.i18n import text
from bot.interactions import (
    ALREADY_ACKNOWLEDGED,
    DEFER_AFTER_S,
    NO_PINGS,
    deferring,
    ephemeral,
    in_time,
    reply,
    upload_limit_for,
)
from bot.jobs import Expired, Job, Refusal, Refused
from bot.permissions import can_admin, can_manage_job
from bot.recent import RecentIds
from bot.safety import channel_is_nsfw, withheld_frames
from bot.views import JobActions, cancel_view
from morph.request import SEED_MAX, MorphError, RenderRequest

if TYPE_CHECKING:  # pragma: no cover
    from bot.config import Settings
    from bot.jobs import Pick
    from bot.store import Limits, Report
    from bot.worker import Worker

log = logging.getLogger(__name__)


class JobEvents(Protocol):
    """What the front is told about its jobs so that their status messages stay true (:class:`bot.delivery
    .Delivery` implements it). The workers' own changes (progress, results, failures) reach it through the
    database instead."""

    def job_queued(self, job: Job, status_message_id: int, text: str) -> None:
        """``job`` was answered with the status message ``status_message_id`` showing ``text``."""

    async def job_cancelled(self, job: Job, by_user_id: int | None, *, status_answered: bool = False) -> None:
        """``job`` was cancelled by ``by_user_id``. ``status_answered``: its status message was already given
        its final text by an interaction response, which no pending edit may overwrite."""

    def queue_changed(self) -> None:
        """Queue order or a server's pause changed: queued jobs' positions need refreshing."""


class ActionsStore(Protocol):
    """What the use cases use of :class:`bot.store.Store` (it enforces every rule: limits, bans, who may
    act on a job)."""

    async def get(self, job_id: int) -> Job | None: ...

    async def get_limits(self, guild_id: int) -> Limits: ...

    async def is_paused(self, guild_id: int) -> bool: ...

    async def enqueue(self, *, guild_id: int, channel_id: int, user_id: int, request: RenderRequest,
                      upload_limit: int, interaction_token: str | None = ..., application_id: int | None = ...,
                      boomerang: bool = ..., output_format: str | None = ..., parent_id: int | None = ...,
                      reply_to_message_id: int | None = ..., channel_nsfw: bool = ...,
                      guild_locale: object = ..., uploads: Mapping[int, bytes] | None = ...,
                      uploads_from: int | None = ..., now: float | None = ...) -> Job: ...

    async def position(self, job_id: int) -> int | None: ...

    async def set_status_message(self, job_id: int, message_id: int) -> None: ...

    async def withdraw(self, job_id: int, now: float | None = ...) -> bool: ...

    async def pick(self, job_id: int, *, user_id: int, frame: int, source: str = ...,
                   now: float | None = ...) -> Pick: ...

    async def pick_posted(self, job_id: int, *, user_id: int, frame: int, message_id: int) -> None: ...

    async def pick_messages(self, job_id: int) -> list[int]: ...

    async def cancel(self, job_id: int, *, actor_id: int, admin: bool = ..., guild_id: int | None = ...,
                     now: float | None = ...) -> Job: ...

    async def delete_result(self, job_id: int, *, actor_id: int, admin: bool = ..., guild_id: int | None = ...,
                            now: float | None = ...) -> Job: ...

    async def report(self, job_id: int, *, user_id: int, now: float | None = ...) -> Report: ...


def offered_candidates(request: RenderRequest) -> int:
    """Candidates per segment (``RenderRequest.candidates``) so that a result offers at most nine in all: the
    1️⃣..9️⃣ reactions and two rows of buttons. A plain morph or a refine offers 5, a chain of 2 segments 4
    each, of 3 segments 3 each, of 4 segments 2 each."""
    segments = len(request.knots()) - 1
    return max(1, min(RenderRequest.candidates, len(msg.KEYCAPS) // segments))


def pick_text(job: Job, frame: int, picker_id: int, locale: object = None) -> str:
    """The public answer to a pick, in the job's language (``locale`` for a private one)."""
    result = job.rendered()
    candidate = result.candidates.index(frame) + 1 if frame in result.candidates else None
    return msg.pick_text(job.id, frame, result.frame_count, picker_id, candidate,
                         locale=job.language if locale is None else locale)


def frame_file(job_id: int, frame: int, data: bytes) -> discord.File:
    return discord.File(io.BytesIO(data), filename=f"morph-{job_id}-frame-{frame + 1:03d}.png")


class Actions:
    """The use cases, with everything they act on passed in (module docstring)."""

    def __init__(self, store: ActionsStore, settings: Settings, events: JobEvents, *, worker: Worker | None = None,
                 owner_ids: frozenset[int] = frozenset()) -> None:
        self.store = store
        self.settings = settings
        self.events = events
        self.worker = worker  # the render worker of this process; None on a front without one
        self.owner_ids = owner_ids
        self._told_expired = RecentIds()  # result messages whose reaction was answered "expired"

    def is_owner(self, user_id: int) -> bool:
        return user_id in self.owner_ids

    def cancel_render(self, job_id: int) -> None:
        """Stop the render of ``job_id`` early if this process's worker runs it (other processes' workers
        see the cancellation in the database)."""
        if self.worker is not None:
            self.worker.request_cancel(job_id)

    async def own_job(self, interaction: discord.Interaction, job_id: int, token: str, *,
                      message: str = "result") -> Job:
        """The job a component names, if the component really is one of that job's (see ``bot.views``);
        else :class:`~bot.jobs.Refused` "There is no morph #N." (as for an unknown number)."""
        job = await self.store.get(job_id)
        origin = interaction.message.id if interaction.message is not None else None
        if job is None or not job.came_from(guild_id=interaction.guild_id, channel_id=interaction.channel_id,
                                            message_id=origin, token=token, message=message):
            raise Refused(Refusal.NO_JOB, job=job_id)
        return job

    def _acting_guild(self, interaction: discord.Interaction) -> int | None:
        """The guild a job must belong to for the caller to act on it; None (any guild) for a bot owner."""
        return None if self.is_owner(interaction.user.id) else interaction.guild_id

    def _check_may_manage(self, interaction: discord.Interaction, job: Job, action: str) -> None:
        """Refuse (``Refusal.NOT_YOURS``) a caller who is neither the job's author, nor an admin of its guild,
        nor a bot owner; ``action``: ``cancel`` or ``delete``."""
        if not can_manage_job(user_id=interaction.user.id, job_user_id=job.user_id, job_guild_id=job.guild_id,
                              permissions=interaction.permissions, owner_ids=self.owner_ids,
                              caller_guild_id=interaction.guild_id):
            raise Refused(Refusal.NOT_YOURS, job=job.id, action=action)

    # ------------------------------------------------------------------ start a job
    async def start_job(self, interaction: discord.Interaction, request: RenderRequest, *, boomerang: bool = False,
                        output_format: str | None = None, refines: Job | None = None,
                        note: Callable[[str | None], str] | None = None,
                        pictures: Callable[[], Awaitable[dict[int, bytes]]] | None = None,
                        pictures_from: Job | None = None) -> Job | None:
        """Validate, enqueue for ``interaction.user`` and answer publicly with job id, position and ❌ Cancel.

        ``output_format`` None: the server's default. ``note``: a line added to the status message, made for
        the job's language. ``refines``: the job whose result this 🔍 refine was
        asked on (its result message is ``interaction.message``): the new result is posted as a reply to it.

        ``Store.enqueue`` validates the request (``check_request`` with the guild's banned words and frame cap)
        and enforces bans, channel allow-list, per-user/guild/bot limits and the cooldown. Errors are answered
        ephemerally and enqueue nothing. A job whose answer Discord refused is withdrawn (the user saw
        "interaction failed"). Returns the Job or None. Refusals are in the member's language
        (``interaction.locale``), the public status message in the job's (the server's).

        A picture morph (``/morph-images``): ``pictures()`` fetches and checks its uploads (bot.uploads) within
        the same answer, before anything is queued and under the download's own timeout (answering "thinking…"
        while it takes long), not the database's; a refine or reroll takes ``pictures_from``'s instead.
        """
        store = self.store
        tr = text(interaction.locale)
        guild_id, channel_id = interaction.guild_id, interaction.channel_id
        if guild_id is None or channel_id is None:
            await ephemeral(interaction, tr._("❌ Morphs run in servers, not in direct messages."))
            return None

        reply_to = None
        if refines is not None:
            reply_to = interaction.message.id if interaction.message is not None else refines.result_message_id

        uploads, defer_after_s = None, DEFER_AFTER_S
        if pictures is not None:  # downloads under their own timeout, not the database's (in_time)
            try:
                uploads, defer_after_s = await deferring(interaction, pictures())
            except MorphError as err:
                await ephemeral(interaction, msg.error_text(err, interaction.locale))
                return None

        async def enqueue():
            job = await store.enqueue(guild_id=guild_id, channel_id=channel_id,
                                      user_id=interaction.user.id, request=request,
                                      upload_limit=upload_limit_for(interaction),
                                      interaction_token=interaction.token,
                                      application_id=interaction.application_id, boomerang=boomerang,
                                      output_format=output_format,
                                      parent_id=refines.id if refines is not None else None,
                                      reply_to_message_id=reply_to, guild_locale=interaction.guild_locale,
                                      channel_nsfw=channel_is_nsfw(interaction.channel), uploads=uploads,
                                      uploads_from=pictures_from.id if pictures_from is not None else None)
            return job, await store.position(job.id), await store.is_paused(job.guild_id)

        try:
            job, position, paused = await in_time(interaction, enqueue(), defer_after_s=defer_after_s)
        except MorphError as err:
            await ephemeral(interaction, msg.error_text(err, interaction.locale))
            return None
        base = msg.queued_text(job.id, job.request, interaction.user.id, position, paused, locale=job.language)
        shown = msg.clip(base + "\n" + note(job.language)) if note else base
        try:
            message_id = await reply(interaction, shown, view=cancel_view(job))
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
        try:
            await store.set_status_message(job.id, message_id)
        except DatabaseUnavailable:  # the job stands (the member saw "queued"); its result is posted all the same
            log.warning("job %s: the database went away before its status message was recorded", job.id)
            return job
        self.events.job_queued(job, message_id, base)
        log.info("job %s queued by %s in guild %s (position %s)", job.id, interaction.user.id, guild_id, position)
        return job

    async def _job_and_limits(self, interaction: discord.Interaction, job_id: int,
                              token: str) -> tuple[Job, Limits] | None:
        """The component's job (:meth:`own_job`) and its server's limits; None when refused (the clicker was
        told why)."""
        try:
            job = await self.own_job(interaction, job_id, token)
            return job, await self.store.get_limits(job.guild_id)
        except MorphError as err:
            await ephemeral(interaction, msg.error_text(err, interaction.locale))
            return None

    async def refine(self, interaction: discord.Interaction, job_id: int, token: str, gap: int) -> None:
        """🔍 Refine: the gap after frame ``gap`` (0-based) is rendered again with more frames
        (``MORPH_DEFAULT_FRAMES``, at most the server's cap) over exactly the path between the two frames, with
        the same prompts, seed and settings: the new job's first and last frames are those two frames. Queued
        for the clicker under the limits and bans of /morph; its result replies to this result."""
        found = await self._job_and_limits(interaction, job_id, token)
        if found is None:
            return
        job, limits = found
        ts = job.result.ts if job.result is not None else ()
        if not 0 <= gap < len(ts) - 1:
            await ephemeral(interaction, text(interaction.locale)._(
                "❌ Morph #{job} has no frames {first} and {second} to refine between.", job=job.id, first=gap + 1,
                second=gap + 2))
            return
        if {gap, gap + 1} & withheld_frames(job.safety):
            refused = Refused(Refusal.WITHHELD_GAP, job=job.id, first=gap + 1, second=gap + 2)
            await ephemeral(interaction, msg.error_text(refused, interaction.locale))
            return
        request = job.request.refine(ts[gap], ts[gap + 1], limits.capped_frames(self.settings.default_frames))
        request.candidates = offered_candidates(request)

        def note(locale: str | None) -> str:
            tr = text(locale)
            return tr._("🔍 Refine of job #{job}: {frames} from its frame {first} to frame {second}; the result comes "
                        "as a reply to it.", job=job.id, first=gap + 1, second=gap + 2,
                        frames=tr.ngettext("{count} frame", "{count} frames", request.frames))
        await self.start_job(interaction, request, boomerang=job.boomerang, output_format=job.format, refines=job,
                             note=note, pictures_from=job)

    async def reroll(self, interaction: discord.Interaction, job_id: int, token: str) -> None:
        """🔁 The same prompts with a new random seed, queued for the clicker (frames lowered to the server's cap)."""
        found = await self._job_and_limits(interaction, job_id, token)
        if found is None:
            return
        job, limits = found
        if withheld_frames(job.safety):
            refused = Refused(Refusal.WITHHELD_REROLL, job=job.id)
            await ephemeral(interaction, msg.error_text(refused, interaction.locale))
            return
        request = dataclasses.replace(job.request, seed=random.randint(0, SEED_MAX), seed_b=None,
                                      frames=limits.capped_frames(job.request.frames))
        lowered = request.frames < job.request.frames
        cap = limits.max_frames

        def note(locale: str | None) -> str:
            tr = text(locale)
            line = tr._("🔁 Reroll of job #{job} with seed {seed}.", job=job_id, seed=request.seed)
            if lowered:
                line += " " + tr._("Frames lowered to this server's limit of {cap}.", cap=cap)
            return line
        await self.start_job(interaction, request, boomerang=job.boomerang, output_format=job.format, note=note,
                             pictures_from=job)

    # ------------------------------------------------------------------ picks
    async def send_pick(self, interaction: discord.Interaction, job_id: int, token: str, frame: int,
                        source: str = "button") -> None:
        """Reply publicly with the full-size PNG of ``frame`` (0-based) of the job, naming who picked it.

        ``Store.pick`` records the pick and refuses unknown/expired/deleted jobs, frames out of range, banned
        users and picks in quick succession; a repeat of one's own pick is answered privately.
        """
        async def pick():
            job = await self.own_job(interaction, job_id, token)
            return job, await self.store.pick(job.id, user_id=interaction.user.id, frame=frame, source=source)

        try:
            job, picked = await in_time(interaction, pick())
        except MorphError as err:
            await ephemeral(interaction, msg.error_text(err, interaction.locale))
            return
        # a repeat is answered privately, in the member's language; a new pick publicly, in the server's
        locale = interaction.locale if picked.repeat else None
        posted = await reply(interaction, pick_text(job, frame, interaction.user.id, locale), private=picked.repeat,
                             file=frame_file(job.id, frame, picked.data))
        if not picked.repeat and posted is not None:
            await self._remember_pick(job, interaction.user.id, frame, posted)

    async def pick_by_reaction(self, channel: discord.abc.Messageable, message: discord.Message, *, job_id: int,
                               guild_id: int | None, channel_id: int, user_id: int, n: int) -> None:
        """The ``n``-th (0-based) 1️⃣..9️⃣ reaction of ``user_id`` on ``message``, a result message of this bot
        naming ``job_id``: post that candidate as a reply (as the buttons do).

        The job must have been posted as that very message. Reactions cannot be answered privately, so
        nothing but a pick is ever posted: refusals (ban, too fast) and repeats are only logged, and an
        expired result says so once."""
        job = await self.store.get(job_id)
        if job is None or (job.guild_id, job.channel_id, job.result_message_id) != (guild_id, channel_id, message.id):
            return  # e.g. a result of an earlier database whose job number is taken by another job now
        candidates = job.result.candidates if job.result is not None else ()
        if n >= len(candidates):
            return
        frame = candidates[n]
        reference = message.to_reference(fail_if_not_exists=False)
        try:
            picked = await self.store.pick(job.id, user_id=user_id, frame=frame, source="reaction")
        except Expired as err:
            if message.id not in self._told_expired:
                self._told_expired.add(message.id)
                await channel.send(msg.error_text(err, job.language), reference=reference, allowed_mentions=NO_PINGS)
            return
        except MorphError as err:
            log.info("reaction pick of %s on job %s refused: %s", user_id, job.id, err)
            return
        if picked.repeat:
            log.info("reaction pick of %s on job %s repeats frame %d; not posted again", user_id, job.id, frame)
            return
        posted = await channel.send(pick_text(job, frame, user_id), file=frame_file(job.id, frame, picked.data),
                                    reference=reference, allowed_mentions=NO_PINGS)
        await self._remember_pick(job, user_id, frame, posted.id)

    async def _remember_pick(self, job: Job, user_id: int, frame: int, message_id: int) -> None:
        """Keep the message a pick was posted as, for :meth:`_remove_picks`; the pick is posted either way."""
        try:
            await self.store.pick_posted(job.id, user_id=user_id, frame=frame, message_id=message_id)
        except DatabaseUnavailable as err:  # the pick stays posted, only untracked
            log.warning("could not record pick message %s of job %s: %s", message_id, job.id, err)

    async def _remove_picks(self, client: discord.Client, job: Job) -> None:
        """Delete the picks' pictures of a result that was deleted or hidden (replies in the result's channel)."""
        try:
            messages = await self.store.pick_messages(job.id)
        except DatabaseUnavailable as err:
            log.warning("could not read the pick messages of job %s: %s", job.id, err)
            return
        channel = client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        for message_id in messages:
            try:
                await channel.get_partial_message(message_id).delete()
            except discord.NotFound:
                pass
            except discord.HTTPException as err:
                log.warning("could not delete pick message %s of job %s: %s", message_id, job.id, err)

    # ------------------------------------------------------------------ cancel, delete
    async def cancel_job(self, interaction: discord.Interaction, job_id: int, *, token: str | None = None,
                         from_button: bool = False) -> None:
        """Cancel ``job_id`` for its author, an admin of its guild, or a bot owner; update its status message.
        ``from_button``: the ❌ button on the job's status message (which must be that job's, see
        :meth:`own_job`)."""
        try:
            found = await (self.own_job(interaction, job_id, token or "", message="status") if from_button
                           else self.store.get(job_id))
            if found is None:
                raise Refused(Refusal.NO_JOB, job=job_id)
            self._check_may_manage(interaction, found, "cancel")
            job = await self.store.cancel(job_id, actor_id=interaction.user.id,
                                          admin=interaction.user.id != found.user_id,
                                          guild_id=self._acting_guild(interaction))
        except MorphError as err:
            await ephemeral(interaction, msg.error_text(err, interaction.locale))
            return
        tr = text(interaction.locale)
        self.cancel_render(job_id)
        if (from_button and interaction.message is not None and interaction.message.id == job.status_message_id
                and not interaction.response.is_done()):
            # the answer below is the status message's final text: no pending progress edit may overwrite it
            await self.events.job_cancelled(job, interaction.user.id, status_answered=True)
            await interaction.response.edit_message(content=msg.cancelled_text(job_id, interaction.user.id,
                                                                               locale=job.language),
                                                    view=None, allowed_mentions=NO_PINGS)
        else:
            await ephemeral(interaction, tr._("🚫 Cancelled morph job #{job}.", job=job_id))
            await self.events.job_cancelled(job, interaction.user.id)
        log.info("job %s cancelled by %s", job_id, interaction.user.id)

    async def admin_cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        """``/morphadmin cancel``: any queued or rendering job of the caller's server (of any server for a bot
        owner); the caller's admin rights were checked by the command."""
        tr = text(interaction.locale)
        try:  # the store refuses a job that does not exist or belongs to another server
            cancelled = await self.store.cancel(job_id, actor_id=interaction.user.id, admin=True,
                                                guild_id=self._acting_guild(interaction))
        except MorphError as err:
            await ephemeral(interaction, msg.error_text(err, interaction.locale))
            return
        self.cancel_render(job_id)
        await self.jobs_cancelled([cancelled], interaction.user.id)
        await ephemeral(interaction, tr._("🚫 Cancelled morph job #{job} of {user}.", job=job_id,
                                          user=msg.user(cancelled.user_id, tr.lang)))

    async def jobs_cancelled(self, jobs, actor_id: int) -> None:
        """Tell delivery that ``jobs``, as the store returned them from an admin's cancel, clear or ban, are
        cancelled now (their status messages say so)."""
        for job in jobs:
            await self.events.job_cancelled(job, actor_id)
        self.events.queue_changed()

    async def delete_result(self, interaction: discord.Interaction, job_id: int, token: str) -> None:
        """Delete a result's frames, its message and its picks' pictures, for the author, an admin of its guild
        or a bot owner."""
        try:
            job = await self.own_job(interaction, job_id, token)
            self._check_may_manage(interaction, job, "delete")
        except MorphError as err:
            await ephemeral(interaction, msg.error_text(err, interaction.locale))
            return
        tr = text(interaction.locale)
        try:
            await self.store.delete_result(job_id, actor_id=interaction.user.id,
                                           admin=interaction.user.id != job.user_id,
                                           guild_id=self._acting_guild(interaction))
        except MorphError as err:
            if job.deleted_at is None:  # "already deleted" is fine: remove the message anyway
                await ephemeral(interaction, msg.error_text(err, interaction.locale))
                return
        await ephemeral(interaction, tr._("🗑️ Deleted the result of morph job #{job}.", job=job_id))
        if interaction.message is not None:
            try:
                await interaction.message.delete()
            except discord.NotFound:
                pass
            except discord.HTTPException as err:  # e.g. a result posted through the followup webhook
                log.warning("could not delete result message %s of job %s: %s", interaction.message.id,
                            job_id, err)
                await ephemeral(interaction, tr._("The frames are deleted, but Discord did not let the bot remove "
                                                  "the message; a server admin can delete it."))
        await self._remove_picks(interaction.client, job)
        log.info("result of job %s deleted by %s", job_id, interaction.user.id)

    # ------------------------------------------------------------------ reports (bot.safety)
    async def report_result(self, interaction: discord.Interaction, job_id: int, token: str) -> None:
        """🚩 Report: any member of the server reports the result to its admins, once (a repeat is answered,
        not counted). When the server's ``report_hide_after`` is reached the message and its picks' pictures
        are deleted (the audit log keeps the reports and the hiding)."""
        async def report():
            job = await self.own_job(interaction, job_id, token)
            return job, await self.store.report(job.id, user_id=interaction.user.id)

        try:
            job, done = await in_time(interaction, report())
        except MorphError as err:
            await ephemeral(interaction, msg.error_text(err, interaction.locale))
            return
        await ephemeral(interaction, msg.report_thanks_text(job.id, repeat=not done.new, locale=interaction.locale))
        log.info("job %s reported by %s (%d report(s))%s", job.id, interaction.user.id, done.reports,
                 "; hidden" if done.hide else "")
        if done.hide and interaction.message is not None:
            channel = interaction.message.channel
            try:
                await interaction.message.delete()
                await channel.send(msg.report_hidden_text(job.id, done.reports, locale=job.language),
                                   allowed_mentions=NO_PINGS)
            except discord.HTTPException as err:
                log.warning("could not hide the result message of job %s: %s", job.id, err)
            await self._remove_picks(interaction.client, job)

    async def admin_delete_result(self, interaction: discord.Interaction, job_id: int) -> None:
        """``/morphadmin delete``: an admin of the job's server (or a bot owner) deletes a result: its frames,
        its message and its picks' pictures. Audited."""
        tr = text(interaction.locale)
        job = await self.store.get(job_id)
        if job is None or not can_admin(user_id=interaction.user.id, permissions=interaction.permissions,
                                        owner_ids=self.owner_ids, caller_guild_id=interaction.guild_id,
                                        target_guild_id=job.guild_id):
            await ephemeral(interaction, msg.error_text(Refused(Refusal.NO_JOB, job=job_id), interaction.locale))
            return
        try:
            await self.store.delete_result(job_id, actor_id=interaction.user.id, admin=True,
                                           guild_id=self._acting_guild(interaction))
        except MorphError as err:
            if job.deleted_at is None:
                await ephemeral(interaction, msg.error_text(err, interaction.locale))
                return
        note = ""
        if job.result_message_id is not None:
            channel = interaction.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
            try:
                await channel.get_partial_message(job.result_message_id).delete()
            except discord.NotFound:
                pass
            except discord.HTTPException as err:
                log.warning("could not delete result message of job %s: %s", job_id, err)
                note = " " + tr._("Discord did not let the bot remove its message; delete it by hand.")
        await self._remove_picks(interaction.client, job)
        await ephemeral(interaction, tr._("🗑️ Deleted the result of morph job #{job}.", job=job_id) + note)


if TYPE_CHECKING:  # pragma: no cover
    def _components_can_call(actions: Actions) -> JobActions:
        """Not run: mypy checks here that :class:`Actions` offers what ``bot.views``' components call."""
        return actions

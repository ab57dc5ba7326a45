"""Everything the bot tells Discord about a job after the /morph reply: :class:`Delivery`.

It watches the database (the render workers only write there) and, for the jobs of this front's shards,
edits each job's status message (queue position, render progress, outcome; through
:class:`bot.status_editor.StatusEditor`) and posts each rendered result exactly once, also across crashes
and lost answers. The design (states, leases, nonces, the history check, retries) is in ``docs/delivery.md``.
"""
from __future__ import annotations

import asyncio
import io
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import discord

from bot import messages as msg
from bot.aio import quietly, wait_event
from bot.artifacts import GIF_FILE, MP4_FILE, SHEET_FILE
from bot.db import JOBS_CHANNEL, log_failure
from bot.interactions import NO_PINGS
from bot.jobs import DEFAULT_UPLOAD_LIMIT, JobState
from bot.safety import withheld_note
from bot.status_editor import EDIT_INTERVAL_S, StatusEditor, StatusTarget
from bot.views import result_view

if TYPE_CHECKING:  # pragma: no cover
    from bot.artifacts import Artifacts
    from bot.config import Settings
    from bot.db import Database
    from bot.jobs import Job

log = logging.getLogger(__name__)

HISTORY_LIMIT = 50
POLL_S = 5.0
#: How often the watcher looks at running and failed jobs without being notified.
WATCH_S = 1.0
#: A result waits this long for its /morph answer to be confirmed (status message stored) before it is
#: posted anyway: if the answer fails (Discord's 3 s window), the user saw "interaction failed" and the
#: job is withdrawn instead of being posted behind their back. Older jobs without one (a crash between
#: enqueue and answer) are posted.
ANSWER_GRACE_S = 10.0
MAX_DELIVERY_ATTEMPTS = 10
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 600.0
#: Discord lets a bot edit about 5 messages per 5 s per channel, one bucket for every message of the
#: channel (interaction-webhook edits have their own bucket per token, but tokens die after 15 min).
#: Queue positions use at most half of it: after n position edits with the bot token in one channel,
#: the next refresh waits n times this, so progress and result edits are not stuck behind them.
POSITION_EDIT_SPACING_S = 2.0



class DeliveryStore(Protocol):
    """What delivery uses of :class:`bot.store.Store`: posting rendered jobs and failures once, and reading
    jobs, their files and the queue."""

    @property
    def db(self) -> Database: ...

    @property
    def artifacts(self) -> Artifacts: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    async def get(self, job_id: int) -> Job | None: ...

    async def running(self, worker_id: str | None = ...) -> list[Job]: ...

    async def queued_positions(self) -> list[tuple[Job, int, bool]]: ...

    async def jobs_to_deliver(self, now: float | None = ..., *, ignore_backoff: bool = ...) -> list[Job]: ...

    async def next_retry_at(self, now: float | None = ...) -> float | None: ...

    async def take_delivery(self, job_id: int, *, force: bool = ..., now: float | None = ...) -> Job | None: ...

    async def mark_delivered(self, job_id: int, message_id: int | None, now: float | None = ...) -> bool: ...

    async def delivery_failed(self, job_id: int, error: str, retry_in: float | None,
                              now: float | None = ...) -> Job: ...

    async def failures_to_show(self) -> list[Job]: ...

    async def take_failure(self, job_id: int, now: float | None = ...) -> bool: ...

    async def sync_clock(self) -> None: ...


class DeliveryError(Exception):
    """A delivery problem retrying cannot fix (file too large, artifacts gone, …)."""


def result_nonce(job_id: int) -> str:
    """The nonce of a job's result message (Discord allows 25 characters)."""
    return f"morph-job-{int(job_id)}"[:25]


def backoff_s(attempt: int, *, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S,
              jitter: float = 0.25) -> float:
    """Delay before retry number ``attempt`` (1-based): base·2^(n-1), capped, ± ``jitter`` fraction."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay * (1 + random.uniform(-jitter, jitter))


def is_retryable(err: BaseException) -> bool:
    """Discord 5xx/429, connection problems and timeouts: worth retrying later."""
    if isinstance(err, discord.HTTPException) and not isinstance(err, (discord.Forbidden, discord.NotFound)):
        return err.status >= 500 or err.status == 429
    return isinstance(err, (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, OSError,
                            discord.GatewayNotFound))


class Delivery:
    """The loops that show jobs' progress and outcomes and post rendered results (module docstring).

    Also the front's :class:`bot.actions.JobEvents`: the use cases tell it what they did to a job.
    ``owns_guild``: whether a guild's jobs are this front's (its Discord shards; default: every guild)."""

    def __init__(self, bot: discord.Client, store: DeliveryStore, settings: Settings, *, poll_s: float = POLL_S,
                 edit_interval: float = EDIT_INTERVAL_S, watch_s: float = WATCH_S,
                 owns_guild: Callable[[int | None], bool] = lambda guild_id: True) -> None:
        self.bot = bot
        self.owns_guild = owns_guild
        self.store = store
        self.settings = settings
        self.poll_s = poll_s
        self.watch_s = watch_s
        self.editor = StatusEditor(bot, edit_interval, clock=store.clock)
        self._status: dict[int, StatusTarget] = {}  # job id -> its status message
        self._queued_text: dict[int, str] = {}  # last position text per queued job (skip equal edits)
        self._shown: dict[int, str] = {}  # last progress text per running job (skip equal edits)
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._positions_dirty = asyncio.Event()
        self.positions_pause = edit_interval  # seconds before the next position refresh may run
        self._tasks: list[asyncio.Task] = []
        self._lock = asyncio.Lock()  # one delivery at a time in this process

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the watcher, delivery and queue-position loops."""
        self.store.db.subscribe(JOBS_CHANNEL, self._jobs_changed)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._deliver_loop(), name="morph-delivery"),
                       loop.create_task(self._watch_loop(), name="morph-watch"),
                       loop.create_task(self._positions_loop(), name="morph-positions")]
        self.queue_changed()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._tasks = []
        await self.editor.drain(timeout=3)
        self.editor.cancel()

    def wake(self) -> None:
        """Look for deliverable jobs now."""
        self._wake.set()

    def queue_changed(self) -> None:
        """Queue order changed: refresh the position shown on queued jobs' status messages (throttled)."""
        self._positions_dirty.set()

    def _jobs_changed(self) -> None:
        self._changed.set()
        self._wake.set()
        self._positions_dirty.set()

    def _mine(self, job) -> bool:
        return self.owns_guild(job.guild_id)

    # ------------------------------------------------------------------ what the front did (JobEvents)
    def job_queued(self, job, status_message_id: int, text: str) -> None:
        """Note the new job's status message and the text it was posted with (so no identical edit follows);
        positions move, and a fast render may be waiting for this answer before it is posted."""
        self._status[job.id] = StatusTarget.of(job, status_message_id)
        self._queued_text[job.id] = text
        self.queue_changed()
        self.wake()

    async def job_cancelled(self, job, by_user_id: int | None, *, status_answered: bool = False) -> None:
        """Show the cancellation on the job's status message, unless an interaction response already did
        (``status_answered``): then no pending edit may overwrite it."""
        if status_answered and job.status_message_id is not None:
            self.editor.finalize(job.status_message_id)
        else:
            await self.show_cancelled(job, by_user_id)
        self._queued_text.pop(job.id, None)
        self.queue_changed()

    # ------------------------------------------------------------------ what the workers did
    async def _watch_loop(self) -> None:
        await self.bot.wait_until_ready()
        while True:
            self._changed.clear()
            try:
                await self.show_changes()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - logged; the loop goes on
                log_failure(log, "could not show the workers' changes", err)
            await wait_event(self._changed, self.watch_s)

    async def show_changes(self) -> None:
        """Show the progress of this front's running jobs (when it changed) and every failure not shown yet."""
        running = {job.id: job for job in await self.store.running() if self._mine(job)}
        for job_id in [j for j in self._shown if j not in running]:
            self._shown.pop(job_id)
        for job in running.values():
            p = job.progress
            text = msg.rendering_text(job.id, job.request, job.user_id, p,
                                      p.eta_s if p else None, locale=job.language)
            if self._shown.get(job.id) != text:
                self._shown[job.id] = text
                self._queued_text.pop(job.id, None)
                await self._edit_status(job, content=text)
        for job in await self.store.failures_to_show():
            if self._mine(job) and await self.store.take_failure(job.id):
                await self.show_failure(job)

    async def show_failure(self, job) -> None:
        """Show the failure (with the job id) on the status message, or in the channel if that cannot be.
        A job the safety filter withheld is shown by :meth:`show_withheld` instead."""
        if job.state == JobState.WITHHELD:
            await self.show_withheld(job)
            return
        self.queue_changed()
        text = msg.failed_text(job.id, job.error, locale=job.language)

        async def post_in_channel():
            channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
            await channel.send(text, allowed_mentions=NO_PINGS)

        if not await self._edit_status(job, final=True, fallback=post_in_channel, content=text, view=None):
            await quietly(post_in_channel(), f"telling channel {job.channel_id} that job {job.id} failed")

    async def show_withheld(self, job) -> None:
        """A job the safety filter kept from its channel (:mod:`bot.safety`): its public status message says
        only "withheld by the safety filter"; the author is told privately what happened.

        Privately means: an ephemeral followup of the author's /morph interaction while its token lives
        (15 minutes; it reaches them in the channel, seen by nobody else, and needs no open DMs), else a
        direct message (renders that waited longer in the queue). A closed DM is logged, not retried: the
        public status message already says the job was withheld."""
        self.queue_changed()
        text = msg.withheld_status_text(job.id, locale=job.language)

        async def post_in_channel():
            channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
            await channel.send(text, allowed_mentions=NO_PINGS)

        if not await self._edit_status(job, final=True, fallback=post_in_channel, content=text, view=None):
            await quietly(post_in_channel(), f"telling channel {job.channel_id} that job {job.id} was withheld")
        outcome = job.safety
        flagged, total = (len(outcome.flagged), outcome.frame_count) if outcome is not None else (0, 0)
        # the author's own locale is not known here (no interaction): the job's language, like its public posts
        private = msg.withheld_author_text(job.id, job.request, flagged, total, locale=job.language)
        if job.application_id and job.interaction_alive(self.store.clock() + 5):
            webhook = discord.Webhook.partial(int(job.application_id), job.interaction_token, client=self.bot)
            # an interaction's followup webhook is an application webhook, the only kind that sends ephemerally
            webhook.type = discord.WebhookType.application
            try:
                await webhook.send(private, ephemeral=True, allowed_mentions=NO_PINGS)
                return
            except discord.HTTPException as err:
                log.info("job %s: could not tell the author through the interaction (%s); trying a DM", job.id, err)
        try:
            author = await self.bot.fetch_user(job.user_id)
            await author.send(private, allowed_mentions=NO_PINGS)
        except discord.HTTPException as err:
            log.info("job %s: could not tell author %s by DM that it was withheld: %s", job.id, job.user_id, err)

    async def show_cancelled(self, job, by_user_id: int | None) -> None:
        await self._edit_status(job, final=True, content=msg.cancelled_text(job.id, by_user_id, locale=job.language),
                                view=None)

    # ------------------------------------------------------------------ status message
    async def _status_of(self, job) -> StatusTarget | None:
        if job.id in self._status:
            return self._status[job.id]
        if job.status_message_id is None:  # the worker may hold a copy from before the reply was stored
            job = await self.store.get(job.id) or job
        if job.status_message_id is None:
            return None
        self._status[job.id] = StatusTarget.of(job, job.status_message_id)
        return self._status[job.id]

    async def _edit_status(self, job, *, final: bool = False, fallback=None, **fields) -> bool:
        target = await self._status_of(job)
        if target is None:
            return False
        self.editor.edit(target, final=final, fallback=fallback, **fields)
        if final:  # nothing more to say about this job
            self._status.pop(job.id, None)
            self._queued_text.pop(job.id, None)
        return True

    async def _positions_loop(self) -> None:
        """Keep 'position N in the queue' current on every queued job's status message."""
        while True:
            await wait_event(self._positions_dirty, 60)  # also every minute: other processes share the queue
            self._positions_dirty.clear()
            try:
                await self.refresh_positions()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - logged; the loop goes on
                log_failure(log, "could not refresh queue positions", err)
            await asyncio.sleep(self.positions_pause)

    async def refresh_positions(self) -> int:
        """Edit the status of queued jobs whose position text changed; returns how many edits were asked.

        Sets :attr:`positions_pause` (see :data:`POSITION_EDIT_SPACING_S`): the more bot-token edits one
        channel just got, the longer until the next refresh (positions then jump by several at once)."""
        asked = 0
        bot_token_edits: dict[int, int] = {}  # channel id -> edits that need the bot token
        now = self.store.clock()
        for job, position, paused in await self.store.queued_positions():
            if (job.status_message_id is None and job.id not in self._status) or not self._mine(job):
                continue
            text = msg.queued_text(job.id, job.request, job.user_id, position, paused, locale=job.language)
            if self._queued_text.get(job.id) == text:
                continue
            self._queued_text[job.id] = text
            await self._edit_status(job, content=text)
            asked += 1
            target = self._status.get(job.id)
            if target is not None and not target.webhook_usable(now):
                bot_token_edits[job.channel_id] = bot_token_edits.get(job.channel_id, 0) + 1
        self.positions_pause = max(self.editor.interval,
                                   POSITION_EDIT_SPACING_S * max(bot_token_edits.values(), default=0))
        return asked

    # ------------------------------------------------------------------ result delivery
    async def _deliver_loop(self) -> None:
        await self.bot.wait_until_ready()
        first = True
        while True:
            self._wake.clear()
            try:
                await self.store.sync_clock()
                # at start-up every rendered job of this front's shards, whatever its retry time: the
                # process that was posting it (this front's previous run) is gone
                for job in await self.store.jobs_to_deliver(ignore_backoff=first):
                    if self._mine(job):
                        await self.deliver(job, force=first)
                first = False
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - logged; the loop goes on
                log_failure(log, "delivery loop error", err)
            await wait_event(self._wake, await self._sleep_s())

    async def _sleep_s(self) -> float:
        """Until the next delivery retry is due (so a retry comes when the log said), at most ``poll_s``
        (workers of other processes render without waking this loop when the database cannot notify)."""
        try:
            due = await self.store.next_retry_at()
        except Exception as err:  # noqa: BLE001 - logged; the loop goes on
            log_failure(log, "could not read the next delivery retry time", err)
            due = None
        return self.poll_s if due is None else min(self.poll_s, max(0.0, due - self.store.clock()))

    async def deliver(self, job, *, force: bool = False) -> str:
        """Post ``job``'s result once. Returns 'delivered', 'retry', 'failed', or why nothing was done.
        ``force``: take it even while its retry time (or another post's lease) has not come."""
        async with self._lock:
            fresh = await self.store.get(job.id)
            if fresh is None or fresh.state != JobState.RENDERED or fresh.deleted_at is not None:
                return "failed" if fresh is None else fresh.state
            if fresh.status_message_id is None and self.store.clock() - fresh.created_at < ANSWER_GRACE_S:
                return "retry"  # its /morph answer may still fail; then start_job withdraws the job
            taken = await self.store.take_delivery(job.id, force=force)
            if taken is None:
                return "taken"  # another front is posting it
            return await self._deliver(taken)

    async def _deliver(self, job) -> str:
        channel = self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        content = msg.result_text(job.id, job.request, job.user_id, job.rendered(), refined_from=job.parent_id,
                                  note=withheld_note(job.safety, job.language), locale=job.language)
        via = "channel"
        try:
            message = await self._already_posted(channel, job.id)
            if message is not None:
                log.info("job %s was already posted as message %s; adopting it", job.id, message.id)
            else:
                files = await self._files(job)
                reply: dict[str, Any] = {}
                if job.reply_to_message_id:  # a 🔍 refine answers the result it refines (if still there)
                    reply["reference"] = channel.get_partial_message(job.reply_to_message_id).to_reference(
                        fail_if_not_exists=False)
                message = await channel.send(content, files=files, embed=self._embed(job, files),
                                             view=result_view(job), allowed_mentions=NO_PINGS,
                                             nonce=result_nonce(job.id), **reply)
        except discord.Forbidden as err:
            via = "followup"
            try:
                message = await self._followup(job, content, err)
            except Exception as err2:  # noqa: BLE001
                return await self._failed_delivery(job, err2)
        except Exception as err:  # noqa: BLE001
            return await self._failed_delivery(job, err)
        await self.store.mark_delivered(job.id, message.id)
        log.info("job %s delivered via %s as message %s", job.id, via, message.id)
        await self._add_reactions(message, len(job.rendered().candidates))
        link = f"https://discord.com/channels/{job.guild_id or '@me'}/{job.channel_id}/{message.id}"
        await self._edit_status(job, final=True, view=None,
                                content=msg.delivered_text(job.id, job.request, job.user_id, link,
                                                           locale=job.language))
        return "delivered"

    async def _failed_delivery(self, job, err: BaseException) -> str:
        reason = _describe(err)
        attempt = int(job.delivery_attempts or 0) + 1  # persisted: the backoff survives restarts
        if is_retryable(err) and attempt < MAX_DELIVERY_ATTEMPTS:
            retry_in = backoff_s(attempt)
            log.warning("delivery of job %s failed (%s); retry %d in %.1f s", job.id, reason, attempt, retry_in)
            await self.store.delivery_failed(job.id, reason, retry_in)
            return "retry"
        log.error("delivery of job %s failed for good: %s", job.id, reason)
        failed = await self.store.delivery_failed(job.id, f"could not post the result: {reason}", None)
        if await self.store.take_failure(job.id):
            await self.show_failure(failed)
        return "failed"

    async def _already_posted(self, channel, job_id: int):
        """This bot's result message for ``job_id`` among the channel's recent messages, or None."""
        me = self.bot.user.id if self.bot.user else None
        try:
            async for message in channel.history(limit=HISTORY_LIMIT):
                if message.author.id != me:
                    continue
                m = msg.RESULT_MARKER_RE.match(message.content or "")
                if m and int(m.group(1)) == job_id:
                    return message
        except discord.Forbidden:
            log.warning("no Read Message History in channel %s: cannot check for an earlier post of job %s",
                        channel.id, job_id)
        return None

    def _embed(self, job, files: list[discord.File]) -> discord.Embed | discord.utils.MISSING:
        """The contact sheet shown large in an embed (needs Embed Links), when it is attached."""
        sheet = next((f.filename for f in files if f.filename.endswith("-sheet.png")), None)
        if sheet is None:
            return discord.utils.MISSING
        embed = discord.Embed(title=msg.sheet_caption(job.rendered(), job.language))
        embed.set_image(url=f"attachment://{sheet}")
        return embed

    async def _files(self, job) -> list[discord.File]:
        """The animation files the worker made (MP4 first, then GIF) + sheet.png when it fits ``job.upload_limit``
        too; the animations alone when only they fit."""
        stored = {"mp4": MP4_FILE, "gif": GIF_FILE}
        files, total = [], 0
        for kind in job.rendered().files:
            data = await self.store.artifacts.read(job, stored[kind])
            if data is None:
                raise DeliveryError(f"the rendered {kind.upper()} of job #{job.id} is missing (artifacts purged?)")
            files.append(discord.File(io.BytesIO(data), filename=f"morph-{job.id}.{kind}"))
            total += len(data)
        limit = int(job.upload_limit or DEFAULT_UPLOAD_LIMIT)
        if total > limit:
            raise DeliveryError(f"the animation is {total / 2**20:.1f} MiB, over this server's upload limit "
                                f"of {limit / 2**20:.1f} MiB")
        sheet = await self.store.artifacts.read(job, SHEET_FILE)
        if sheet is not None and total + len(sheet) <= limit:
            files.append(discord.File(io.BytesIO(sheet), filename=f"morph-{job.id}-sheet.png"))
        elif sheet is not None:
            log.info("job %s: contact sheet left out to stay under the upload limit", job.id)
        return files

    async def _followup(self, job, content: str, forbidden: discord.Forbidden):
        """Post through the interaction's followup webhook (needs no channel permission) while it lives."""
        now = self.store.clock() + 5  # the store's clock: the one the expiry was computed with
        if not job.application_id or not job.interaction_alive(now):
            raise DeliveryError(f"the bot may not post in this channel ({forbidden.text or 'Missing Permissions'}) "
                                "and the /morph interaction has expired; give the bot Send Messages and "
                                "Attach Files here")
        log.warning("job %s: no permission to post in channel %s; using the interaction followup",
                    job.id, job.channel_id)
        webhook = discord.Webhook.partial(int(job.application_id), job.interaction_token, client=self.bot)
        files = await self._files(job)
        return await webhook.send(content, files=files, embed=self._embed(job, files), view=result_view(job),
                                  allowed_mentions=NO_PINGS, wait=True)

    async def _add_reactions(self, message, k: int) -> None:
        for emoji in msg.KEYCAPS[:k]:
            try:
                await message.add_reaction(emoji)
            except discord.HTTPException as err:
                log.warning("could not add reaction %s to message %s: %s", emoji, message.id, err)
                return


def _describe(err: BaseException) -> str:
    if isinstance(err, discord.HTTPException):
        return f"Discord {err.status}: {err.text or type(err).__name__}"
    return str(err) or type(err).__name__

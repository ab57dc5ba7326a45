"""Throttled edits of jobs' status messages (the public /morph replies): :class:`StatusEditor`.

Discord allows about one edit per message every couple of seconds and about five per channel every five
seconds; the editor keeps to the first and merges what it is asked meanwhile, so the newest text wins.
Delivery (``bot/delivery.py``) decides what a status message says; this module only gets it there.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.aio import quietly
from bot.interactions import NO_PINGS
from bot.recent import RecentIds

log = logging.getLogger(__name__)

#: Seconds between two edits of one status message.
EDIT_INTERVAL_S = 2.0


@dataclass
class StatusTarget:
    """Where a job's status message is, and the interaction token that may edit it while it lives."""

    channel_id: int
    message_id: int
    application_id: int | None = None
    token: str | None = None
    expires_at: float | None = None

    @classmethod
    def of(cls, job, message_id: int) -> StatusTarget:
        return cls(job.channel_id, message_id, job.application_id, job.interaction_token,
                   job.interaction_expires_at)

    def webhook_usable(self, now: float) -> bool:
        """True while the interaction token can edit the message (with 30 s to spare); afterwards
        edits need the bot token and share the channel's rate limit."""
        return bool(self.token and self.application_id and (self.expires_at or 0) > now + 30)


class StatusEditor:
    """Throttled edits of status messages: ≤ 1 edit per message per ``interval`` seconds.

    :meth:`edit` never blocks: it records the wanted state (merged over any pending one, so a pending
    ``view=None`` is kept) and one task per message applies it when the interval allows. A ``final``
    edit (done, failed, cancelled) wins over any later non-final edit of the same message.

    The status message is the /morph interaction response. While the interaction token lives (15 min)
    it is edited through the interaction webhook (always allowed); afterwards with the bot token via
    ``PATCH /channels/{c}/messages/{m}``, which Discord allows for a non-ephemeral response in a guild
    the bot is in. If that is refused (403/404), the message is left alone from then on and the edit's
    ``fallback`` (e.g. "post the failure as a new message") runs instead.
    """

    def __init__(self, bot: discord.Client, interval: float = EDIT_INTERVAL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.bot = bot
        self.interval = interval
        self.clock = clock
        self._last: dict[int, float] = {}
        self._pending: dict[int, tuple[StatusTarget, dict, Callable[[], Awaitable] | None]] = {}
        self._final = RecentIds()  # given their last text: no later progress edit
        self._dead = RecentIds()  # deleted, or Discord refuses edits
        self._tasks: dict[int, asyncio.Task] = {}
        self._fallbacks: set[asyncio.Task] = set()  # referenced until done (the loop keeps weak refs)

    def edit(self, target: StatusTarget, *, final: bool = False,
             fallback: Callable[[], Awaitable] | None = None, **fields) -> None:
        message_id = target.message_id
        if message_id in self._dead:  # known uneditable: say it another way, if there is one
            if final and fallback is not None:
                said = asyncio.get_running_loop().create_task(quietly(fallback(), f"fallback for {message_id}"))
                self._fallbacks.add(said)
                said.add_done_callback(self._fallbacks.discard)
            return
        if message_id in self._final and not final:
            return
        if final:
            self._final.add(message_id)
        _, pending, old_fallback = self._pending.get(message_id, (target, {}, None))
        pending.update(fields)
        pending.setdefault("allowed_mentions", NO_PINGS)
        self._pending[message_id] = (target, pending, fallback or old_fallback)
        task = self._tasks.get(message_id)
        if task is None or task.done():
            self._tasks[message_id] = asyncio.get_running_loop().create_task(self._flush(message_id))

    async def _flush(self, message_id: int) -> None:
        while message_id in self._pending:
            wait = self._last.get(message_id, float("-inf")) + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            target, fields, fallback = self._pending.pop(message_id)
            if message_id in self._dead:
                break
            self._last[message_id] = time.monotonic()
            try:
                await self._apply(target, fields)
            except (discord.NotFound, discord.Forbidden) as err:
                log.info("status message %s cannot be edited (%s); leaving it alone", message_id, err)
                self._dead.add(message_id)
                self._pending.pop(message_id, None)
                if fallback is not None:
                    await quietly(fallback(), f"fallback for status message {message_id}")
            except Exception as err:  # noqa: BLE001 - a failed progress edit must not stop anything
                log.warning("could not edit status message %s: %s", message_id, err)
        self._tasks.pop(message_id, None)
        if message_id in self._final:
            self._last.pop(message_id, None)

    async def _apply(self, target: StatusTarget, fields: dict) -> None:
        if target.application_id and target.token and target.webhook_usable(self.clock()):
            webhook = discord.Webhook.partial(int(target.application_id), target.token, client=self.bot)
            try:
                await webhook.edit_message(target.message_id, **fields)
                return
            except discord.HTTPException as err:
                if err.status not in (401, 404):
                    raise
                log.info("interaction token of status message %s no longer works (%s); using the bot token",
                         target.message_id, err.status)
        channel = self.bot.get_partial_messageable(target.channel_id)
        await channel.get_partial_message(target.message_id).edit(**fields)

    def finalize(self, message_id: int) -> None:
        """The message was given its final text elsewhere (e.g. by an interaction response): drop any
        pending edit and ignore later non-final ones."""
        self._final.add(message_id)
        self._pending.pop(message_id, None)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every pending edit is applied (shutdown, tests)."""
        tasks = [t for t in (*self._tasks.values(), *self._fallbacks) if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def cancel(self) -> None:
        for task in (*self._tasks.values(), *self._fallbacks):
            task.cancel()

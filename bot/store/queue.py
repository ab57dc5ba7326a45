"""Submitting jobs and the queue as users see it: enqueue (with every limit), places in the claim order,
a user's jobs, cancelling and withdrawing."""
from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping

from bot.db import QUEUE_CHANNEL
from bot.i18n import language
from bot.jobs import ACTIVE_STATES, Job, JobState, Refusal, Refused, sql_list
from bot.safety import check_blocklist
from bot.safety import refusal as safety_refusal
from bot.store.base import StoreBase, audit, check_may_act, check_states, marks
from bot.store.guilds import Limits
from bot.store.uploads import save_uploads
from bot.validation import check_request
from morph.animation import FORMATS
from morph.request import Invalid, MorphError, RenderRequest

#: How long Discord lets a bot use an interaction's token for followups.
INTERACTION_TTL_S = 15 * 60

ACTIVE = sql_list(ACTIVE_STATES)


class JobQueue(StoreBase):
    """The queue side of :class:`bot.store.Store`."""

    async def enqueue(self, *, guild_id: int, channel_id: int, user_id: int, request: RenderRequest,
                      upload_limit: int, interaction_token: str | None = None,
                      application_id: int | None = None, boomerang: bool = False,
                      output_format: str | None = None, parent_id: int | None = None,
                      reply_to_message_id: int | None = None, channel_nsfw: bool = False,
                      guild_locale: object = None,
                      uploads: Mapping[int, bytes] | None = None, uploads_from: int | None = None,
                      now: float | None = None) -> Job:
        """Validate ``request`` and queue it; return the new job.

        ``uploads``: a picture morph's pictures by end (checked already), stored with the job in the same
        transaction; ``uploads_from``: or copied from that job (a refine or reroll), only within the same guild
        (:func:`bot.store.uploads.save_uploads`, which refuses a picture end left without a picture).

        ``output_format``: ``mp4``, ``gif`` or ``both``; None: the guild's ``default_format`` (else
        ``MORPH_FORMAT``). ``parent_id`` and ``reply_to_message_id``: a 🔍 refine of that job, whose result
        is posted as a reply to that message. ``channel_nsfw``: Discord marks the channel age-restricted (a
        thread: its parent); with ``MORPH_SAFETY=off`` only such channels get morphs (:mod:`bot.safety`).
        ``guild_locale``: the server's preferred locale as Discord sends it; the job's public messages are
        written in the server's ``language`` setting, else in that locale's language (:func:`bot.i18n.language`:
        English when the bot has no catalogue for it).

        Refuses (``Refused``, nothing written) a banned user, a channel outside the guild's allow-list,
        a banned word or any invalid input (``check_request``), more frames than the guild allows, a
        user who already has ``max_user_active`` queued/running jobs, a full guild queue, a full bot
        queue (``MORPH_MAX_QUEUE`` over every guild), and a submission within ``cooldown_s`` of the user's
        previous one (withdrawn jobs do not count). A paused guild still accepts jobs (they wait until
        resumed).
        """
        now = self._now(now)
        # The request is checked (banned words: tens of milliseconds for a long list) against the limits read
        # here, before the write transaction, so the check holds no lock; a problem is raised in the
        # transaction after the ban and channel checks, in the order the refusals always came.
        rows = await self.db.fetch("SELECT banned_words, max_frames FROM guild_settings WHERE guild_id = $1",
                                   guild_id)
        checked = Limits.from_row(rows[0] if rows else None, self.settings)
        problem: Refused | None = None
        try:
            request = check_request(request, list(checked.banned_words), max_frames=checked.max_frames)
            check_blocklist(request, self.settings.blocklist)
        except Refused as e:
            problem = e
        except Invalid as e:  # the engine's own check: its code and facts, worded by bot.messages
            problem = Refused(Refusal.INVALID, code=e.code, facts=e.facts)
        except MorphError as e:
            problem = Refused(Refusal.INVALID, detail=str(e))
        async with self.db.transaction() as tx:
            await tx.serialize("queue")
            limits = Limits.from_row(await tx.fetchrow("SELECT * FROM guild_settings WHERE guild_id = $1", guild_id),
                                     self.settings)
            # one query for every count the limits need (each query is a round trip to the database)
            counts = await tx.fetchrow(
                "SELECT (SELECT COUNT(*) FROM bans WHERE guild_id = $1 AND user_id = $2) AS banned, "
                f"(SELECT COUNT(*) FROM jobs WHERE guild_id = $3 AND user_id = $4 AND state IN {ACTIVE}) AS mine, "
                f"(SELECT COUNT(*) FROM jobs WHERE guild_id = $5 AND state IN {ACTIVE}) AS guild, "
                f"(SELECT COUNT(*) FROM jobs WHERE state IN {ACTIVE}) AS total, "
                "(SELECT MAX(created_at) FROM jobs WHERE guild_id = $6 AND user_id = $7 AND withdrawn_at IS NULL) "
                "AS last",
                guild_id, user_id, guild_id, user_id, guild_id, guild_id, user_id)
            assert counts is not None  # a SELECT without FROM has one row
            if counts["banned"]:
                raise Refused(Refusal.BANNED)
            allowed = limits.allowed_channels
            if allowed and channel_id not in allowed:
                raise Refused(Refusal.CHANNEL_NOT_ALLOWED, channels=list(allowed))
            refusal = safety_refusal(safety_on=self.settings.safety, channel_nsfw=channel_nsfw)
            if refusal is not None:
                raise refusal
            if problem is not None:
                raise problem
            output_format = output_format or limits.default_format
            if output_format not in FORMATS:
                raise Refused(Refusal.BAD_FORMAT, option="format", value=output_format, choices=list(FORMATS))
            if counts["mine"] >= limits.max_user_active:
                mine = [r["id"] for r in await tx.fetch(f"SELECT id FROM jobs WHERE guild_id = $1 AND user_id = $2 AND "
                                                        f"state IN {ACTIVE} ORDER BY id", guild_id, user_id)]
                raise Refused(Refusal.USER_QUEUE_FULL, jobs=mine, limit=limits.max_user_active)
            if counts["guild"] >= limits.max_guild_queue:
                raise Refused(Refusal.GUILD_QUEUE_FULL, count=counts["guild"], limit=limits.max_guild_queue)
            if counts["total"] >= self.settings.max_queue:
                raise Refused(Refusal.BOT_QUEUE_FULL, count=counts["total"])
            last = counts["last"]
            if last is not None and now - last < limits.cooldown_s:
                wait = limits.cooldown_s - (now - last)
                raise Refused(Refusal.COOLDOWN, seconds=max(1, round(wait)))
            expires = now + INTERACTION_TTL_S if interaction_token else None
            row = await tx.fetchrow(
                "INSERT INTO jobs (guild_id, channel_id, user_id, state, request, boomerang, created_at, "
                "interaction_token, interaction_expires_at, application_id, upload_limit, token, output_format, "
                "parent_id, reply_to_message_id, language, channel_nsfw) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING *",
                guild_id, channel_id, user_id, JobState.QUEUED, json.dumps(request.to_dict()), int(bool(boomerang)),
                now, interaction_token, expires, application_id, int(upload_limit), secrets.token_hex(4),
                output_format, parent_id, reply_to_message_id, limits.language or language(guild_locale),
                int(bool(channel_nsfw)))
            assert row is not None  # INSERT … RETURNING
            await save_uploads(tx, row["id"], guild_id, request, uploads, uploads_from)
            tx.notify(QUEUE_CHANNEL)
            return self._job(row)

    async def claim_interaction(self, interaction_id: int, now: float | None = None) -> bool:
        """True for the first caller only, in any process: Discord delivers an interaction to every
        gateway session of its shard (and a resumed session may replay one), so the front that records it
        first answers it and the others stay silent."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            return bool(await tx.fetch("INSERT INTO interactions (id, handled_at) VALUES ($1, $2) "
                                       "ON CONFLICT DO NOTHING RETURNING id", int(interaction_id), now))

    async def position(self, job_id: int) -> int | None:
        """1-based place in the claim order (see :meth:`queued_positions`); None when not queued."""
        place = (await self._places()).get(job_id)
        return place[0] if place else None

    async def queued_positions(self) -> list[tuple[Job, int, bool]]:
        """Every queued job, oldest first, with its place in the claim order and whether its guild is paused.

        Claims take one job per guild in turn (``Store.claim``), so a place is where the job comes in that
        rotation: guilds in the order they will be served (longest since their last claim first, then the
        oldest job), one job of each per round. A job in a paused guild gets the place it would have if
        its guild were resumed now; paused guilds do not delay anyone else.
        """
        places = await self._places()
        rows = await self.db.fetch(f"SELECT * FROM jobs WHERE state = '{JobState.QUEUED}' ORDER BY id")
        return [(job, *places[job.id]) for job in map(self._job, rows) if job.id in places]

    async def _places(self) -> dict[int, tuple[int, bool]]:
        """Job id -> (place in the claim order, guild paused) for every queued job (see queued_positions)."""
        rows = await self.db.fetch(
            "SELECT j.id, j.guild_id, COALESCE(g.paused, 0) AS paused, COALESCE(g.last_claim_seq, 0) AS seq "
            f"FROM jobs j LEFT JOIN guild_settings g ON g.guild_id = j.guild_id WHERE j.state = '{JobState.QUEUED}' "
            "ORDER BY j.id")
        queues: dict[int, list[int]] = {}  # guild -> its queued job ids, oldest first
        turn: dict[int, tuple[int, int]] = {}  # guild -> (last claim, oldest job): rotation order
        paused: set[int] = set()
        for r in rows:
            queues.setdefault(r["guild_id"], []).append(r["id"])
            turn.setdefault(r["guild_id"], (r["seq"], r["id"]))
            if r["paused"]:
                paused.add(r["guild_id"])
        active = [g for g in queues if g not in paused]
        place = _round_robin(queues, sorted(active, key=turn.__getitem__))
        for g in paused:
            place.update(_round_robin(queues, sorted([*active, g], key=turn.__getitem__), only=g))
        return {job_id: (place[job_id], guild in paused) for guild, ids in queues.items() for job_id in ids}

    async def user_jobs(self, guild_id: int, user_id: int, states: Iterable[str] = ACTIVE_STATES) -> list[Job]:
        """The user's jobs in this guild in the given states (default queued and running), oldest first."""
        checked = check_states(states)
        rows = await self.db.fetch(f"SELECT * FROM jobs WHERE guild_id = $1 AND user_id = $2 AND state IN "
                                   f"({marks(checked, first=3)}) ORDER BY id", guild_id, user_id, *checked)
        return [self._job(r) for r in rows]

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        """Remember the message that shows this job's queue position / progress."""
        await self.db.execute("UPDATE jobs SET status_message_id = $1 WHERE id = $2", message_id, job_id)

    # ------------------------------------------------------------------ taking jobs back

    async def mark_cancelled(self, job_id: int, now: float | None = None, *,
                             states: tuple[str, ...] = ACTIVE_STATES) -> bool:
        """running/queued (or any of ``states``) → cancelled. False if it was in none of them."""
        now = self._now(now)
        return await self.db.execute(f"UPDATE jobs SET state = '{JobState.CANCELLED}', finished_at = $1 WHERE id = $2 "
                                     f"AND state IN ({marks(states, first=3)})", now, job_id, *states) == 1

    async def cancel(self, job_id: int, *, actor_id: int, admin: bool = False, guild_id: int | None = None,
                     now: float | None = None) -> Job:
        """Cancel a queued or running job and return it (state ``cancelled``).

        Allowed for the author, or with ``admin=True`` for an admin of ``guild_id`` (the job must belong
        to that guild; ``guild_id=None`` with ``admin=True`` is the bot owner, any guild). Admin
        cancels are audited. A running job is marked cancelled at once; its worker notices through
        ``Store.heartbeat`` (or ``Worker.request_cancel``) and stops within one denoising step.
        """
        now = self._now(now)
        async with self.db.transaction() as tx:
            job = await self._job_in_tx(tx, job_id)
            check_may_act(job, actor_id, admin, guild_id, "cancel")
            if job.state not in ACTIVE_STATES:
                raise Refused(Refusal.NOT_ACTIVE, job=job_id, state=str(job.state))
            await tx.execute(f"UPDATE jobs SET state = '{JobState.CANCELLED}', finished_at = $1, cancelled_by = $2 "
                             "WHERE id = $3", now, actor_id, job_id)
            if admin:
                await audit(tx, job.guild_id, actor_id, "cancel", now, job=job_id, author=job.user_id,
                            state=str(job.state))
            return await self._job_in_tx(tx, job_id)

    async def withdraw(self, job_id: int, now: float | None = None) -> bool:
        """Take back a job whose author never got the /morph answer (queued, running or rendered but not
        yet posted → cancelled), so it neither holds their slot, nor counts for their cooldown, nor gets
        posted. False if already final."""
        now = self._now(now)
        unposted = sql_list((*ACTIVE_STATES, JobState.RENDERED))
        return await self.db.execute(f"UPDATE jobs SET state = '{JobState.CANCELLED}', finished_at = $1, "
                                     f"withdrawn_at = $2 WHERE id = $3 AND state IN {unposted}", now, now, job_id) == 1


def _round_robin(queues: dict[int, list[int]], order: list[int], only: int | None = None) -> dict[int, int]:
    """Job id -> 1-based place when the guilds in ``order`` take turns, one job each per round
    (``only``: return just that guild's jobs)."""
    place: dict[int, int] = {}
    n, depth, rest = 0, 0, list(order)
    while rest:
        for g in rest:
            n += 1
            if only is None or g == only:
                place[queues[g][depth]] = n
        depth += 1
        rest = [g for g in rest if len(queues[g]) > depth]
    return place

"""The persistent job queue, shared by Discord fronts and render workers through one database.

One :class:`Store` per process. Every change runs in one transaction (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: claims serialised by an advisory lock and ``FOR UPDATE SKIP LOCKED``), so checks and writes
(limits, claims) are atomic however many processes share the database. Times are Unix seconds from
``Store.clock`` (injectable for tests); most methods also take ``now=``.

Job life: ``queued → running → rendered → delivered``; ``failed`` and ``cancelled`` are final. A rendered
job is never rendered again; a delivered one is never delivered again. Workers write a job's progress
and heartbeat here; fronts read them (see ``bot.delivery``). Notifications (``bot.db``) wake workers when
a job becomes claimable and fronts when a job changes.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from bot.artifacts import DatabaseArtifacts, FolderArtifacts
from bot.config import Settings
from bot.db import JOBS_CHANNEL, QUEUE_CHANNEL, Database, open_database
from bot.guilds import GuildRules, audit, check_states, ensure_guild_row, marks
from bot.jobs import ACTIVE_STATES, Expired, Job, Pick, Refused, valid_id
from bot.validation import check_request
from morph.output import FORMATS, frame_filename
from morph.request import MorphError, RenderRequest

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
INTERACTION_TTL_S = 15 * 60
#: A front that takes a rendered job to post it holds it this long; if it dies meanwhile, another front
#: (or its restart) posts it afterwards (duplicates are caught by the message nonce and history check).
DELIVERY_LEASE_S = 30.0
#: Interactions remembered for de-duplication (Discord never repeats one after its token expired).
INTERACTION_MEMORY_S = 3600.0


class WorkerRun(NamedTuple):
    """Who renders a job: the worker (``MORPH_WORKER_ID``) and its run (new at every start)."""

    worker_id: str
    run_id: str


class Store(GuildRules):
    """Create with ``await Store.open(MORPH_DB, settings)``: a SQLite path or a PostgreSQL URL."""

    def __init__(self, db: Database, settings: Settings, *, clock: Callable[[], float] = time.time):
        self.db = db
        self.settings = settings
        self.clock = clock
        self.artifacts = DatabaseArtifacts(db) if db.dialect == "postgres" else FolderArtifacts(settings.data_dir)

    @classmethod
    async def open(cls, target: str | Path, settings: Settings, *, migrations_dir: str | Path | None = None,
                   clock: Callable[[], float] = time.time) -> "Store":
        """Connect and apply pending migrations (``bot.db.DatabaseUnusable`` / ``MigrationError`` say why not)."""
        return cls(await open_database(target, migrations_dir=migrations_dir), settings, clock=clock)

    async def close(self) -> None:
        await self.db.close()

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else float(now)

    def _job(self, row: dict) -> Job:
        return Job.from_row(row)

    async def _job_in_tx(self, tx, job_id: int) -> Job:
        row = await tx.fetchrow("SELECT * FROM jobs WHERE id = ?", job_id) if valid_id(job_id) else None
        if row is None:
            raise Refused(f"There is no morph #{job_id}.")
        return self._job(row)

    # ------------------------------------------------------------------ submitting

    async def enqueue(self, *, guild_id: int, channel_id: int, user_id: int, request: RenderRequest,
                      upload_limit: int, interaction_token: str | None = None,
                      application_id: int | None = None, boomerang: bool = False,
                      output_format: str | None = None, parent_id: int | None = None,
                      reply_to_message_id: int | None = None, now: float | None = None) -> Job:
        """Validate ``request`` and queue it; return the new job.

        ``output_format``: ``mp4``, ``gif`` or ``both``; None: the guild's ``default_format`` (else
        ``MORPH_FORMAT``). ``parent_id`` and ``reply_to_message_id``: a 🔍 refine of that job, whose result
        is posted as a reply to that message.

        Refuses (``Refused``, nothing written) a banned user, a channel outside the guild's allow-list,
        a banned word or any invalid input (``check_request``), more frames than the guild allows, a
        user who already has ``max_user_active`` queued/running jobs, a full guild queue, a full bot
        queue (``MORPH_MAX_QUEUE`` over every guild), and a submission within ``cooldown_s`` of the user's
        previous one (withdrawn jobs do not count). A paused guild still accepts jobs (they wait until
        resumed).
        """
        now = self._now(now)
        async with self.db.transaction() as tx:
            await tx.serialize("queue")
            limits = self.limits_from_row(await tx.fetchrow("SELECT * FROM guild_settings WHERE guild_id = ?",
                                                            guild_id))
            # one query for every count the limits need (each query is a round trip to the database)
            counts = await tx.fetchrow(
                "SELECT (SELECT COUNT(*) FROM bans WHERE guild_id = ? AND user_id = ?) AS banned, "
                "(SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND user_id = ? AND state IN ('queued', 'running')) "
                "AS mine, (SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND state IN ('queued', 'running')) AS guild, "
                "(SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')) AS total, "
                "(SELECT MAX(created_at) FROM jobs WHERE guild_id = ? AND user_id = ? AND withdrawn_at IS NULL) AS last",
                guild_id, user_id, guild_id, user_id, guild_id, guild_id, user_id)
            if counts["banned"]:
                raise Refused("You are banned from using /morph in this server.")
            allowed = limits["allowed_channels"]
            if allowed and channel_id not in allowed:
                where = ", ".join(f"<#{c}>" for c in allowed)
                raise Refused(f"/morph is not enabled in this channel. Use it in {where}.")
            try:
                request = check_request(request, limits["banned_words"], max_frames=limits["max_frames"])
            except Refused:
                raise
            except MorphError as e:
                raise Refused(str(e)) from None
            output_format = output_format or limits["default_format"]
            if output_format not in FORMATS:
                raise Refused(f"format must be one of: {', '.join(FORMATS)} (got {output_format!r}).")
            if counts["mine"] >= limits["max_user_active"]:
                mine = [r["id"] for r in await tx.fetch("SELECT id FROM jobs WHERE guild_id = ? AND user_id = ? AND "
                                                        "state IN ('queued', 'running') ORDER BY id", guild_id, user_id)]
                ids = ", ".join(f"#{i}" for i in mine)
                raise Refused(f"You already have {len(mine)} morph{'s' if len(mine) != 1 else ''} in the queue "
                              f"({ids}); the limit is {limits['max_user_active']}. Wait for one to finish or "
                              "cancel it with /morph-cancel.")
            if counts["guild"] >= limits["max_guild_queue"]:
                raise Refused(f"This server's queue is full ({counts['guild']} morphs waiting or rendering; the "
                              f"limit is {limits['max_guild_queue']}). Try again in a few minutes.")
            if counts["total"] >= self.settings.max_queue:
                raise Refused(f"The bot's queue is full ({counts['total']} morphs waiting or rendering across all "
                              "servers). Try again in a few minutes.")
            last = counts["last"]
            if last is not None and now - last < limits["cooldown_s"]:
                wait = limits["cooldown_s"] - (now - last)
                raise Refused(f"Slow down: you can start another morph in {max(1, round(wait))} s.")
            expires = now + INTERACTION_TTL_S if interaction_token else None
            row = await tx.fetchrow(
                "INSERT INTO jobs (guild_id, channel_id, user_id, state, request, boomerang, created_at, "
                "interaction_token, interaction_expires_at, application_id, upload_limit, token, output_format, "
                "parent_id, reply_to_message_id) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                guild_id, channel_id, user_id, json.dumps(request.to_dict()), int(bool(boomerang)), now,
                interaction_token, expires, application_id, int(upload_limit), secrets.token_hex(4), output_format,
                parent_id, reply_to_message_id)
            tx.notify(QUEUE_CHANNEL)
            return self._job(row)

    async def claim_interaction(self, interaction_id: int, now: float | None = None) -> bool:
        """True for the first caller only, in any process: Discord delivers an interaction to every
        gateway session of its shard (and a resumed session may replay one), so the front that records it
        first answers it and the others stay silent."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            return bool(await tx.fetch("INSERT INTO interactions (id, handled_at) VALUES (?, ?) "
                                       "ON CONFLICT DO NOTHING RETURNING id", int(interaction_id), now))

    async def get(self, job_id: int) -> Job | None:
        if not valid_id(job_id):
            return None
        rows = await self.db.fetch("SELECT * FROM jobs WHERE id = ?", job_id)
        return self._job(rows[0]) if rows else None

    async def position(self, job_id: int) -> int | None:
        """1-based place in the claim order (see :meth:`queued_positions`); None when not queued."""
        place = (await self._places()).get(job_id)
        return place[0] if place else None

    async def queued_positions(self) -> list[tuple[Job, int, bool]]:
        """Every queued job, oldest first, with its place in the claim order and whether its guild is paused.

        Claims take one job per guild in turn (:meth:`claim`), so a place is where the job comes in that
        rotation: guilds in the order they will be served (longest since their last claim first, then the
        oldest job), one job of each per round. A job in a paused guild gets the place it would have if
        its guild were resumed now; paused guilds do not delay anyone else.
        """
        places = await self._places()
        rows = await self.db.fetch("SELECT * FROM jobs WHERE state = 'queued' ORDER BY id")
        return [(job, *places[job.id]) for job in map(self._job, rows) if job.id in places]

    async def _places(self) -> dict[int, tuple[int, bool]]:
        """Job id -> (place in the claim order, guild paused) for every queued job (see queued_positions)."""
        rows = await self.db.fetch(
            "SELECT j.id, j.guild_id, COALESCE(g.paused, 0) AS paused, COALESCE(g.last_claim_seq, 0) AS seq "
            "FROM jobs j LEFT JOIN guild_settings g ON g.guild_id = j.guild_id WHERE j.state = 'queued' "
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
        states = check_states(states)
        rows = await self.db.fetch(f"SELECT * FROM jobs WHERE guild_id = ? AND user_id = ? AND state IN "
                                   f"({marks(states)}) ORDER BY id", guild_id, user_id, *states)
        return [self._job(r) for r in rows]

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        """Remember the message that shows this job's queue position / progress."""
        await self.db.execute("UPDATE jobs SET status_message_id = ? WHERE id = ?", message_id, job_id)

    # ------------------------------------------------------------------ worker side

    async def claim(self, run: WorkerRun, now: float | None = None) -> Job | None:
        """Atomically move the next queued job of an unpaused guild to ``running`` for ``run``; None if
        nothing is claimable.

        Fair across servers: the next job is the oldest of the guild served longest ago (its
        ``last_claim_seq`` is the lowest; 0 = never), so guilds take turns, one job each, however many one
        of them queued. Claims of all workers take turns too (``Tx.serialize``), so two workers never
        claim one job and every claim sees the previous ones.
        """
        now = self._now(now)
        async with self.db.transaction() as tx:
            await tx.serialize("claims")
            row = await tx.fetchrow(
                "UPDATE jobs SET state = 'running', started_at = ?, heartbeat_at = ?, worker_id = ?, run_id = ?, "
                "progress = NULL WHERE id = (SELECT j.id FROM jobs j LEFT JOIN guild_settings g ON "
                "g.guild_id = j.guild_id WHERE j.state = 'queued' AND COALESCE(g.paused, 0) = 0 "
                f"ORDER BY COALESCE(g.last_claim_seq, 0), j.id LIMIT 1{self.db.skip_locked}) "
                "AND state = 'queued' RETURNING *", now, now, run.worker_id, run.run_id)
            if row is None:
                return None
            await ensure_guild_row(tx, row["guild_id"])
            await tx.execute("UPDATE guild_settings SET last_claim_seq = "
                             "(SELECT MAX(last_claim_seq) FROM guild_settings) + 1 WHERE guild_id = ?",
                             row["guild_id"])
            tx.notify(JOBS_CHANNEL)
        return self._job(row)

    async def heartbeat(self, job_id: int, run: WorkerRun, progress: dict | None = None,
                        now: float | None = None) -> str | None:
        """Record that ``run`` still renders ``job_id`` (and its latest ``progress``, shown by the fronts);
        return the job's state: anything but ``running`` means it was cancelled meanwhile, so the worker
        should stop. ``"lost"``: the job was recovered (its heartbeat looked stale) and is no longer this
        run's; nothing is written and the worker must drop it without touching it. None: no such job."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("SELECT state, worker_id, run_id FROM jobs WHERE id = ?", job_id)
            if row is None:
                return None
            if (row["worker_id"], row["run_id"]) != tuple(run):
                return "lost"
            if row["state"] == "running":
                if progress is None:
                    await tx.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", now, job_id)
                else:
                    await tx.execute("UPDATE jobs SET heartbeat_at = ?, progress = ? WHERE id = ?",
                                     now, json.dumps(progress), job_id)
                    tx.notify(JOBS_CHANNEL)
        return row["state"]

    async def recover(self, *, worker_id: str | None = None, stale_s: float | None = None,
                      keep: Iterable[int] = (), now: float | None = None) -> list[Job]:
        """Put jobs left ``running`` by a crash back in the queue; return every job it changed.

        Each such job gets ``attempts + 1``; at ``MAX_ATTEMPTS`` it becomes ``failed`` with the reason
        instead (a front then shows it). ``rendered`` jobs are untouched (delivery picks them up). Without
        arguments every running job is recovered (only safe when no other process renders from this
        database). ``worker_id``: only jobs claimed by any run of that worker (a restarted worker takes
        back its own jobs at once); ``stale_s``: only jobs without a heartbeat for that long (another
        process died). ``keep``: ids of jobs to leave running whatever else matches.
        """
        now = self._now(now)
        where, params = "state = 'running'", []
        if worker_id is not None:
            where += " AND worker_id = ?"
            params.append(worker_id)
        if stale_s is not None:
            where += " AND COALESCE(heartbeat_at, started_at, 0) < ?"
            params.append(now - stale_s)
        keep = [int(i) for i in keep]
        if keep:
            where += f" AND id NOT IN ({marks(keep)})"
            params += keep
        reason = f"the renderer crashed {MAX_ATTEMPTS} times on this job"
        async with self.db.transaction() as tx:
            failed = await tx.fetch(
                f"UPDATE jobs SET attempts = attempts + 1, worker_id = NULL, run_id = NULL, state = 'failed', "
                f"error = ?, finished_at = ? WHERE {where} AND attempts + 1 >= ? RETURNING *",
                reason, now, *params, MAX_ATTEMPTS)
            requeued = await tx.fetch(
                f"UPDATE jobs SET attempts = attempts + 1, worker_id = NULL, run_id = NULL, state = 'queued', "
                f"started_at = NULL, progress = NULL WHERE {where} RETURNING *", *params)
            if failed or requeued:
                tx.notify(QUEUE_CHANNEL)
                tx.notify(JOBS_CHANNEL)
        jobs = sorted(map(self._job, failed + requeued), key=lambda j: j.id)
        for j in jobs:
            log.warning("recovered job #%d -> %s (attempts %d)", j.id, j.state, j.attempts)
        return jobs

    async def running(self, worker_id: str | None = None) -> list[Job]:
        """Running jobs, oldest first (of any run of ``worker_id``, if given)."""
        if worker_id is None:
            rows = await self.db.fetch("SELECT * FROM jobs WHERE state = 'running' ORDER BY id")
        else:
            rows = await self.db.fetch("SELECT * FROM jobs WHERE state = 'running' AND worker_id = ? ORDER BY id",
                                       worker_id)
        return [self._job(r) for r in rows]

    async def requeue(self, job_id: int, run: WorkerRun) -> bool:
        """Give a running job of ``run`` back to the queue without counting an attempt (clean worker
        shutdown, no room to store its files)."""
        async with self.db.transaction() as tx:
            n = await tx.execute("UPDATE jobs SET state = 'queued', started_at = NULL, worker_id = NULL, "
                                 "run_id = NULL, progress = NULL WHERE id = ? AND state = 'running' AND "
                                 "worker_id = ? AND run_id = ?", job_id, *run)
            if n:
                tx.notify(QUEUE_CHANNEL)
                tx.notify(JOBS_CHANNEL)
            return n == 1

    async def mark_rendered(self, job_id: int, result: dict, run: WorkerRun, now: float | None = None) -> bool:
        """running → rendered with the result dict; the job's files are stored under its folder name (see
        ``bot.artifacts``). False (nothing changed) when the job is no longer running for ``run``: it was
        cancelled during the render, or another worker holds it now."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            job = await tx.fetchrow("SELECT id, token FROM jobs WHERE id = ?", job_id)
            name = f"{job_id}-{job['token']}" if job and job["token"] else str(job_id)
            n = await tx.execute(
                "UPDATE jobs SET state = 'rendered', rendered_at = ?, result = ?, artifact_dir = ?, error = NULL, "
                "next_delivery_at = NULL WHERE id = ? AND state = 'running' AND worker_id = ? AND run_id = ?",
                now, json.dumps(result), name, job_id, *run)
            if n:
                tx.notify(JOBS_CHANNEL)
            return n == 1

    async def mark_failed(self, job_id: int, error: str, run: WorkerRun | None = None,
                          now: float | None = None) -> bool:
        """queued/running/rendered → failed with a user-facing reason (a front shows it). False if already
        final (or, with ``run``, if the job is not running for that run any more)."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            if run is None:
                n = await tx.execute("UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ? "
                                     "AND state IN ('queued', 'running', 'rendered')", error, now, job_id)
            else:
                n = await tx.execute("UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ? "
                                     "AND state = 'running' AND worker_id = ? AND run_id = ?",
                                     error, now, job_id, *run)
            if n:
                tx.notify(JOBS_CHANNEL)
            return n == 1

    async def mark_cancelled(self, job_id: int, now: float | None = None, *,
                             states: tuple[str, ...] = ("queued", "running")) -> bool:
        """running/queued (or any of ``states``) → cancelled. False if it was in none of them."""
        now = self._now(now)
        return await self.db.execute("UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND "
                                     f"state IN ({marks(states)})", now, job_id, *states) == 1

    async def cancel(self, job_id: int, *, actor_id: int, admin: bool = False, guild_id: int | None = None,
                     now: float | None = None) -> Job:
        """Cancel a queued or running job and return it (state ``cancelled``).

        Allowed for the author, or with ``admin=True`` for an admin of ``guild_id`` (the job must belong
        to that guild; ``guild_id=None`` with ``admin=True`` is the bot owner, any guild). Admin
        cancels are audited. A running job is marked cancelled at once; its worker notices through
        :meth:`heartbeat` (or ``Worker.request_cancel``) and stops within one denoising step.
        """
        now = self._now(now)
        async with self.db.transaction() as tx:
            job = await self._job_in_tx(tx, job_id)
            _check_may_act(job, actor_id, admin, guild_id, "cancel")
            if job.state not in ACTIVE_STATES:
                raise Refused(f"Morph #{job_id} is already {job.state}; only queued or rendering morphs "
                              "can be cancelled.")
            await tx.execute("UPDATE jobs SET state = 'cancelled', finished_at = ?, cancelled_by = ? WHERE id = ?",
                             now, actor_id, job_id)
            if admin:
                await audit(tx, job.guild_id, actor_id, "cancel", f"#{job_id} by <@{job.user_id}> ({job.state})", now)
            return await self._job_in_tx(tx, job_id)

    async def withdraw(self, job_id: int, now: float | None = None) -> bool:
        """Take back a job whose author never got the /morph answer (queued, running or rendered but not
        yet posted → cancelled), so it neither holds their slot, nor counts for their cooldown, nor gets
        posted. False if already final."""
        now = self._now(now)
        return await self.db.execute("UPDATE jobs SET state = 'cancelled', finished_at = ?, withdrawn_at = ? "
                                     "WHERE id = ? AND state IN ('queued', 'running', 'rendered')",
                                     now, now, job_id) == 1

    # ------------------------------------------------------------------ front side

    async def jobs_to_deliver(self, now: float | None = None) -> list[Job]:
        """Rendered (not deleted) jobs whose next delivery attempt is due, oldest first."""
        now = self._now(now)
        rows = await self.db.fetch("SELECT * FROM jobs WHERE state = 'rendered' AND deleted_at IS NULL AND "
                                   "(next_delivery_at IS NULL OR next_delivery_at <= ?) ORDER BY id", now)
        return [self._job(r) for r in rows]

    async def next_retry_at(self, now: float | None = None) -> float | None:
        """The earliest delivery retry still to come of a rendered job, or None."""
        return await self.db.fetchval("SELECT MIN(next_delivery_at) FROM jobs WHERE state = 'rendered' AND "
                                      "deleted_at IS NULL AND next_delivery_at > ?", self._now(now))

    async def take_delivery(self, job_id: int, *, force: bool = False, now: float | None = None) -> Job | None:
        """Take a due rendered job to post it (every front of its shard looks for them): the job, or None
        when another front took it first. The taker holds it for ``DELIVERY_LEASE_S``; ``force`` takes it
        whatever its retry time or lease (a restarted front whose previous run was posting it)."""
        now = self._now(now)
        due = float("inf") if force else now
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("UPDATE jobs SET next_delivery_at = ? WHERE id = ? AND state = 'rendered' AND "
                                    "deleted_at IS NULL AND (next_delivery_at IS NULL OR next_delivery_at <= ?) "
                                    "RETURNING *", now + DELIVERY_LEASE_S, job_id, due)
        return self._job(row) if row else None

    async def mark_delivered(self, job_id: int, message_id: int | None, now: float | None = None) -> bool:
        """rendered → delivered, remembering the result message (and forgetting any failed attempt's
        error). False if it was not ``rendered``."""
        now = self._now(now)
        return await self.db.execute(
            "UPDATE jobs SET state = 'delivered', delivered_at = ?, result_message_id = ?, next_delivery_at = NULL, "
            "error = NULL WHERE id = ? AND state = 'rendered'", now, message_id, job_id) == 1

    async def delivery_failed(self, job_id: int, error: str, retry_in: float | None,
                              now: float | None = None) -> Job:
        """Record a failed delivery: retry after ``retry_in`` seconds, or (None) give up → failed."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            if retry_in is None:
                await tx.execute("UPDATE jobs SET state = 'failed', error = ?, finished_at = ?, "
                                 "delivery_attempts = delivery_attempts + 1 WHERE id = ? AND state = 'rendered'",
                                 error, now, job_id)
            else:
                await tx.execute("UPDATE jobs SET error = ?, next_delivery_at = ?, "
                                 "delivery_attempts = delivery_attempts + 1 WHERE id = ? AND state = 'rendered'",
                                 error, now + retry_in, job_id)
            return await self._job_in_tx(tx, job_id)

    async def failures_to_show(self) -> list[Job]:
        """Failed jobs no front has told Discord about yet, oldest first."""
        rows = await self.db.fetch("SELECT * FROM jobs WHERE state = 'failed' AND failure_shown_at IS NULL "
                                   "ORDER BY id")
        return [self._job(r) for r in rows]

    async def take_failure(self, job_id: int, now: float | None = None) -> bool:
        """True for the one front that shows this failure (every front looks for them)."""
        return await self.db.execute("UPDATE jobs SET failure_shown_at = ? WHERE id = ? AND failure_shown_at IS NULL",
                                     self._now(now), job_id) == 1

    # ------------------------------------------------------------------ picks and results

    async def pick(self, job_id: int, *, user_id: int, frame: int, source: str = "button",
                   now: float | None = None) -> Pick:
        """Record that ``user_id`` picked ``frame`` (0-based); return that frame's PNG and whether the same
        person had already picked the same frame (``repeat``: answer privately, not again in public;
        nothing is recorded).

        Refuses an unknown job, a user banned in the job's guild, one not rendered yet, an expired/deleted
        one ("this morph has expired"), a frame out of range, and a pick within ``MORPH_PICK_COOLDOWN_S`` of
        the same person's previous pick in that guild (buttons, menu and reactions together).
        """
        now = self._now(now)
        async with self.db.transaction() as tx:
            await tx.serialize("picks")
            job = await self._job_in_tx(tx, job_id)
            if await tx.fetch("SELECT 1 FROM bans WHERE guild_id = ? AND user_id = ?", job.guild_id, user_id):
                raise Refused("You are banned from using /morph in this server.")
            self._check_frame(job, frame)
            last = await tx.fetchval("SELECT MAX(p.created_at) FROM picks p JOIN jobs j ON j.id = p.job_id "
                                     "WHERE p.user_id = ? AND j.guild_id = ?", user_id, job.guild_id)
            wait = self.settings.pick_cooldown_s - (now - last) if last is not None else 0
            if wait > 0:
                raise Refused(f"Slow down: you can pick again in {max(1, round(wait))} s.")
            new = await tx.fetch("INSERT INTO picks (job_id, user_id, frame, source, created_at) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (job_id, user_id, frame) DO NOTHING RETURNING id",
                                 job_id, user_id, frame, source, now)
        data = await self.artifacts.read(job, frame_filename(frame))
        if data is None:
            raise Expired(f"Morph #{job.id} has expired: its frames are no longer stored.")
        return Pick(data, repeat=not new)

    def _check_frame(self, job: Job, frame: int) -> None:
        if job.deleted_at is not None or job.expired:
            raise Expired(f"Morph #{job.id} has expired: its frames were deleted "
                          f"(results are kept {self.settings.retention_days:g} days).")
        if job.state not in ("rendered", "delivered") or not job.result or job.artifact_dir is None:
            raise Refused(f"Morph #{job.id} has no frames to pick ({job.state}).")
        count = int(job.result.get("frame_count", 0))
        if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < count:
            shown = frame + 1 if isinstance(frame, int) else frame
            raise Refused(f"Morph #{job.id} has frames 1 to {count}; there is no frame {shown}.")

    async def picks(self, job_id: int) -> list[dict]:
        """Every pick of the job, oldest first: ``{user_id, frame, source, created_at}``."""
        return await self.db.fetch("SELECT user_id, frame, source, created_at FROM picks WHERE job_id = ? "
                                   "ORDER BY id", job_id)

    async def delete_result(self, job_id: int, *, actor_id: int, admin: bool = False,
                            guild_id: int | None = None, now: float | None = None) -> Job:
        """The ❌ button: author or admin (of ``guild_id``) deletes a rendered/delivered result's files.

        The row stays (state unchanged) with ``deleted_at`` set; picks then answer "expired". The
        caller deletes the Discord message. Admin deletes are audited.
        """
        now = self._now(now)
        async with self.db.transaction() as tx:
            job = await self._job_in_tx(tx, job_id)
            _check_may_act(job, actor_id, admin, guild_id, "delete")
            if job.deleted_at is not None:
                raise Refused(f"Morph #{job_id} was already deleted.")
            await tx.execute("UPDATE jobs SET deleted_at = ?, artifacts_purged_at = COALESCE(artifacts_purged_at, ?) "
                             "WHERE id = ?", now, now, job_id)
            if admin:
                await audit(tx, job.guild_id, actor_id, "delete", f"#{job_id} by <@{job.user_id}>", now)
            job = await self._job_in_tx(tx, job_id)
        await self.artifacts.delete(job)
        return job

    # ------------------------------------------------------------------ retention

    async def purge(self, now: float | None = None) -> int:
        """Delete the files of jobs older than ``retention_days`` (by render time, else creation time) and
        mark them expired; return how many jobs were purged. Rows are kept. Jobs still waiting for delivery
        (``rendered``) keep their files. Files no job points to (a render that failed half-way, a crash)
        are removed too, and interactions too old to be repeated are forgotten."""
        now = self._now(now)
        cutoff = now - self.settings.retention_days * 86400
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE jobs SET artifacts_purged_at = ? WHERE artifact_dir IS NOT NULL AND artifacts_purged_at IS "
                "NULL AND state NOT IN ('queued', 'running', 'rendered') AND COALESCE(rendered_at, created_at) < ? "
                "RETURNING *", now, cutoff)
            kept = {self._job(r).folder_name for r in await tx.fetch(
                "SELECT * FROM jobs WHERE state = 'running' OR (artifact_dir IS NOT NULL AND "
                "artifacts_purged_at IS NULL)")}
            await tx.execute("DELETE FROM interactions WHERE handled_at < ?", now - INTERACTION_MEMORY_S)
        for r in rows:  # files after the commit: a crash here leaves files, never a row pointing at nothing
            await self.artifacts.delete(self._job(r))
        orphans = await self.artifacts.purge_orphans(kept)
        if rows or orphans:
            log.info("purged the files of %d job(s) and %d left-over file set(s)", len(rows), orphans)
        return len(rows)


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


def _check_may_act(job: Job, actor_id: int, admin: bool, guild_id: int | None, verb: str) -> None:
    """The author may act on their job; an admin only on jobs of their own guild (``guild_id``; None with
    ``admin`` = the bot owner, any guild)."""
    if admin and guild_id is not None and job.guild_id != guild_id:
        raise Refused(f"Morph #{job.id} belongs to another server.")
    if not admin and job.user_id != actor_id:
        raise Refused(f"Morph #{job.id} is not yours; only its author or a server admin can {verb} it.")

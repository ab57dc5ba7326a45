"""The persistent job queue (SQLite through aiosqlite) and every per-guild rule around it.

One :class:`Store` per process wraps one connection. Every change runs in a ``BEGIN IMMEDIATE``
transaction, so checks and writes (limits, claims) are atomic even when several processes share the
database file. Times are Unix seconds from ``Store.clock`` (injectable for tests and the fake Discord);
most methods also take ``now=`` to override it for one call.

Job life: ``queued → running → rendered → delivered``; ``failed`` and ``cancelled`` are final.
A rendered job is never rendered again; a delivered one is never delivered again.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

import aiosqlite

from bot import db
from bot.config import Settings
from bot.validation import check_request
from morph.output import frame_filename
from morph.request import MorphError, RenderRequest

log = logging.getLogger(__name__)

STATES = ("queued", "running", "rendered", "delivered", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
MAX_ATTEMPTS = 3
#: A rendered job's folder (``Job.artifact_dir``) holds these, written by ``bot.worker.write_artifacts``.
GIF_FILE, SHEET_FILE = "morph.gif", "sheet.png"
INTERACTION_TTL_S = 15 * 60
#: SQLite and PostgreSQL integers are signed 64-bit: a larger id (a forged custom id) names no job.
MAX_ID = 2 ** 63 - 1
#: An artifact folder no job points to is removed by the purge once it is this old (a worker may be
#: writing a fresh one right now; its job points to it only after the render is recorded).
ORPHAN_GRACE_S = 3600.0
#: Keys accepted by :meth:`Store.set_limits` (None resets a key to the bot's default).
LIMIT_KEYS = ("max_user_active", "max_guild_queue", "cooldown_s", "max_frames", "banned_words",
              "allowed_channels")


class Refused(MorphError):
    """The request or action is not allowed; ``str(err)`` is the message to show the user."""


class Expired(Refused):
    """The job's frames are gone (retention purge or the delete button)."""


class Pick(NamedTuple):
    """What :meth:`Store.pick` found: the frame's file, and whether this person had picked it before."""

    path: Path
    repeat: bool


@dataclass
class Job:
    id: int
    guild_id: int
    channel_id: int
    user_id: int
    state: str
    request: RenderRequest
    attempts: int = 0
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    rendered_at: float | None = None
    delivered_at: float | None = None
    status_message_id: int | None = None
    result_message_id: int | None = None
    interaction_token: str | None = None
    interaction_expires_at: float | None = None
    application_id: int | None = None
    upload_limit: int = 10 * 1024 * 1024
    result: dict | None = None
    artifact_dir: Path | None = None
    # beyond the contract
    boomerang: bool = False
    finished_at: float | None = None
    heartbeat_at: float | None = None
    worker_id: str | None = None
    cancelled_by: int | None = None
    artifacts_purged_at: float | None = None
    deleted_at: float | None = None
    delivery_attempts: int = 0
    next_delivery_at: float | None = None
    #: random, in the component custom ids and the artifact folder name (None: a job from before 0002)
    token: str | None = None
    withdrawn_at: float | None = None

    @classmethod
    def from_row(cls, row: aiosqlite.Row, data_dir: Path | None = None) -> "Job":
        """A Job from a ``jobs`` row. The row stores only the artifact folder's name; it is resolved in
        ``data_dir`` (older rows stored a path: its last part is the name)."""
        d = dict(row)
        d["request"] = RenderRequest.from_dict(json.loads(d["request"]))
        d["result"] = json.loads(d["result"]) if d["result"] else None
        name = Path(d["artifact_dir"]).name if d["artifact_dir"] else None
        d["artifact_dir"] = (Path(data_dir) / name if data_dir is not None else Path(name)) if name else None
        d["boomerang"] = bool(d["boomerang"])
        return cls(**d)

    @property
    def folder_name(self) -> str:
        """The name of this job's artifact folder in ``MORPH_DATA_DIR``: unique across databases."""
        return f"{self.id}-{self.token}" if self.token else str(self.id)

    def came_from(self, *, guild_id: int | None, channel_id: int | None, message_id: int | None,
                  token: str | None, message: str = "result") -> bool:
        """True when a component or reaction on ``message_id`` in that guild and channel, carrying
        ``token``, belongs to this job: its ``message`` ("result" or "status") message, its token.

        Custom ids carry only the job number and the token, and job numbers start at 1 again in a new
        database: without this check a button of an old message would act on another server's job.
        A custom id without a token (posted before tokens existed) must come from the job's own message.
        """
        if guild_id != self.guild_id or channel_id != self.channel_id:
            return False
        if token is not None or self.token is not None:
            if token != self.token:
                return False
        own = self.result_message_id if message == "result" else self.status_message_id
        if own is None:  # posted, but not recorded yet (a click within the same moment): the token decides
            return token is not None
        return message_id == own

    @property
    def expired(self) -> bool:
        """The artifacts are gone (retention purge or the delete button)."""
        return self.artifacts_purged_at is not None

    @property
    def gif_path(self) -> Path | None:
        return self.artifact_dir / GIF_FILE if self.artifact_dir else None

    @property
    def sheet_path(self) -> Path | None:
        return self.artifact_dir / SHEET_FILE if self.artifact_dir else None

    def frame_path(self, frame: int) -> Path | None:
        """Path of frame ``frame`` (0-based) as written by :func:`morph.output.save_frames`."""
        return self.artifact_dir / frame_filename(frame) if self.artifact_dir else None

    def interaction_alive(self, now: float | None = None) -> bool:
        """True while the interaction token can still be used for followups (15 minutes)."""
        now = time.time() if now is None else now
        return bool(self.interaction_token) and (self.interaction_expires_at or 0) > now


class Store:
    """Async facade over the database. Create with ``await Store.open(path, settings)``."""

    def __init__(self, conn: aiosqlite.Connection, settings: Settings, *,
                 clock: Callable[[], float] = time.time):
        self.conn = conn
        self.settings = settings
        self.clock = clock
        # One connection is shared by all coroutines of this process: serialise our transactions
        # on it (other processes are serialised by SQLite's own write lock).
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, db_path: str | Path, settings: Settings, *,
                   migrations_dir: str | Path = db.MIGRATIONS_DIR,
                   clock: Callable[[], float] = time.time) -> "Store":
        """Connect (WAL, busy timeout, foreign keys) and apply pending migrations.

        Raises :class:`bot.db.MigrationError` when the database is newer than this code.
        """
        conn = await db.connect(db_path)
        try:
            await db.migrate(conn, migrations_dir)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, settings, clock=clock)

    async def close(self) -> None:
        await self.conn.close()

    # ------------------------------------------------------------------ helpers

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else float(now)

    def _job(self, row) -> Job:
        return Job.from_row(row, self.settings.data_dir)

    @contextlib.asynccontextmanager
    async def _tx(self):
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception), under the process lock."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")

    # execute_fetchall: one trip to the connection's thread per query (a cursor takes three), which is
    # what a burst of /morph waits for.
    async def _read(self, sql: str, params: Iterable = ()) -> list[aiosqlite.Row]:
        async with self._lock:
            return list(await self.conn.execute_fetchall(sql, tuple(params)))

    @staticmethod
    async def _fetch(conn, sql: str, params: Iterable = ()) -> list[aiosqlite.Row]:
        return list(await conn.execute_fetchall(sql, tuple(params)))

    async def _job_in_tx(self, conn, job_id: int) -> Job:
        rows = await self._fetch(conn, "SELECT * FROM jobs WHERE id = ?", (job_id,)) if _valid_id(job_id) else []
        if not rows:
            raise Refused(f"There is no morph #{job_id}.")
        return self._job(rows[0])

    async def _audit(self, conn, guild_id: int | None, actor_id: int, action: str, detail: str,
                     now: float) -> None:
        await conn.execute("INSERT INTO audit_log (guild_id, actor_id, action, detail, created_at) "
                           "VALUES (?, ?, ?, ?, ?)", (guild_id, actor_id, action, detail, now))

    async def _limits_in_tx(self, conn, guild_id: int) -> dict:
        rows = await self._fetch(conn, "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return self._limits_from_row(rows[0] if rows else None)

    def _limits_from_row(self, row) -> dict:
        """A guild's effective limits: its own values, but never looser than the operator's settings
        (``MORPH_MAX_*`` are ceilings, ``MORPH_COOLDOWN_S`` a floor), also when the operator tightened them
        after the guild stored its values."""
        s = self.settings
        row = dict(row) if row is not None else {}

        def own(key, default):
            v = row.get(key)
            return default if v is None else v

        return {
            "paused": bool(row.get("paused", 0)),
            "max_user_active": min(int(own("max_user_active", s.max_user_active)), s.max_user_active),
            "max_guild_queue": min(int(own("max_guild_queue", s.max_guild_queue)), s.max_guild_queue),
            "cooldown_s": max(float(own("cooldown_s", s.cooldown_s)), s.cooldown_s),
            "max_frames": min(int(own("max_frames", s.max_frames)), s.max_frames),
            "banned_words": json.loads(row.get("banned_words") or "[]"),
            "allowed_channels": json.loads(row.get("allowed_channels") or "[]"),
        }

    async def _ensure_guild_row(self, conn, guild_id: int) -> None:
        await conn.execute("INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING", (guild_id,))

    # ------------------------------------------------------------------ submitting

    async def enqueue(self, *, guild_id: int, channel_id: int, user_id: int, request: RenderRequest,
                      upload_limit: int, interaction_token: str | None = None,
                      application_id: int | None = None, boomerang: bool = False,
                      now: float | None = None) -> Job:
        """Validate ``request`` and queue it; return the new job.

        Refuses (``Refused``, nothing written) a banned user, a channel outside the guild's allow-list,
        a banned word or any invalid input (``check_request``), more frames than the guild allows, a
        user who already has ``max_user_active`` queued/running jobs, a full guild queue, and a
        submission within ``cooldown_s`` of the user's previous one. A paused guild still accepts jobs
        (they wait until resumed).
        """
        now = self._now(now)
        async with self._tx() as conn:
            limits = await self._limits_in_tx(conn, guild_id)
            if await self._fetch(conn, "SELECT 1 FROM bans WHERE guild_id = ? AND user_id = ?",
                                 (guild_id, user_id)):
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
            mine = await self._fetch(conn, "SELECT id FROM jobs WHERE guild_id = ? AND user_id = ? AND "
                                     "state IN ('queued', 'running') ORDER BY id", (guild_id, user_id))
            if len(mine) >= limits["max_user_active"]:
                n = limits["max_user_active"]
                ids = ", ".join(f"#{r['id']}" for r in mine)
                raise Refused(f"You already have {len(mine)} morph{'s' if len(mine) != 1 else ''} in the queue "
                              f"({ids}); the limit is {n}. Wait for one to finish or cancel it with "
                              "/morph-cancel.")
            (queued,), = await self._fetch(conn, "SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND "
                                           "state IN ('queued', 'running')", (guild_id,))
            if queued >= limits["max_guild_queue"]:
                raise Refused(f"This server's queue is full ({queued} morphs waiting or rendering; the limit "
                              f"is {limits['max_guild_queue']}). Try again in a few minutes.")
            (total,), = await self._fetch(conn, "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
            if total >= self.settings.max_queue:
                raise Refused(f"The bot's queue is full ({total} morphs waiting or rendering across all servers). "
                              "Try again in a few minutes.")
            last = await self._fetch(conn, "SELECT MAX(created_at) FROM jobs WHERE guild_id = ? AND user_id = ? "
                                     "AND withdrawn_at IS NULL", (guild_id, user_id))
            if last[0][0] is not None and now - last[0][0] < limits["cooldown_s"]:
                wait = limits["cooldown_s"] - (now - last[0][0])
                raise Refused(f"Slow down: you can start another morph in {max(1, round(wait))} s.")
            expires = now + INTERACTION_TTL_S if interaction_token else None
            cur = await conn.execute(
                "INSERT INTO jobs (guild_id, channel_id, user_id, state, request, boomerang, created_at, "
                "interaction_token, interaction_expires_at, application_id, upload_limit, token) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                (guild_id, channel_id, user_id, json.dumps(request.to_dict()), int(bool(boomerang)), now,
                 interaction_token, expires, application_id, int(upload_limit), secrets.token_hex(4)))
            return await self._job_in_tx(conn, cur.lastrowid)

    async def get(self, job_id: int) -> Job | None:
        if not _valid_id(job_id):
            return None
        rows = await self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
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
        rows = await self._read("SELECT * FROM jobs WHERE state = 'queued' ORDER BY id")
        return [(job, *places[job.id]) for job in map(self._job, rows) if job.id in places]

    async def _places(self) -> dict[int, tuple[int, bool]]:
        """Job id -> (place in the claim order, guild paused) for every queued job (see queued_positions)."""
        rows = await self._read(
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
        states = _states(states)
        rows = await self._read(f"SELECT * FROM jobs WHERE guild_id = ? AND user_id = ? AND state IN "
                                f"({_marks(states)}) ORDER BY id", (guild_id, user_id, *states))
        return [self._job(r) for r in rows]

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        """Remember the message that shows this job's queue position / progress."""
        async with self._tx() as conn:
            await conn.execute("UPDATE jobs SET status_message_id = ? WHERE id = ?", (message_id, job_id))

    # ------------------------------------------------------------------ worker side

    async def claim(self, worker_id: str, now: float | None = None) -> Job | None:
        """Atomically move the next queued job of an unpaused guild to ``running`` and return it.

        Fair across servers: the next job is the oldest of the guild served longest ago (its
        ``last_claim_seq`` is the lowest; 0 = never), so guilds take turns, one job each, however many one
        of them queued. One ``UPDATE … RETURNING`` inside ``BEGIN IMMEDIATE``: two workers (threads,
        connections or processes) can never claim the same job.
        """
        now = self._now(now)
        async with self._tx() as conn:
            rows = await self._fetch(
                conn,
                "UPDATE jobs SET state = 'running', started_at = ?, heartbeat_at = ?, worker_id = ? "
                "WHERE id = (SELECT j.id FROM jobs j LEFT JOIN guild_settings g ON g.guild_id = j.guild_id "
                "  WHERE j.state = 'queued' AND COALESCE(g.paused, 0) = 0 "
                "  ORDER BY COALESCE(g.last_claim_seq, 0), j.id LIMIT 1) "
                "AND state = 'queued' RETURNING *",
                (now, now, worker_id))
            if not rows:
                return None
            job = self._job(rows[0])
            await self._ensure_guild_row(conn, job.guild_id)
            await conn.execute("UPDATE guild_settings SET last_claim_seq = "
                               "(SELECT MAX(last_claim_seq) FROM guild_settings) + 1 WHERE guild_id = ?",
                               (job.guild_id,))
        return job

    async def heartbeat(self, job_id: int, now: float | None = None, *, worker_id: str | None = None) -> str | None:
        """Record that the worker is still rendering ``job_id``; return the job's current state
        (anything but ``running`` means it was cancelled meanwhile, so the worker should stop).

        With ``worker_id`` (the id the job was claimed with) only that worker's claim counts: if the job
        was recovered (its heartbeat looked stale) and is no longer this worker's, ``"lost"`` is
        returned and nothing is written; the worker must then drop the job without touching it."""
        now = self._now(now)
        async with self._tx() as conn:
            rows = await self._fetch(conn, "SELECT state, worker_id FROM jobs WHERE id = ?", (job_id,))
            if not rows:
                return None
            if worker_id is not None and rows[0]["worker_id"] != worker_id:
                return "lost"
            await conn.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND state = 'running'",
                               (now, job_id))
        return rows[0]["state"]

    async def recover(self, *, worker_id: str | None = None, stale_s: float | None = None,
                      keep: Iterable[int] = (), now: float | None = None) -> list[Job]:
        """Put jobs left ``running`` by a crash back in the queue; return every job it changed.

        Each such job gets ``attempts + 1``; at ``MAX_ATTEMPTS`` it becomes ``failed`` with the reason
        instead (the returned Job says which: notify the failed ones). ``rendered`` jobs are untouched
        (delivery picks them up). Without arguments every running job is recovered (only safe when no
        other process renders from this database). ``worker_id``: only jobs claimed as ``worker_id`` or
        ``worker_id/<run>`` (a restarted worker takes back its own jobs at once, see ``Worker``);
        ``stale_s``: only jobs without a heartbeat for that long (another process died). ``keep``: ids of
        jobs to leave running whatever else matches.
        """
        now = self._now(now)
        where, params = "state = 'running'", []
        if worker_id is not None:
            claimed, claimed_params = _claimed_by(worker_id)
            where += f" AND {claimed}"
            params += claimed_params
        if stale_s is not None:
            where += " AND COALESCE(heartbeat_at, started_at, 0) < ?"
            params.append(now - stale_s)
        keep = [int(i) for i in keep]
        if keep:
            where += f" AND id NOT IN ({_marks(keep)})"
            params += keep
        reason = f"the renderer crashed {MAX_ATTEMPTS} times on this job"
        async with self._tx() as conn:
            ids = [r["id"] for r in await self._fetch(conn, f"SELECT id FROM jobs WHERE {where}", params)]
            for job_id in ids:
                await conn.execute(
                    "UPDATE jobs SET attempts = attempts + 1, worker_id = NULL, "
                    "state = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE 'queued' END, "
                    "error = CASE WHEN attempts + 1 >= ? THEN ? ELSE error END, "
                    "finished_at = CASE WHEN attempts + 1 >= ? THEN ? ELSE NULL END, "
                    "started_at = CASE WHEN attempts + 1 >= ? THEN started_at ELSE NULL END "
                    "WHERE id = ?",
                    (MAX_ATTEMPTS, MAX_ATTEMPTS, reason, MAX_ATTEMPTS, now, MAX_ATTEMPTS, job_id))
            jobs = [await self._job_in_tx(conn, i) for i in ids]
        for j in jobs:
            log.warning("recovered job #%d -> %s (attempts %d)", j.id, j.state, j.attempts)
        return jobs

    async def running(self, worker_id: str) -> list[Job]:
        """Jobs running under ``worker_id`` (claimed as ``worker_id`` or ``worker_id/<run>``), oldest first."""
        claimed, params = _claimed_by(worker_id)
        rows = await self._read(f"SELECT * FROM jobs WHERE state = 'running' AND {claimed} ORDER BY id", params)
        return [self._job(r) for r in rows]

    async def requeue(self, job_id: int, *, worker_id: str | None = None) -> bool:
        """Give a running job back to the queue without counting an attempt (clean worker shutdown).
        With ``worker_id``: only while that worker still holds the job."""
        async with self._tx() as conn:
            cur = await conn.execute("UPDATE jobs SET state = 'queued', started_at = NULL, worker_id = NULL "
                                     "WHERE id = ? AND state = 'running' AND (? IS NULL OR worker_id = ?)",
                                     (job_id, worker_id, worker_id))
            return cur.rowcount == 1

    async def mark_rendered(self, job_id: int, result: dict, artifact_dir: str | Path,
                            now: float | None = None, *, worker_id: str | None = None) -> bool:
        """running → rendered with the result dict and artifact folder (a folder in ``MORPH_DATA_DIR``:
        only its name is stored, so the data folder can move). False (nothing changed) when the job is no
        longer running, e.g. it was cancelled during the render, or (with ``worker_id``) when another
        worker holds it now."""
        now = self._now(now)
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET state = 'rendered', rendered_at = ?, result = ?, artifact_dir = ?, "
                "error = NULL, next_delivery_at = NULL WHERE id = ? AND state = 'running' AND "
                "(? IS NULL OR worker_id = ?)",
                (now, json.dumps(result), Path(artifact_dir).name, job_id, worker_id, worker_id))
            return cur.rowcount == 1

    async def mark_failed(self, job_id: int, error: str, now: float | None = None, *,
                          worker_id: str | None = None) -> bool:
        """queued/running/rendered → failed with a user-facing reason. False if already final (or, with
        ``worker_id``, if the job is not running for that worker any more)."""
        now = self._now(now)
        async with self._tx() as conn:
            if worker_id is None:
                cur = await conn.execute(
                    "UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ? AND state IN "
                    "('queued', 'running', 'rendered')", (error, now, job_id))
            else:
                cur = await conn.execute(
                    "UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ? AND "
                    "state = 'running' AND worker_id = ?", (error, now, job_id, worker_id))
            return cur.rowcount == 1

    async def mark_cancelled(self, job_id: int, now: float | None = None, *,
                             states: tuple[str, ...] = ("queued", "running")) -> bool:
        """running/queued (or any of ``states``) → cancelled (the worker saw ``Cancelled``). False if it
        was in none of them (e.g. already final)."""
        now = self._now(now)
        async with self._tx() as conn:
            cur = await conn.execute("UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND "
                                     f"state IN ({_marks(states)})", (now, job_id, *states))
            return cur.rowcount == 1

    async def cancel(self, job_id: int, *, actor_id: int, admin: bool = False, guild_id: int | None = None,
                     now: float | None = None) -> Job:
        """Cancel a queued or running job and return it (state ``cancelled``).

        Allowed for the author, or with ``admin=True`` for an admin of ``guild_id`` (the job must belong
        to that guild; ``guild_id=None`` with ``admin=True`` is the bot owner, any guild). Admin
        cancels are audited. A running job is marked cancelled at once; its worker notices through
        :meth:`heartbeat` (or ``Worker.request_cancel``) and stops within one denoising step.
        """
        now = self._now(now)
        async with self._tx() as conn:
            job = await self._job_in_tx(conn, job_id)
            _check_may_act(job, actor_id, admin, guild_id, "cancel")
            if job.state not in ACTIVE_STATES:
                raise Refused(f"Morph #{job_id} is already {job.state}; only queued or rendering morphs "
                              "can be cancelled.")
            await conn.execute("UPDATE jobs SET state = 'cancelled', finished_at = ?, cancelled_by = ? "
                               "WHERE id = ?", (now, actor_id, job_id))
            if admin:
                await self._audit(conn, job.guild_id, actor_id, "cancel",
                                  f"#{job_id} by <@{job.user_id}> ({job.state})", now)
            return await self._job_in_tx(conn, job_id)

    async def withdraw(self, job_id: int, now: float | None = None) -> bool:
        """Take back a job whose author never got the /morph answer (queued, running or rendered but not
        yet posted → cancelled), so it neither holds their slot, nor counts for their cooldown, nor gets
        posted. False if already final."""
        now = self._now(now)
        async with self._tx() as conn:
            cur = await conn.execute("UPDATE jobs SET state = 'cancelled', finished_at = ?, withdrawn_at = ? "
                                     "WHERE id = ? AND state IN ('queued', 'running', 'rendered')",
                                     (now, now, job_id))
            return cur.rowcount == 1

    # ------------------------------------------------------------------ delivery side

    async def jobs_to_deliver(self, now: float | None = None) -> list[Job]:
        """Rendered (not deleted) jobs whose next delivery attempt is due, oldest first. Delivered jobs
        are never returned."""
        now = self._now(now)
        rows = await self._read("SELECT * FROM jobs WHERE state = 'rendered' AND deleted_at IS NULL AND "
                                "(next_delivery_at IS NULL OR next_delivery_at <= ?) ORDER BY id", (now,))
        return [self._job(r) for r in rows]

    async def next_retry_at(self, now: float | None = None) -> float | None:
        """The earliest delivery retry still to come (``next_delivery_at`` after ``now``) of a rendered
        job, or None: the delivery loop sleeps until then."""
        now = self._now(now)
        (due,), = await self._read("SELECT MIN(next_delivery_at) FROM jobs WHERE state = 'rendered' AND "
                                   "deleted_at IS NULL AND next_delivery_at > ?", (now,))
        return due

    async def mark_delivered(self, job_id: int, message_id: int | None, now: float | None = None) -> bool:
        """rendered → delivered, remembering the result message (and forgetting the error of a failed
        attempt). False if it was not ``rendered``."""
        now = self._now(now)
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET state = 'delivered', delivered_at = ?, result_message_id = ?, error = NULL, "
                "next_delivery_at = NULL WHERE id = ? AND state = 'rendered'", (now, message_id, job_id))
            return cur.rowcount == 1

    async def delivery_failed(self, job_id: int, error: str, retry_in: float | None,
                              now: float | None = None) -> Job:
        """Record a failed delivery: retry after ``retry_in`` seconds, or (None) give up → failed."""
        now = self._now(now)
        async with self._tx() as conn:
            if retry_in is None:
                await conn.execute("UPDATE jobs SET state = 'failed', error = ?, finished_at = ?, "
                                   "delivery_attempts = delivery_attempts + 1 WHERE id = ? AND state = 'rendered'",
                                   (error, now, job_id))
            else:
                await conn.execute("UPDATE jobs SET error = ?, next_delivery_at = ?, "
                                   "delivery_attempts = delivery_attempts + 1 WHERE id = ? AND state = 'rendered'",
                                   (error, now + retry_in, job_id))
            return await self._job_in_tx(conn, job_id)

    # ------------------------------------------------------------------ picks and results

    async def pick(self, job_id: int, *, user_id: int, frame: int, source: str = "button",
                   now: float | None = None) -> Pick:
        """Record that ``user_id`` picked ``frame`` (0-based); return that frame's PNG path and whether
        the same person had already picked the same frame (``repeat``: answer privately, not again in
        public; nothing is recorded).

        Refuses an unknown job, a user banned in the job's guild, one not rendered yet, an expired/deleted
        one ("this morph has expired"), a frame out of range, and a pick within ``MORPH_PICK_COOLDOWN_S`` of
        the same person's previous pick in that guild (buttons, menu and reactions together).
        """
        now = self._now(now)
        async with self._tx() as conn:
            job = await self._job_in_tx(conn, job_id)
            if await self._fetch(conn, "SELECT 1 FROM bans WHERE guild_id = ? AND user_id = ?",
                                 (job.guild_id, user_id)):
                raise Refused("You are banned from using /morph in this server.")
            path = self._frame_or_refuse(job, frame)
            (last,), = await self._fetch(
                conn, "SELECT MAX(p.created_at) FROM picks p JOIN jobs j ON j.id = p.job_id "
                "WHERE p.user_id = ? AND j.guild_id = ?", (user_id, job.guild_id))
            wait = self.settings.pick_cooldown_s - (now - last) if last is not None else 0
            if wait > 0:
                raise Refused(f"Slow down: you can pick again in {max(1, round(wait))} s.")
            if await self._fetch(conn, "SELECT 1 FROM picks WHERE job_id = ? AND user_id = ? AND frame = ?",
                                 (job_id, user_id, frame)):
                return Pick(path, repeat=True)
            await conn.execute("INSERT INTO picks (job_id, user_id, frame, source, created_at) VALUES (?, ?, ?, ?, ?)",
                               (job_id, user_id, frame, source, now))
            return Pick(path, repeat=False)

    def _frame_or_refuse(self, job: Job, frame: int) -> Path:
        if job.deleted_at is not None or job.expired:
            days = self.settings.retention_days
            raise Expired(f"Morph #{job.id} has expired: its frames were deleted "
                          f"(results are kept {days:g} days).")
        if job.state not in ("rendered", "delivered") or not job.result or job.artifact_dir is None:
            raise Refused(f"Morph #{job.id} has no frames to pick ({job.state}).")
        count = int(job.result.get("frame_count", 0))
        if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < count:
            raise Refused(f"Morph #{job.id} has frames 1 to {count}; there is no frame {frame + 1 if isinstance(frame, int) else frame}.")
        path = job.frame_path(frame)
        if not path.is_file():
            raise Expired(f"Morph #{job.id} has expired: its frames are no longer on disk.")
        return path

    async def picks(self, job_id: int) -> list[dict]:
        """Every pick of the job, oldest first: ``{user_id, frame, source, created_at}``."""
        rows = await self._read("SELECT user_id, frame, source, created_at FROM picks WHERE job_id = ? ORDER BY id",
                                (job_id,))
        return [dict(r) for r in rows]

    async def delete_result(self, job_id: int, *, actor_id: int, admin: bool = False,
                            guild_id: int | None = None, now: float | None = None) -> Job:
        """The ❌ button: author or admin (of ``guild_id``) deletes a rendered/delivered result's files.

        The row stays (state unchanged) with ``deleted_at`` set; picks then answer "expired". The
        caller deletes the Discord message. Admin deletes are audited.
        """
        now = self._now(now)
        async with self._tx() as conn:
            job = await self._job_in_tx(conn, job_id)
            _check_may_act(job, actor_id, admin, guild_id, "delete")
            if job.deleted_at is not None:
                raise Refused(f"Morph #{job_id} was already deleted.")
            await conn.execute("UPDATE jobs SET deleted_at = ?, artifacts_purged_at = COALESCE(artifacts_purged_at, ?) "
                               "WHERE id = ?", (now, now, job_id))
            if admin:
                await self._audit(conn, job.guild_id, actor_id, "delete", f"#{job_id} by <@{job.user_id}>", now)
            job = await self._job_in_tx(conn, job_id)
        self._remove_artifacts(job.artifact_dir)
        return job

    # ------------------------------------------------------------------ admin

    async def list_jobs(self, guild_id: int | None, states: Iterable[str] | None = None,
                        limit: int = 50) -> list[Job]:
        """Jobs of a guild (None: every guild), newest first; ``states`` default: queued and running."""
        states = _states(states or ACTIVE_STATES)
        sql = f"SELECT * FROM jobs WHERE state IN ({_marks(states)})"
        params: list[Any] = list(states)
        if guild_id is not None:
            sql += " AND guild_id = ?"
            params.append(guild_id)
        rows = await self._read(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [self._job(r) for r in rows]

    async def is_paused(self, guild_id: int) -> bool:
        rows = await self._read("SELECT paused FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return bool(rows and rows[0]["paused"])

    async def pause(self, guild_id: int, actor_id: int, now: float | None = None) -> None:
        """Stop the worker from starting this guild's jobs (a running one finishes). Audited."""
        await self._set_paused(guild_id, actor_id, True, now)

    async def resume(self, guild_id: int, actor_id: int, now: float | None = None) -> None:
        await self._set_paused(guild_id, actor_id, False, now)

    async def _set_paused(self, guild_id: int, actor_id: int, paused: bool, now: float | None) -> None:
        now = self._now(now)
        async with self._tx() as conn:
            await self._ensure_guild_row(conn, guild_id)
            await conn.execute("UPDATE guild_settings SET paused = ?, updated_at = ? WHERE guild_id = ?",
                               (int(paused), now, guild_id))
            await self._audit(conn, guild_id, actor_id, "pause" if paused else "resume", "", now)

    async def clear(self, guild_id: int, actor_id: int, now: float | None = None) -> int:
        """Cancel every queued job of this guild (running ones continue); return how many. Audited."""
        now = self._now(now)
        async with self._tx() as conn:
            cur = await conn.execute("UPDATE jobs SET state = 'cancelled', finished_at = ?, cancelled_by = ? "
                                     "WHERE guild_id = ? AND state = 'queued'", (now, actor_id, guild_id))
            n = cur.rowcount
            await self._audit(conn, guild_id, actor_id, "clear", f"{n} queued morph{'s' if n != 1 else ''} cancelled", now)
            return n

    async def guild_left(self, guild_id: int, now: float | None = None) -> list[Job]:
        """The bot left (or was removed from) a guild: cancel its queued and rendering jobs, which could
        never be posted; return them. Audited as a bot action (actor 0)."""
        now = self._now(now)
        async with self._tx() as conn:
            rows = await self._fetch(conn, "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE guild_id = ? "
                                     "AND state IN ('queued', 'running') RETURNING *", (now, guild_id))
            if rows:
                await self._audit(conn, guild_id, 0, "left",
                                  f"the bot left the server: {len(rows)} morph{'s' if len(rows) != 1 else ''} "
                                  "cancelled", now)
        return [self._job(r) for r in rows]

    async def ban(self, guild_id: int, user_id: int, actor_id: int, now: float | None = None) -> int:
        """Ban a user from /morph in this guild and cancel their queued jobs (returned count). Audited."""
        now = self._now(now)
        async with self._tx() as conn:
            await conn.execute("INSERT OR REPLACE INTO bans (guild_id, user_id, actor_id, created_at) "
                               "VALUES (?, ?, ?, ?)", (guild_id, user_id, actor_id, now))
            cur = await conn.execute("UPDATE jobs SET state = 'cancelled', finished_at = ?, cancelled_by = ? "
                                     "WHERE guild_id = ? AND user_id = ? AND state = 'queued'",
                                     (now, actor_id, guild_id, user_id))
            await self._audit(conn, guild_id, actor_id, "ban", f"<@{user_id}> ({cur.rowcount} queued cancelled)", now)
            return cur.rowcount

    async def unban(self, guild_id: int, user_id: int, actor_id: int, now: float | None = None) -> bool:
        """Lift a ban; False if the user was not banned (still audited)."""
        now = self._now(now)
        async with self._tx() as conn:
            cur = await conn.execute("DELETE FROM bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
            await self._audit(conn, guild_id, actor_id, "unban",
                              f"<@{user_id}>" + ("" if cur.rowcount else " (was not banned)"), now)
            return cur.rowcount == 1

    async def is_banned(self, guild_id: int, user_id: int) -> bool:
        return bool(await self._read("SELECT 1 FROM bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)))

    async def get_limits(self, guild_id: int) -> dict:
        """Effective limits: ``paused, max_user_active, max_guild_queue, cooldown_s, max_frames,
        banned_words (list[str]), allowed_channels (list[int], empty = all)``."""
        rows = await self._read("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return self._limits_from_row(rows[0] if rows else None)

    async def set_limits(self, guild_id: int, actor_id: int, now: float | None = None, **changes) -> dict:
        """Change some of ``LIMIT_KEYS`` for a guild (value None = back to the bot default); return the
        effective limits. Raises Refused for an unknown key, a bad value, or a value looser than the
        operator's settings (nothing changed). Audited."""
        now = self._now(now)
        updates = {k: _check_limit(k, v) for k, v in changes.items()}
        s = self.settings
        for key, cap in (("max_user_active", s.max_user_active), ("max_guild_queue", s.max_guild_queue),
                         ("max_frames", s.max_frames)):
            if updates.get(key) is not None and updates[key] > cap:
                raise Refused(f"{key} can be at most {cap} on this bot (the operator's limit); "
                              "a server can only make it stricter.")
        if updates.get("cooldown_s") is not None and updates["cooldown_s"] < s.cooldown_s:
            raise Refused(f"cooldown_s must be at least {s.cooldown_s:g} s on this bot (the operator's limit); "
                          "a server can only make it longer.")
        if not updates:
            raise Refused("Nothing to change: give at least one limit.")
        async with self._tx() as conn:
            await self._ensure_guild_row(conn, guild_id)
            for key, value in updates.items():
                if key in ("banned_words", "allowed_channels"):
                    value = json.dumps(value or [])
                await conn.execute(f"UPDATE guild_settings SET {key} = ?, updated_at = ? WHERE guild_id = ?",
                                   (value, now, guild_id))
            detail = ", ".join(f"{k}={'default' if v is None else (len(v) if k == 'banned_words' else v)}"
                               + (" words" if k == "banned_words" and v is not None else "")
                               for k, v in updates.items())
            await self._audit(conn, guild_id, actor_id, "limits", detail, now)
            return await self._limits_in_tx(conn, guild_id)

    async def stats(self, guild_id: int | None, now: float | None = None) -> dict:
        """Numbers for ``/morphadmin stats`` (guild None: all guilds): ``queued, running, rendered,
        queue_total`` (all guilds), ``jobs_last_hour, done_last_hour, failed_last_hour,
        mean_render_s`` (last 24 h), ``paused``. Device name/memory come from the Morpher."""
        now = self._now(now)
        g, params = ("", []) if guild_id is None else (" AND guild_id = ?", [guild_id])
        counts = {s: 0 for s in STATES}
        for r in await self._read(f"SELECT state, COUNT(*) AS n FROM jobs WHERE 1{g} GROUP BY state", params):
            counts[r["state"]] = r["n"]
        (hour,), = await self._read(f"SELECT COUNT(*) FROM jobs WHERE created_at >= ?{g}", [now - 3600, *params])
        (done,), = await self._read(f"SELECT COUNT(*) FROM jobs WHERE rendered_at >= ?{g}", [now - 3600, *params])
        (failed,), = await self._read(f"SELECT COUNT(*) FROM jobs WHERE state = 'failed' AND finished_at >= ?{g}",
                                      [now - 3600, *params])
        (mean,), = await self._read(f"SELECT AVG(rendered_at - started_at) FROM jobs WHERE rendered_at >= ?{g}",
                                    [now - 86400, *params])
        (total,), = await self._read("SELECT COUNT(*) FROM jobs WHERE state = 'queued'")
        return {
            "queued": counts["queued"], "running": counts["running"], "rendered": counts["rendered"],
            "delivered": counts["delivered"], "failed": counts["failed"], "cancelled": counts["cancelled"],
            "queue_total": total, "jobs_last_hour": hour, "done_last_hour": done, "failed_last_hour": failed,
            "mean_render_s": mean, "paused": (await self.is_paused(guild_id)) if guild_id is not None else None,
        }

    async def audit_log(self, guild_id: int | None, limit: int = 20) -> list[dict]:
        """Newest first: ``{id, guild_id, actor_id, action, detail, created_at}`` (None: every guild)."""
        if guild_id is None:
            rows = await self._read("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._read("SELECT * FROM audit_log WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
                                    (guild_id, limit))
        return [dict(r) for r in rows]

    async def audit(self, guild_id: int | None, actor_id: int, action: str, detail: str = "",
                    now: float | None = None) -> None:
        """Record an admin action done outside the Store (e.g. a refused admin attempt, if wanted)."""
        async with self._tx() as conn:
            await self._audit(conn, guild_id, actor_id, action, detail, self._now(now))

    # ------------------------------------------------------------------ retention

    async def purge(self, now: float | None = None) -> int:
        """Delete artifact folders of jobs older than ``retention_days`` (by render time, else creation
        time) and mark them expired; return how many jobs were purged. Rows are kept. Jobs still
        waiting for delivery (``rendered``) keep their files. Folders in the data folder that no job
        points to (a render that failed half-way, a crash) are removed too, once ``ORPHAN_GRACE_S`` old."""
        now = self._now(now)
        cutoff = now - self.settings.retention_days * 86400
        async with self._tx() as conn:
            rows = await self._fetch(
                conn, "SELECT * FROM jobs WHERE artifact_dir IS NOT NULL AND "
                "artifacts_purged_at IS NULL AND state NOT IN ('queued', 'running', 'rendered') AND "
                "COALESCE(rendered_at, created_at) < ?", (cutoff,))
            for r in rows:
                await conn.execute("UPDATE jobs SET artifacts_purged_at = ? WHERE id = ?", (now, r["id"]))
            kept = {self._job(r).folder_name if r["artifact_dir"] is None else Path(r["artifact_dir"]).name
                    for r in await self._fetch(conn, "SELECT * FROM jobs WHERE state = 'running' OR "
                                               "(artifact_dir IS NOT NULL AND artifacts_purged_at IS NULL)")}
        for r in rows:  # files after the commit: a crash here leaves files, never a row pointing at nothing
            self._remove_artifacts(self._job(r).artifact_dir)
        orphans = [d for d in _folders(self.settings.data_dir)
                   if d.name not in kept and time.time() - d.stat().st_mtime > ORPHAN_GRACE_S]
        for d in orphans:
            self._remove_artifacts(d)
        if rows or orphans:
            log.info("purged artifacts of %d job(s) and %d folder(s) no job points to", len(rows), len(orphans))
        return len(rows)

    def _remove_artifacts(self, path: Path | None) -> None:
        """Delete an artifact folder, but never anything outside ``MORPH_DATA_DIR`` (nor that folder)."""
        if path is None:
            return
        root, target = Path(self.settings.data_dir).resolve(), Path(path).resolve()
        if target == root or not target.is_relative_to(root):
            log.error("refusing to delete %s: it is not inside the data folder %s", target, root)
            return
        shutil.rmtree(target, ignore_errors=True)


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


def _valid_id(job_id) -> bool:
    return isinstance(job_id, int) and not isinstance(job_id, bool) and 0 < job_id <= MAX_ID


def _states(states: Iterable[str]) -> tuple[str, ...]:
    states = (states,) if isinstance(states, str) else tuple(states)
    bad = [s for s in states if s not in STATES]
    if bad or not states:
        raise ValueError(f"unknown job state(s) {bad}; states are {', '.join(STATES)}")
    return states


def _claimed_by(worker_id: str) -> tuple[str, list]:
    """SQL condition and parameters: the job was claimed as ``worker_id`` or ``worker_id/<run>`` (not by
    names that merely start alike)."""
    return "(worker_id = ? OR substr(worker_id, 1, ?) = ?)", [worker_id, len(worker_id) + 1, worker_id + "/"]


def _marks(items) -> str:
    return ", ".join("?" for _ in items)


def _folders(root: Path) -> list[Path]:
    try:
        return [d for d in Path(root).iterdir() if d.is_dir() and not d.is_symlink()]
    except FileNotFoundError:
        return []


def _check_limit(key: str, value):
    """Validate one ``set_limits`` value; None passes (reset to default)."""
    if key not in LIMIT_KEYS:
        raise Refused(f"Unknown limit {key!r}; limits are: {', '.join(LIMIT_KEYS)}.")
    if value is None:
        return None
    if key in ("max_user_active", "max_guild_queue", "max_frames"):
        lo, hi = {"max_user_active": (1, 100), "max_guild_queue": (1, 10_000), "max_frames": (2, 120)}[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise Refused(f"{key} must be a whole number between {lo} and {hi} (got {value!r}).")
        return value
    if key == "cooldown_s":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
            raise Refused(f"cooldown_s must be between 0 and 86400 seconds (got {value!r}).")
        return float(value)
    if key == "banned_words":
        if isinstance(value, str):
            value = [w for w in value.split(",")]
        words = sorted({" ".join(str(w).split()).casefold() for w in value} - {""})
        if any(len(w) > 100 for w in words) or len(words) > 500:
            raise Refused("banned_words takes at most 500 words of at most 100 characters each.")
        return words
    # allowed_channels
    if isinstance(value, (int, str)):
        value = [value]
    try:
        ids = sorted({int(c) for c in value})
    except (TypeError, ValueError):
        raise Refused(f"allowed_channels must be channel ids (got {value!r}).") from None
    if any(c <= 0 for c in ids):
        raise Refused("allowed_channels must be channel ids (positive numbers).")
    return ids


def _check_may_act(job: Job, actor_id: int, admin: bool, guild_id: int | None, verb: str) -> None:
    """The author may act on their job; an admin only on jobs of their own guild (``guild_id``; None with
    ``admin`` = the bot owner, any guild)."""
    if admin and guild_id is not None and job.guild_id != guild_id:
        raise Refused(f"Morph #{job.id} belongs to another server.")
    if not admin and job.user_id != actor_id:
        raise Refused(f"Morph #{job.id} is not yours; only its author or a server admin can {verb} it.")

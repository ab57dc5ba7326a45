"""What every part of the Store shares: the database, the settings, the clock, and reading a job."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from bot.artifacts import Artifacts, DatabaseArtifacts, FolderArtifacts
from bot.config import Settings
from bot.db import Database
from bot.db.base import Tx
from bot.jobs import STATES, Job, JobState, Refusal, Refused, valid_id

log = logging.getLogger(__name__)

#: How often a long-running process measures its clock against the database's again.
CLOCK_SYNC_S = 300.0
#: A clock further off the database's than this is worth a warning (it is corrected either way).
CLOCK_WARN_S = 2.0


class DatabaseClock:
    """This machine's clock set to the database's (``Store.open``'s default clock): heartbeats, leases,
    take-overs and cooldowns written by processes on different machines compare with one clock. The offset
    is measured at start (:meth:`sync`) and again every :data:`CLOCK_SYNC_S`; ``machine`` is injectable for
    tests (a machine whose clock is 90 s behind)."""

    def __init__(self, machine: Callable[[], float] = time.time) -> None:
        self.machine = machine
        self.offset = 0.0
        self.synced_at: float | None = None  # monotonic

    def __call__(self) -> float:
        return self.machine() + self.offset

    async def sync(self, db: Database) -> None:
        before = self.machine()
        db_now = await db.now()
        after = self.machine()
        offset = db_now - (before + after) / 2
        if abs(offset) > CLOCK_WARN_S and abs(offset - self.offset) > CLOCK_WARN_S:
            log.warning("this machine's clock is %+.1f s off the database's (%s); using the database's time",
                        -offset, db.name)
        self.offset, self.synced_at = offset, time.monotonic()


class StoreBase:
    """The state the Store's parts (:mod:`bot.store`) work on; times are Unix seconds from ``clock``."""

    def __init__(self, db: Database, settings: Settings, *, clock: Callable[[], float] = time.time):
        self.db = db
        self.settings = settings
        self.clock = clock
        self.artifacts: Artifacts = (DatabaseArtifacts(db) if db.dialect == "postgres"
                                     else FolderArtifacts(settings.data_dir))

    async def sync_clock(self) -> None:
        """Measure the clock against the database's again if it is a :class:`DatabaseClock` last measured
        longer than :data:`CLOCK_SYNC_S` ago (long-running loops call this; an injected clock is left alone)."""
        clock = self.clock
        if isinstance(clock, DatabaseClock) and (clock.synced_at is None
                                                 or time.monotonic() - clock.synced_at > CLOCK_SYNC_S):
            await clock.sync(self.db)

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else float(now)

    def _job(self, row: dict) -> Job:
        return Job.from_row(row)

    async def _job_in_tx(self, tx: Tx, job_id: int) -> Job:
        row = await tx.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id) if valid_id(job_id) else None
        if row is None:
            raise Refused(Refusal.NO_JOB, job=job_id)
        return self._job(row)

    async def get(self, job_id: int) -> Job | None:
        if not valid_id(job_id):
            return None
        rows = await self.db.fetch("SELECT * FROM jobs WHERE id = $1", job_id)
        return self._job(rows[0]) if rows else None


async def audit(tx: Tx, guild_id: int | None, actor_id: int, action: str, now: float, **facts) -> None:
    """Write an entry of the admin audit log (the latest are shown by ``/morphadmin list`` and ``stats``),
    inside the action's transaction: the action and its facts (plain values, stored as JSON in ``detail``:
    a job, its author, a count…), which ``bot.cogs.admin.format_audit`` words in the admin's language."""
    await tx.execute("INSERT INTO audit_log (guild_id, actor_id, action, detail, created_at) "
                     "VALUES ($1, $2, $3, $4, $5)",
                     guild_id, actor_id, action, json.dumps(facts), now)


async def ensure_guild_row(tx: Tx, guild_id: int) -> None:
    await tx.execute("INSERT INTO guild_settings (guild_id) VALUES ($1) ON CONFLICT DO NOTHING", guild_id)


def check_states(states) -> tuple[JobState, ...]:
    """``states`` (one or several, members or their values) as JobStates; ValueError names unknown ones."""
    states = (states,) if isinstance(states, str) else tuple(states)
    bad = [s for s in states if s not in STATES]
    if bad or not states:
        raise ValueError(f"unknown job state(s) {bad}; states are {', '.join(STATES)}")
    return tuple(JobState(s) for s in states)


def marks(items, first: int = 1) -> str:
    """``$first, $first+1, …``: one numbered placeholder per item (for the parameters from number ``first`` on;
    both databases run ``$n`` placeholders as written)."""
    return ", ".join(f"${n}" for n in range(first, first + len(items)))


def check_may_act(job: Job, actor_id: int, admin: bool, guild_id: int | None, verb: str) -> None:
    """The author may act on their job; an admin only on jobs of their own guild (``guild_id``; None with
    ``admin`` = the bot owner, any guild)."""
    if admin and guild_id is not None and job.guild_id != guild_id:
        raise Refused(Refusal.OTHER_GUILD, job=job.id)
    if not admin and job.user_id != actor_id:
        raise Refused(Refusal.NOT_YOURS, job=job.id, action=verb)

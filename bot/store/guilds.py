"""Per-guild rules and admin actions: limits (never looser than the operator's settings), bans, pause, clear,
the audit log and the numbers of ``/morphadmin stats``. Mixed into :class:`bot.store.Store`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.db import QUEUE_CHANNEL
from bot.i18n import languages
from bot.jobs import ACTIVE_STATES, STATES, Job, JobState, Refusal, Refused, sql_list
from bot.store.base import StoreBase, audit, check_states, ensure_guild_row, marks
from morph.animation import FORMATS
from morph.request import MAX_FRAMES, MIN_FRAMES

#: Keys accepted by :meth:`GuildRules.set_limits` (None resets a key to the bot's default).
LIMIT_KEYS = ("max_user_active", "max_guild_queue", "cooldown_s", "max_frames", "banned_words",
              "allowed_channels", "default_format", "language", "nsfw_allow", "report_hide_after")


@dataclass(frozen=True)
class Limits:
    """A guild's effective limits (:meth:`GuildRules.get_limits`)."""

    #: workers start none of its jobs (they wait in the queue)
    paused: bool
    #: queued + running jobs per person
    max_user_active: int
    #: queued + running jobs of the whole guild
    max_guild_queue: int
    #: seconds between two /morph of one person
    cooldown_s: float
    max_frames: int
    #: words and phrases refused in prompts (casefolded)
    banned_words: tuple[str, ...]
    #: channel ids where /morph works; empty: every channel
    allowed_channels: tuple[int, ...]
    #: what /morph sends when not told (mp4, gif or both): the guild's choice, else ``MORPH_FORMAT``; not a
    #: limit, but set the same way
    default_format: str
    #: the language of the bot's public posts in this server (a language of ``bot.i18n.languages()``);
    #: None: the server's preferred locale as Discord sends it. Not a limit either
    language: str | None = None
    #: unfiltered results in this guild's age-restricted channels (``nsfw:allow``; bot.safety). Default off.
    nsfw_allow: bool = False
    #: hide a result after this many members reported it (None: never)
    report_hide_after: int | None = None

    @classmethod
    def from_row(cls, row: dict | None, settings: Settings) -> Limits:
        """A guild's ``guild_settings`` row (None: no row), never looser than the operator's ``settings``
        (``MORPH_MAX_*`` are ceilings, ``MORPH_COOLDOWN_S`` a floor), also when the operator tightened them
        after the guild stored its values."""
        s = settings
        row = dict(row) if row is not None else {}

        def own(key, default):
            v = row.get(key)
            return default if v is None else v

        return cls(
            paused=bool(row.get("paused", 0)),
            max_user_active=min(int(own("max_user_active", s.max_user_active)), s.max_user_active),
            max_guild_queue=min(int(own("max_guild_queue", s.max_guild_queue)), s.max_guild_queue),
            cooldown_s=max(float(own("cooldown_s", s.cooldown_s)), s.cooldown_s),
            max_frames=min(int(own("max_frames", s.max_frames)), s.max_frames),
            banned_words=tuple(json.loads(row.get("banned_words") or "[]")),
            allowed_channels=tuple(json.loads(row.get("allowed_channels") or "[]")),
            default_format=row.get("default_format") or s.output_format,
            language=row.get("language") or None,
            nsfw_allow=bool(row.get("nsfw_allow") or 0),
            report_hide_after=row.get("report_hide_after"),
        )

    def capped_frames(self, frames: int) -> int:
        """``frames`` lowered to this server's cap: what a job gets whose frames nobody chose just now (the
        bot's default for /morph, a 🔍 refine, a 🔁 reroll of a longer morph). Frames a person asks for
        are checked against the same cap by :func:`bot.validation.check_request`, which refuses more."""
        return min(int(frames), self.max_frames)


class GuildRules(StoreBase):
    """The guild policy side of :class:`bot.store.Store`."""

    # ------------------------------------------------------------------ limits
    async def get_limits(self, guild_id: int) -> Limits:
        """The guild's effective limits."""
        rows = await self.db.fetch("SELECT * FROM guild_settings WHERE guild_id = $1", guild_id)
        return Limits.from_row(rows[0] if rows else None, self.settings)

    async def set_limits(self, guild_id: int, actor_id: int, now: float | None = None, **changes) -> Limits:
        """Change some of ``LIMIT_KEYS`` for a guild (value None = back to the bot default); return the
        effective limits. Raises Refused for an unknown key, a bad value, or a value looser than the
        operator's settings (nothing changed). Audited."""
        now = self._now(now)
        updates = {k: _check_limit(k, v) for k, v in changes.items()}
        s = self.settings
        for key, cap in (("max_user_active", s.max_user_active), ("max_guild_queue", s.max_guild_queue),
                         ("max_frames", s.max_frames)):
            if updates.get(key) is not None and updates[key] > cap:
                raise Refused(Refusal.LIMIT_ABOVE_CAP, key=key, cap=cap)
        if updates.get("cooldown_s") is not None and updates["cooldown_s"] < s.cooldown_s:
            raise Refused(Refusal.COOLDOWN_BELOW_CAP, cap=s.cooldown_s)
        if not updates:
            raise Refused(Refusal.NOTHING_TO_CHANGE)
        async with self.db.transaction() as tx:
            await ensure_guild_row(tx, guild_id)
            for key, value in updates.items():
                if key in ("banned_words", "allowed_channels"):
                    value = json.dumps(value or [])
                if key == "nsfw_allow":
                    value = int(bool(value))
                await tx.execute(f"UPDATE guild_settings SET {key} = $1, updated_at = $2 WHERE guild_id = $3",
                                 value, now, guild_id)
            # the banned words themselves stay out of the log: only how many there are now
            await audit(tx, guild_id, actor_id, "limits", now, changes={
                k: len(v) if k == "banned_words" and v is not None else v for k, v in updates.items()})
            return Limits.from_row(await tx.fetchrow("SELECT * FROM guild_settings WHERE guild_id = $1", guild_id),
                                   self.settings)

    # ------------------------------------------------------------------ pause, clear, bans
    async def is_paused(self, guild_id: int) -> bool:
        return bool(await self.db.fetchval("SELECT paused FROM guild_settings WHERE guild_id = $1", guild_id))

    async def pause(self, guild_id: int, actor_id: int, now: float | None = None) -> None:
        """Stop workers from starting this guild's jobs (a running one finishes). Audited."""
        await self._set_paused(guild_id, actor_id, True, now)

    async def resume(self, guild_id: int, actor_id: int, now: float | None = None) -> None:
        await self._set_paused(guild_id, actor_id, False, now)

    async def _set_paused(self, guild_id: int, actor_id: int, paused: bool, now: float | None) -> None:
        now = self._now(now)
        async with self.db.transaction() as tx:
            await ensure_guild_row(tx, guild_id)
            await tx.execute("UPDATE guild_settings SET paused = $1, updated_at = $2 WHERE guild_id = $3",
                             int(paused), now, guild_id)
            await audit(tx, guild_id, actor_id, "pause" if paused else "resume", now)
            if not paused:
                tx.notify(QUEUE_CHANNEL)

    async def clear(self, guild_id: int, actor_id: int, now: float | None = None) -> list[Job]:
        """Cancel every queued job of this guild (running ones continue); return the jobs cancelled, as they
        are now (each status message is to say so). Audited."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            rows = await tx.fetch(f"UPDATE jobs SET state = '{JobState.CANCELLED}', finished_at = $1, "
                                  f"cancelled_by = $2 WHERE guild_id = $3 AND state = '{JobState.QUEUED}' RETURNING *",
                                  now, actor_id, guild_id)
            await audit(tx, guild_id, actor_id, "clear", now, count=len(rows))
        return [self._job(r) for r in rows]

    async def guild_left(self, guild_id: int, now: float | None = None) -> list[Job]:
        """The bot left (or was removed from) a guild: cancel its queued and rendering jobs, which could
        never be posted; return them. Audited as a bot action (actor 0)."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            rows = await tx.fetch(f"UPDATE jobs SET state = '{JobState.CANCELLED}', finished_at = $1 "
                                  f"WHERE guild_id = $2 AND state IN {sql_list(ACTIVE_STATES)} RETURNING *",
                                  now, guild_id)
            if rows:
                await audit(tx, guild_id, 0, "left", now, count=len(rows))
        return [self._job(r) for r in rows]

    async def ban(self, guild_id: int, user_id: int, actor_id: int, now: float | None = None) -> list[Job]:
        """Ban a user from /morph in this guild and cancel their queued jobs; return those jobs, as they are
        now. Audited."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO bans (guild_id, user_id, actor_id, created_at) VALUES ($1, $2, $3, $4) "
                             "ON CONFLICT (guild_id, user_id) DO UPDATE SET actor_id = excluded.actor_id, "
                             "created_at = excluded.created_at", guild_id, user_id, actor_id, now)
            rows = await tx.fetch(f"UPDATE jobs SET state = '{JobState.CANCELLED}', finished_at = $1, "
                                  f"cancelled_by = $2 WHERE guild_id = $3 AND user_id = $4 "
                                  f"AND state = '{JobState.QUEUED}' RETURNING *",
                                  now, actor_id, guild_id, user_id)
            await audit(tx, guild_id, actor_id, "ban", now, user=user_id, count=len(rows))
        return [self._job(r) for r in rows]

    async def unban(self, guild_id: int, user_id: int, actor_id: int, now: float | None = None) -> bool:
        """Lift a ban; False if the user was not banned (still audited)."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            n = await tx.execute("DELETE FROM bans WHERE guild_id = $1 AND user_id = $2", guild_id, user_id)
            await audit(tx, guild_id, actor_id, "unban", now, user=user_id, was_banned=bool(n))
            return n == 1

    # ------------------------------------------------------------------ listing, stats, audit
    async def list_jobs(self, guild_id: int | None, states=None, limit: int = 50) -> list[Job]:
        """Jobs of a guild (None: every guild), newest first; ``states`` default: queued and running."""
        checked = check_states(states or ACTIVE_STATES)
        sql = f"SELECT * FROM jobs WHERE state IN ({marks(checked)})"
        params: list[Any] = list(checked)
        if guild_id is not None:
            params.append(guild_id)
            sql += f" AND guild_id = ${len(params)}"
        params.append(limit)
        return [self._job(r) for r in await self.db.fetch(sql + f" ORDER BY id DESC LIMIT ${len(params)}", *params)]

    async def stats(self, guild_id: int | None, now: float | None = None) -> dict:
        """Numbers for ``/morphadmin stats`` (guild None: all guilds): ``queued, running, rendered,
        queue_total`` (all guilds), ``jobs_last_hour, done_last_hour, failed_last_hour,
        mean_render_s`` (last 24 h), ``paused``. Device name/memory come from the Morpher."""
        now = self._now(now)
        # the guild is the last parameter of each query: $1 in the first, $2 in the others
        g1, g2, params = ("", "", []) if guild_id is None else (" AND guild_id = $1", " AND guild_id = $2", [guild_id])
        counts = dict.fromkeys(STATES, 0)
        for r in await self.db.fetch(f"SELECT state, COUNT(*) AS n FROM jobs WHERE TRUE{g1} GROUP BY state", *params):
            counts[JobState(r["state"])] = r["n"]
        value = self.db.fetchval
        hour = await value(f"SELECT COUNT(*) FROM jobs WHERE created_at >= $1{g2}", now - 3600, *params)
        done = await value(f"SELECT COUNT(*) FROM jobs WHERE rendered_at >= $1{g2}", now - 3600, *params)
        failed = await value(f"SELECT COUNT(*) FROM jobs WHERE state = '{JobState.FAILED}' AND finished_at >= $1{g2}",
                             now - 3600, *params)
        mean = await value(f"SELECT AVG(rendered_at - started_at) FROM jobs WHERE rendered_at >= $1{g2}",
                           now - 86400, *params)
        total = await value(f"SELECT COUNT(*) FROM jobs WHERE state = '{JobState.QUEUED}'")
        return {
            **{state.value: n for state, n in counts.items()},
            "queue_total": total, "jobs_last_hour": hour, "done_last_hour": done, "failed_last_hour": failed,
            "mean_render_s": mean, "paused": (await self.is_paused(guild_id)) if guild_id is not None else None,
        }

    async def audit_log(self, guild_id: int | None, limit: int = 20) -> list[dict]:
        """Newest first: ``{id, guild_id, actor_id, action, facts, created_at}`` (None: every guild); ``facts``
        as :func:`bot.store.base.audit` wrote them (``{"text": …}``: an entry from before 0013, as written)."""
        if guild_id is None:
            rows = await self.db.fetch("SELECT * FROM audit_log ORDER BY id DESC LIMIT $1", limit)
        else:
            rows = await self.db.fetch("SELECT * FROM audit_log WHERE guild_id = $1 ORDER BY id DESC LIMIT $2",
                                       guild_id, limit)
        return [{k: v for k, v in r.items() if k != "detail"} | {"facts": json.loads(r["detail"])} for r in rows]


def _check_limit(key: str, value):
    """Validate one ``set_limits`` value; None passes (reset to default)."""
    if key not in LIMIT_KEYS:
        raise Refused(Refusal.UNKNOWN_LIMIT, key=key, keys=list(LIMIT_KEYS))
    if value is None:
        return None
    if key in ("max_user_active", "max_guild_queue", "max_frames"):
        lo, hi = {"max_user_active": (1, 100), "max_guild_queue": (1, 10_000),
                  "max_frames": (MIN_FRAMES, MAX_FRAMES)}[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise Refused(Refusal.LIMIT_RANGE, key=key, low=lo, high=hi, value=value)
        return value
    if key == "cooldown_s":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
            raise Refused(Refusal.COOLDOWN_RANGE, value=value)
        return float(value)
    if key == "nsfw_allow":
        if not isinstance(value, bool):
            raise Refused(Refusal.NSFW_ALLOW_VALUE, value=value)
        return value
    if key == "report_hide_after":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise Refused(Refusal.REPORT_HIDE_RANGE, value=value)
        return value
    if key == "default_format":
        if value not in FORMATS:
            raise Refused(Refusal.BAD_FORMAT, option="default_format", value=value, choices=list(FORMATS))
        return value
    if key == "language":
        if value not in languages():
            raise Refused(Refusal.BAD_LANGUAGE, value=value, choices=list(languages()))
        return value
    if key == "banned_words":
        if isinstance(value, str):
            value = [w for w in value.split(",")]
        words = sorted({" ".join(str(w).split()).casefold() for w in value} - {""})
        if any(len(w) > 100 for w in words) or len(words) > 500:
            raise Refused(Refusal.BANNED_WORDS_TOO_MANY, words=500, chars=100)
        return words
    # allowed_channels
    if isinstance(value, (int, str)):
        value = [value]
    try:
        ids = sorted({int(c) for c in value})
    except (TypeError, ValueError):
        raise Refused(Refusal.CHANNEL_IDS, value=value) from None
    if any(c <= 0 for c in ids):
        raise Refused(Refusal.CHANNEL_IDS, value=value)
    return ids

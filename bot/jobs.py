"""A morph job as the database holds it (:class:`Job`), and the answers the Store gives about it."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from bot.result import JobProgress, JobResult, SafetyOutcome
from morph.request import MorphError, RenderRequest


class JobState(str, Enum):
    """A job's state: ``queued → running → rendered → delivered``; ``failed``, ``cancelled`` and ``withheld``
    (the safety filter kept the whole result from its channel: :mod:`bot.safety`) are final.

    A ``str``: each member equals its value (what the database stores and JSON carries), and ``str()`` /
    f-strings give the value, also inside SQL text (:func:`sql_list`)."""

    QUEUED = "queued"
    RUNNING = "running"
    RENDERED = "rendered"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    WITHHELD = "withheld"

    def __str__(self) -> str:
        return self.value


STATES = tuple(JobState)
#: Waiting for or holding a worker: what the per-person and per-server limits count.
ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
#: Bytes a message may upload when Discord does not tell (a server without boosts): a job's default.
DEFAULT_UPLOAD_LIMIT = 10 * 2**20
#: SQLite and PostgreSQL integers are signed 64-bit: a larger id (a forged custom id) names no job.
MAX_ID = 2 ** 63 - 1


class Refusal(str, Enum):
    """What was refused. Each kind's facts travel in :attr:`Refused.values` (named below); the text a member
    reads is made from them in one place, :func:`bot.messages.refusal_text`, in the member's language."""

    NO_JOB = "no_job"                          # job
    OTHER_GUILD = "other_guild"                # job
    NOT_YOURS = "not_yours"                    # job, action ("cancel" | "delete")
    BANNED = "banned"
    PICK_COOLDOWN = "pick_cooldown"            # seconds
    NO_FRAMES = "no_frames"                    # job, state
    NO_SUCH_FRAME = "no_such_frame"            # job, count, frame (1-based, or what was given)
    ALREADY_DELETED = "already_deleted"        # job
    EXPIRED = "expired"                        # job
    EXPIRED_RETENTION = "expired_retention"    # job, days
    NOT_ACTIVE = "not_active"                  # job, state
    CHANNEL_NOT_ALLOWED = "channel_not_allowed"  # channels (ids)
    INVALID = "invalid"                        # detail (the validation's message: bot.validation, morph.request)
    BAD_FORMAT = "bad_format"                  # option ("format" | "default_format"), value, choices
    USER_QUEUE_FULL = "user_queue_full"        # jobs (ids), limit
    GUILD_QUEUE_FULL = "guild_queue_full"      # count, limit
    BOT_QUEUE_FULL = "bot_queue_full"          # count
    COOLDOWN = "cooldown"                      # seconds
    LIMIT_ABOVE_CAP = "limit_above_cap"        # key, cap
    COOLDOWN_BELOW_CAP = "cooldown_below_cap"  # cap (seconds)
    NOTHING_TO_CHANGE = "nothing_to_change"
    UNKNOWN_LIMIT = "unknown_limit"            # key, keys
    LIMIT_RANGE = "limit_range"                # key, low, high, value
    COOLDOWN_RANGE = "cooldown_range"          # value
    BANNED_WORDS_TOO_MANY = "banned_words_too_many"  # words, chars (the caps)
    CHANNEL_IDS = "channel_ids"                # value
    BAD_LANGUAGE = "bad_language"              # value, choices
    PROMPT_MENTION = "prompt_mention"          # what (a PROMPT_NAMES entry), mention; kind (user/role/channel)
    PROMPT_LINK = "prompt_link"                # what
    PROMPT_BANNED = "prompt_banned"            # what
    FRAMES_OVER_CAP = "frames_over_cap"        # cap (the server's max_frames), value
    PICTURES_GONE = "pictures_gone"            # job (the morph they were to be copied from, or None)
    # content safety (bot.safety)
    SAFETY_OFF = "safety_off"                  # (MORPH_SAFETY=off and the channel is not age-restricted)
    PROMPT_BLOCKED = "prompt_blocked"          # what (a word of the operator's MORPH_BLOCKLIST)
    WITHHELD_FRAME = "withheld_frame"          # job, frame (1-based)
    WITHHELD_GAP = "withheld_gap"              # job, first, second (1-based: a 🔍 refine next to a withheld frame)
    WITHHELD_REROLL = "withheld_reroll"        # job (🔁 on a result with withheld frames)
    UPLOAD_FLAGGED = "upload_flagged"          # what ("first picture" or "second picture")
    SAFETY_UNAVAILABLE = "safety_unavailable"  # (the check of uploads could not run: its checker did not load)
    NO_RESULT_TO_REPORT = "no_result_to_report"  # job
    NSFW_ALLOW_VALUE = "nsfw_allow_value"      # value
    REPORT_HIDE_RANGE = "report_hide_range"    # value


class Refused(MorphError):
    """The request or action is not allowed: :attr:`kind` says what was refused and :attr:`values` holds its
    facts (job numbers, counts, limits, what was given). The Store raises it in the front and in the worker
    alike, so it holds no Discord text; :func:`bot.messages.refusal_text` renders it. ``str(err)`` is a plain
    summary for logs."""

    def __init__(self, kind: Refusal, /, **values) -> None:
        self.kind = Refusal(kind)
        self.values = values
        facts = ", ".join(f"{k}={v!r}" for k, v in values.items())
        super().__init__(f"{self.kind.value}" + (f" ({facts})" if facts else ""))


class Expired(Refused):
    """The job's frames are gone (retention purge or the delete button)."""


class Pick(NamedTuple):
    """What :meth:`Store.pick` found: the frame's PNG, and whether this person had picked it before."""

    data: bytes
    repeat: bool


@dataclass
class Job:
    id: int
    guild_id: int
    channel_id: int
    user_id: int
    state: JobState
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
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    #: what the render made (None until it is rendered)
    result: JobResult | None = None
    #: the name of the job's files (a folder in MORPH_DATA_DIR, see bot.artifacts); None before rendering
    artifact_dir: str | None = None
    boomerang: bool = False
    finished_at: float | None = None
    heartbeat_at: float | None = None
    #: who renders it: MORPH_WORKER_ID, and the run of that worker (new at every start)
    worker_id: str | None = None
    run_id: str | None = None
    #: the worker's latest progress (None before its first heartbeat with progress)
    progress: JobProgress | None = None
    cancelled_by: int | None = None
    artifacts_purged_at: float | None = None
    deleted_at: float | None = None
    delivery_attempts: int = 0
    next_delivery_at: float | None = None
    #: random (8 hex digits), in the component custom ids and the artifact folder name
    token: str = ""
    withdrawn_at: float | None = None
    failure_shown_at: float | None = None
    #: what the animation is encoded as: "mp4", "gif" or "both"
    output_format: str = "gif"
    #: a 🔍 refine: the job it refines, and the message (that job's result) its result replies to
    parent_id: int | None = None
    reply_to_message_id: int | None = None
    #: the language of the job's public messages (status, result, picks, errors): a language of
    #: ``bot.i18n.languages()``, decided at enqueue (None: English)
    language: str | None = None
    #: bytes its stored files and uploaded pictures take (None: not rendered, or from before the storage budget)
    stored_bytes: int | None = None
    # --- content safety (0009; bot.safety) ---
    #: Discord marked the channel age-restricted (a thread: its parent) when /morph was used
    channel_nsfw: bool = False
    #: the image check's outcome; None before rendering or without a check
    safety: SafetyOutcome | None = None
    #: the result was hidden after reports (its message deleted)
    hidden_at: float | None = None

    @classmethod
    def from_row(cls, row: dict) -> Job:
        d = dict(row)
        d["state"] = JobState(d["state"])
        d["request"] = RenderRequest.from_dict(json.loads(d["request"]))
        d["result"] = JobResult.from_json(d["result"]) if d["result"] else None
        d["progress"] = JobProgress.from_json(d["progress"]) if d.get("progress") else None
        d["boomerang"] = bool(d["boomerang"])
        d["channel_nsfw"] = bool(d["channel_nsfw"])
        d["safety"] = SafetyOutcome.from_json(d["safety"]) if d["safety"] else None
        return cls(**d)

    @property
    def folder_name(self) -> str:
        """The name of this job's files: unique across databases."""
        return f"{self.id}-{self.token}"

    def came_from(self, *, guild_id: int | None, channel_id: int | None, message_id: int | None,
                  token: str, message: str = "result") -> bool:
        """True when a component or reaction on ``message_id`` in that guild and channel, carrying
        ``token``, belongs to this job: its ``message`` ("result" or "status") message, its token.

        Custom ids carry only the job number and the token, and job numbers start at 1 again in a new
        database: without this check a button of an old message would act on another server's job.
        """
        if guild_id != self.guild_id or channel_id != self.channel_id or token != self.token:
            return False
        own = self.result_message_id if message == "result" else self.status_message_id
        # posted, but not recorded yet (a click within the same moment): the token decides
        return own is None or message_id == own

    def rendered(self) -> JobResult:
        """``result``, for a job known to be rendered (rendered and delivered rows always have one)."""
        if self.result is None:
            raise ValueError(f"job #{self.id} has no result ({self.state})")
        return self.result

    @property
    def format(self) -> str:
        """``mp4``, ``gif`` or ``both``."""
        return self.output_format

    @property
    def expired(self) -> bool:
        """The artifacts are gone (retention purge or the delete button)."""
        return self.artifacts_purged_at is not None

    def interaction_alive(self, now: float | None = None) -> bool:
        """True while the interaction token can still be used for followups (15 minutes)."""
        now = time.time() if now is None else now
        return bool(self.interaction_token) and (self.interaction_expires_at or 0) > now


def valid_id(job_id) -> bool:
    return isinstance(job_id, int) and not isinstance(job_id, bool) and 0 < job_id <= MAX_ID


def sql_list(states) -> str:
    """States as an SQL list, ``('queued', 'running')`` (only for JobState members, never user input)."""
    return "(" + ", ".join(f"'{JobState(s)}'" for s in states) + ")"

"""Settings from the environment and an optional ``.env`` file (the environment wins).

Every setting is listed in ``.env.example``. A bad value (``MORPH_COOLDOWN_S=abc``) raises
:class:`ConfigError` naming the variable, so the bot refuses to start with a clear message instead of
failing later.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from morph.animation import FORMATS
from morph.profiles import PROFILE_NAMES
from morph.request import MAX_FRAMES, MAX_STEPS, MIN_FRAMES, MIN_STEPS, PATHS, MorphError, parse_loras

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
PLAYGROUND_MODEL = "toy"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A setting has a value the bot cannot use; ``str(err)`` names the variable and the fix."""


#: Settings never shown in ``repr(Settings)`` (logs, tracebacks): only whether they are set.
SECRET_FIELDS = ("discord_token",)


@dataclass(frozen=True)
class Settings:
    discord_token: str = ""
    #: MORPH_DB: a SQLite file (absolute once read) or a ``postgresql://`` URL (see bot.db)
    db_path: Path | str = Path("./data/morph.sqlite3")
    data_dir: Path = Path("./data/artifacts")
    model: str = DEFAULT_MODEL
    device: str | None = None  # None: CUDA when available, then MPS, else CPU
    compile: bool = False  # MORPH_COMPILE: torch.compile the UNet (faster renders, slow first load)
    run_worker: bool = True  # MORPH_WORKER: this morph-bot process also renders (0: Discord front only)
    loras: tuple[tuple[str, float], ...] = ()  # MORPH_LORAS: (path, weight) LoRA styles fused in at load
    profile: str = "auto"  # MORPH_PROFILE: sampler/steps/guidance defaults (morph.profiles); auto = from the model
    dev_guild_id: int | None = None
    owner_ids: tuple[int, ...] = ()
    max_user_active: int = 2
    max_guild_queue: int = 20
    max_queue: int = 200  # MORPH_MAX_QUEUE: queued + rendering morphs of every server together
    cooldown_s: float = 30.0
    pick_cooldown_s: float = 3.0  # MORPH_PICK_COOLDOWN_S: seconds between one person's picks in one server
    default_frames: int = 24
    max_frames: int = 60
    default_steps: int | None = None  # None: the model's default (25, or 4 for a few-step model)
    #: MORPH_PATH: the path a /morph gets when its ``path`` option is left out (morph.request.PATHS)
    path: str = "smooth"
    #: MORPH_FORMAT: what /morph sends when neither the command nor the server says (morph.animation.FORMATS)
    output_format: str = "both"
    retention_days: float = 14.0
    #: MORPH_STORAGE_MAX_GB: every stored result together (0: no budget); MORPH_STORAGE_GUILD_SHARE: the
    #: part of it one server's results may take. Beyond either, the oldest results expire first.
    storage_max_gb: float = 20.0
    storage_guild_share: float = 0.25
    log_level: str = "INFO"
    api_base: str | None = None  # DISCORD_API_BASE; None = real Discord
    gateway_url: str | None = None  # DISCORD_GATEWAY_URL; None = real Discord
    #: DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS: this process runs Discord shards ``shard_ids`` (None: all)
    #: of ``shard_count``. ``shard_count`` None (the default): unsharded, one gateway session.
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    #: MORPH_WORKER_ID: names this process's render worker in the database. A restarted process takes
    #: back at once the jobs its earlier run left ``running``; so every process that renders from the
    #: same database needs its own id (default: the host name, enough for one process per host).
    worker_id: str = field(default_factory=socket.gethostname)
    playground_host: str = "127.0.0.1"  # PLAYGROUND_HOST: where `morph-bot --playground` serves its page
    playground_port: int = 8765  # PLAYGROUND_PORT (0 = any free port)
    #: PLAYGROUND_ALLOW_REMOTE: serve the playground on a PLAYGROUND_HOST other machines can reach
    #: (anyone there can use it as any of its members); without it such a host is refused at start.
    playground_allow_remote: bool = False
    # --- content safety (bot.safety, morph.safety) ---
    #: MORPH_SAFETY: check every frame with the image safety checker (on, the default). Off: no checker is
    #: loaded and /morph works only in age-restricted channels.
    safety: bool = True
    #: MORPH_SAFETY_CHECKER: the checker for models without their own safety_checker/ folder (repo id or
    #: folder); None: morph.safety.DEFAULT_CHECKER (the built-in random models use the toy one)
    safety_checker: str | None = None
    #: MORPH_BLOCKLIST: words and phrases refused in every server's prompts (read from that file)
    blocklist: tuple[str, ...] = ()
    blocklist_path: str | None = None

    def __post_init__(self) -> None:
        # Absolute from the start: a job's files must be found (and only its files deleted) whatever the
        # working directory of a later process is.
        object.__setattr__(self, "db_path", _absolute(self.db_path))
        object.__setattr__(self, "data_dir", _absolute(self.data_dir))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike | None = ".env",
                 *, playground: bool = False) -> Settings:
        """Read settings from ``env`` (default ``os.environ``) over the values in ``dotenv_path``.

        A missing ``.env`` is fine; ``dotenv_path=None`` skips it. ``playground=True`` makes the model
        default ``toy`` (the small model trained on coloured shapes that ships in the repo; no download).
        Raises :class:`ConfigError` for bad values.
        """
        values: dict[str, str] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            values.update(parse_dotenv(Path(dotenv_path).read_text(encoding="utf-8"), str(dotenv_path)))
        values.update(os.environ if env is None else env)

        def get(name: str) -> str | None:
            v = values.get(name)
            return None if v is None or v.strip() == "" else v.strip()

        s = cls(
            discord_token=get("DISCORD_TOKEN") or "",
            db_path=get("MORPH_DB") or cls.db_path,
            data_dir=Path(get("MORPH_DATA_DIR") or cls.data_dir),
            model=get("MORPH_MODEL") or (PLAYGROUND_MODEL if playground else DEFAULT_MODEL),
            device=get("MORPH_DEVICE"),
            compile=_bool(get, "MORPH_COMPILE", cls.compile),
            run_worker=_bool(get, "MORPH_WORKER", cls.run_worker),
            loras=_loras(get, "MORPH_LORAS"),
            profile=(get("MORPH_PROFILE") or cls.profile).lower(),
            dev_guild_id=_int(get, "DEV_GUILD_ID", None, lo=1),
            owner_ids=_id_list(get, "OWNER_IDS"),
            max_user_active=_int(get, "MORPH_MAX_USER_ACTIVE", cls.max_user_active, lo=1),
            max_guild_queue=_int(get, "MORPH_MAX_GUILD_QUEUE", cls.max_guild_queue, lo=1),
            max_queue=_int(get, "MORPH_MAX_QUEUE", cls.max_queue, lo=1),
            cooldown_s=_float(get, "MORPH_COOLDOWN_S", cls.cooldown_s, lo=0),
            pick_cooldown_s=_float(get, "MORPH_PICK_COOLDOWN_S", cls.pick_cooldown_s, lo=0),
            default_frames=_int(get, "MORPH_DEFAULT_FRAMES", cls.default_frames, lo=MIN_FRAMES, hi=MAX_FRAMES),
            max_frames=_int(get, "MORPH_MAX_FRAMES", cls.max_frames, lo=MIN_FRAMES, hi=MAX_FRAMES),
            default_steps=_int(get, "MORPH_DEFAULT_STEPS", cls.default_steps, lo=MIN_STEPS, hi=MAX_STEPS),
            path=(get("MORPH_PATH") or cls.path).strip().lower(),
            output_format=(get("MORPH_FORMAT") or cls.output_format).lower(),
            retention_days=_float(get, "MORPH_RETENTION_DAYS", cls.retention_days, lo=0),
            storage_max_gb=_float(get, "MORPH_STORAGE_MAX_GB", cls.storage_max_gb, lo=0),
            storage_guild_share=_float(get, "MORPH_STORAGE_GUILD_SHARE", cls.storage_guild_share, lo=0.01, hi=1),
            log_level=(get("LOG_LEVEL") or cls.log_level).upper(),
            api_base=_url(get, "DISCORD_API_BASE", ("http://", "https://")),
            gateway_url=_url(get, "DISCORD_GATEWAY_URL", ("ws://", "wss://")),
            shard_count=_int(get, "DISCORD_SHARD_COUNT", None, lo=1),
            shard_ids=_shard_ids(get),
            worker_id=get("MORPH_WORKER_ID") or socket.gethostname(),
            playground_host=get("PLAYGROUND_HOST") or cls.playground_host,
            playground_port=_int(get, "PLAYGROUND_PORT", cls.playground_port, lo=0, hi=65535),
            playground_allow_remote=_bool(get, "PLAYGROUND_ALLOW_REMOTE", cls.playground_allow_remote),
            safety=_bool(get, "MORPH_SAFETY", cls.safety, "on or off"),
            safety_checker=get("MORPH_SAFETY_CHECKER"),
            blocklist=_blocklist(get("MORPH_BLOCKLIST")),
            blocklist_path=get("MORPH_BLOCKLIST"),
        )
        _check_shards(s.shard_count, s.shard_ids)
        if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,200}", s.worker_id):
            raise ConfigError(f"MORPH_WORKER_ID must be 1-200 letters, digits or . _ : @ - (got {s.worker_id!r}).")
        if s.profile not in PROFILE_NAMES:
            raise ConfigError(f"MORPH_PROFILE must be one of {', '.join(PROFILE_NAMES)} (got {s.profile!r}).")
        if s.path not in PATHS:
            raise ConfigError(f"MORPH_PATH must be one of {', '.join(PATHS)} (got {s.path!r}).")
        if s.output_format not in FORMATS:
            raise ConfigError(f"MORPH_FORMAT must be one of {', '.join(FORMATS)} (got {s.output_format!r}).")
        if s.log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (got {s.log_level!r}).")
        if s.default_frames > s.max_frames:
            raise ConfigError(f"MORPH_DEFAULT_FRAMES ({s.default_frames}) is larger than MORPH_MAX_FRAMES "
                              f"({s.max_frames}).")
        return s

    def __repr__(self) -> str:
        def shown(name: str):
            value = getattr(self, name)
            if name == "db_path" and isinstance(value, str):
                return mask_url(value)
            return ("<set>" if value else "") if name in SECRET_FIELDS else value

        return f"{type(self).__name__}({', '.join(f'{f.name}={shown(f.name)!r}' for f in dataclasses.fields(self))})"

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed (handy in tests)."""
        return dataclasses.replace(self, **changes)


def is_postgres(target: str | Path) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL; anything else is a SQLite file path."""
    return str(target).startswith(("postgresql://", "postgres://"))


def _absolute(path) -> Path | str:
    if is_postgres(path):
        check_postgres_url(str(path))
        return str(path)
    path = Path(path)
    return path if str(path) == ":memory:" else path.expanduser().resolve()


def parse_dotenv(text: str, source: str = ".env") -> dict[str, str]:
    """Parse ``KEY=value`` lines: ``#`` comments, optional ``export``, single/double quoted values,
    `` # comment`` after an unquoted value. Raises ConfigError naming the line of anything else."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if not m:
            # Never echo the line: it may be a token written the wrong way (``DISCORD_TOKEN: MTIz…``).
            # Name its key only when it looks like one (upper case); a bare secret is mixed case.
            named = re.match(r"(?:export\s+)?([A-Z][A-Z0-9_]{0,63})\b", line)
            what = f" (it starts with {named.group(1)})" if named else ""
            raise ConfigError(f"{source}, line {n}{what}: expected KEY=value; the line is not shown here, as it "
                              "may hold a secret.")
        key, value = m.group(1), m.group(2)
        if value[:1] in ("'", '"'):
            q = value[0]
            end = value.find(q, 1)
            if end < 0:
                raise ConfigError(f"{source}, line {n}: the quote opened for {key} is never closed.")
            rest = value[end + 1:].strip()
            if rest and not rest.startswith("#"):
                raise ConfigError(f"{source}, line {n}: unexpected text after the quoted value of {key}.")
            value = value[1:end]
        else:
            value = re.split(r"(?:^|\s+)#", value, maxsplit=1)[0].strip()
        out[key] = value
    return out


_IntDefault = TypeVar("_IntDefault", bound=int | None)


def _int(get, name: str, default: _IntDefault, lo: int | None = None, hi: int | None = None) -> int | _IntDefault:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number (got {raw!r}).") from None
    _check_range(name, value, lo, hi)
    return value


def _float(get, name: str, default: float, lo: float | None = None, hi: float | None = None) -> float:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number (got {raw!r}).") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name} must be a finite number (got {raw!r}).")
    _check_range(name, value, lo, hi)
    return value


def _bool(get, name: str, default: bool, expected: str = "1 or 0 (also true/false, yes/no, on/off)") -> bool:
    raw = get(name)
    if raw is None:
        return default
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be {expected} (got {raw!r}).")


def _blocklist(path: str | None) -> tuple[str, ...]:
    """The words and phrases of a MORPH_BLOCKLIST file: one per line; blank lines and lines starting with
    ``#`` are skipped. A file that cannot be read stops the start (an operator's list must not be ignored)."""
    if path is None:
        return ()
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"MORPH_BLOCKLIST: cannot read {path!r} ({err}).") from err
    entries = [" ".join(line.split()) for line in text.splitlines()]
    return tuple(dict.fromkeys(e.casefold() for e in entries if e and not e.startswith("#")))


def _check_range(name, value, lo, hi) -> None:
    if lo is not None and value < lo:
        raise ConfigError(f"{name} must be at least {lo} (got {value}).")
    if hi is not None and value > hi:
        raise ConfigError(f"{name} must be at most {hi} (got {value}).")


def _loras(get, name: str) -> tuple[tuple[str, float], ...]:
    try:
        return parse_loras(get(name))
    except MorphError as err:
        raise ConfigError(f"{name}: {err}") from None


def _id_list(get, name: str) -> tuple[int, ...]:
    raw = get(name)
    if raw is None:
        return ()
    ids = []
    for part in re.split(r"[,\s]+", raw):
        if not part:
            continue
        if not part.isdigit():
            raise ConfigError(f"{name} must be Discord user ids separated by commas (bad entry {part!r}).")
        ids.append(int(part))
    return tuple(ids)


def _shard_ids(get) -> tuple[int, ...] | None:
    raw = get("DISCORD_SHARD_IDS")
    if raw is None:
        return None
    parts = [p for p in re.split(r"[,\s]+", raw) if p]
    bad = [p for p in parts if not p.isdigit()]
    if bad or not parts:
        raise ConfigError(f"DISCORD_SHARD_IDS must be shard numbers separated by commas, e.g. 0,1 "
                          f"(got {raw!r}).")
    return tuple(int(p) for p in parts)


def _check_shards(count: int | None, ids: tuple[int, ...] | None) -> None:
    if ids is None:
        return
    if count is None:
        raise ConfigError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT, the bot's total number of shards "
                          "(e.g. DISCORD_SHARD_COUNT=4 with DISCORD_SHARD_IDS=0,1 here and 2,3 elsewhere).")
    outside = [i for i in ids if i >= count]
    if outside:
        raise ConfigError(f"DISCORD_SHARD_IDS must be between 0 and {count - 1} with DISCORD_SHARD_COUNT={count} "
                          f"(got {', '.join(map(str, outside))}).")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"DISCORD_SHARD_IDS lists a shard twice ({', '.join(map(str, ids))}).")


def _url(get, name: str, schemes: tuple[str, ...]) -> str | None:
    raw = get(name)
    if raw is None:
        return None
    if not raw.startswith(schemes):
        raise ConfigError(f"{name} must start with {' or '.join(schemes)} (got {raw!r}).")
    return raw.rstrip("/")


# ---------------------------------------------------------------------------------------------- the database URL

def url_passwords(url: str) -> list[str]:
    """The passwords a PostgreSQL URL carries: ``user:password@host`` and ``?password=…``."""
    parts = urllib.parse.urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k == "password" and v]
    return found


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``***`` (for ``repr(Settings)``, messages and logs)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = "&".join(f"{k}=***" if k == "password" else f"{k}={urllib.parse.quote(v, safe='')}"
                     for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query if parts.query else ""))


def mask_secrets(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message) with the passwords of ``url`` replaced by ``***``."""
    for secret in url_passwords(url):
        for form in {secret, urllib.parse.quote(secret, safe="")}:
            text = text.replace(form, "***")
    return text


def check_postgres_url(url: str) -> None:
    """Refuse a PostgreSQL URL the driver would trip over later (a port that is not a number), naming it
    without its password."""
    try:
        port = urllib.parse.urlsplit(url).port
    except ValueError:
        raise ConfigError(f"MORPH_DB: the port in {mask_url(url)} must be a number from 1 to 65535, e.g. "
                          "postgresql://morph@db.example.org:5432/morph.") from None
    if port == 0:
        raise ConfigError(f"MORPH_DB: the port in {mask_url(url)} must be a number from 1 to 65535.")


def is_local_host(host: str | None) -> bool:
    """True for a host on this machine: none (a Unix socket), a socket folder, localhost, a loopback address."""
    if not host or host.startswith("/") or host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tls_warning(url: str) -> str | None:
    """A warning for a PostgreSQL URL that reaches another machine without saying how to use TLS (the
    password and every prompt would cross the network in clear if the server does not insist on TLS), or None."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    if is_local_host(parts.hostname) or "sslmode" in query or os.environ.get("PGSSLMODE"):
        return None
    return (f"MORPH_DB reaches {parts.hostname}, another machine, and sets no sslmode: add "
            "?sslmode=verify-full (with the server's CA in ~/.postgresql/root.crt, or sslrootcert=…) so the "
            "connection is encrypted and the server checked.")

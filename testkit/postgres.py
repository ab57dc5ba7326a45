"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` + ``pg_ctl`` in a temporary folder.

    with TempPostgres() as pg:       # or: pg = TempPostgres().start(); …; pg.stop()
        url = pg.url                  # postgresql://morph@127.0.0.1:PORT/morph
        other = pg.create_database()  # a fresh, empty database on the same server

The server listens on 127.0.0.1 at a free port (and nowhere else), trusts local connections, and keeps
everything in one temporary folder that :meth:`stop` removes. PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` system user (Debian's package creates it).
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Where Debian's postgresql package puts the server binaries (newest version first).
SEARCH = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (``str(err)`` says what to install)."""


def find_bin(name: str) -> str:
    for folder in SEARCH:
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which(name)
    if found:
        return found
    raise PostgresUnavailable(f"PostgreSQL's {name} was not found (Debian: apt-get install postgresql)")


class TempPostgres:
    def __init__(self, user: str = "morph", database: str = "morph") -> None:
        self.user, self.database = user, database
        self.dir: Path | None = None
        self.port: int | None = None
        self._run_as: list[str] = []

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> TempPostgres:
        initdb = find_bin("initdb")
        self.dir = Path(tempfile.mkdtemp(prefix="morph-pg-"))
        data, sockets = self.dir / "data", self.dir / "run"
        sockets.mkdir()
        if os.geteuid() == 0:  # the server will not run as root
            pw = pwd.getpwnam("postgres")
            for p in (self.dir, sockets):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", str(data), "-U", self.user, "--auth=trust", "--encoding=UTF8",
                   "--no-sync"])
        self.port = _free_port()
        self.start_server()
        self.create_database(self.database)
        return self

    def start_server(self) -> None:
        """Start the server (again, after :meth:`stop_server`: same port, same data)."""
        assert self.dir is not None, "start() first"
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir / 'run'} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([find_bin("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"), "-o", options,
                   "-w", "start"])

    def stop_server(self) -> None:
        """Stop the server as an outage does (``-m fast``: every session is ended), keeping its data."""
        assert self.dir is not None, "start() first"
        self._run([find_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"])

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a random name unless given); return its URL."""
        name = name or f"db_{secrets.token_hex(6)}"
        self._run([find_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name])
        return self.url_for(name)

    def stop(self) -> None:
        if self.dir is None:
            return
        if (self.dir / "data" / "postmaster.pid").exists():
            self._run([find_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"],
                      check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def log_tail(self, n: int = 40) -> str:
        if self.dir is None:
            return "(no server log)"
        try:
            return "\n".join((self.dir / "server.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def _run(self, cmd: list[str], check: bool = True) -> None:
        done = subprocess.run([*self._run_as, *cmd], capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({done.returncode}): {done.stderr.strip()}\n"
                               f"{self.log_tail()}")

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

"""Fixtures of the Store tests: every test runs on a SQLite file and on a real PostgreSQL server."""
from pathlib import Path

import pytest

from bot.config import Settings
from bot.store import Store


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, s):
        self.t += s


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


@pytest.fixture
def settings(backend, tmp_path: Path, request):
    """The same Store tests on a SQLite file and on a fresh database of a real PostgreSQL server."""
    db = tmp_path / "m.sqlite3" if backend == "sqlite" else request.getfixturevalue("postgres").create_database()
    return Settings(db_path=db, data_dir=tmp_path / "art")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def store(settings, clock):
    s = await Store.open(settings.db_path, settings, clock=clock)
    yield s
    await s.close()

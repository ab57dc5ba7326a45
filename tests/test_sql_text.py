"""Both databases run the Store's SQL text as written: ``$n`` placeholders, nothing rewritten at run time
(a ``?`` inside a string literal stays a ``?``)."""
from __future__ import annotations

import pytest

from bot.db import open_database


@pytest.fixture
async def database(db_url):
    db = await open_database(db_url)
    yield db
    await db.close()


async def test_numbered_placeholders_run_as_written(database):
    rows = await database.fetch("SELECT '?' AS q, CAST($1 AS INTEGER) AS a, $2 AS b, CAST($1 AS INTEGER) AS again",
                                7, "x")
    assert rows == [{"q": "?", "a": 7, "b": "x", "again": 7}]
    async with database.transaction() as tx:
        assert await tx.execute("INSERT INTO bans (guild_id, user_id, actor_id, created_at) VALUES ($1, $2, $3, $4)",
                                1, 2, 3, 0.5) == 1
    assert await database.fetchval("SELECT COUNT(*) FROM bans WHERE guild_id = $1 AND user_id = $2", 1, 2) == 1

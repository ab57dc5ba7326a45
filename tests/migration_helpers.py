"""For the tests of a migration that converts stored rows: a database as an older version left it."""
import shutil

from bot import db
from bot.db import Database, is_postgres, open_database


async def open_before(url: str, tmp_path, number: int) -> Database:
    """The database at ``url`` migrated up to the migration before ``number`` only (those copied to a folder
    of their own), for the test to write rows of the time and close; ``Store.open`` then applies the rest."""
    old = tmp_path / "migs"
    old.mkdir()
    for p in sorted((db.MIGRATIONS_DIR / ("postgres" if is_postgres(url) else "sqlite")).glob("*.sql")):
        if int(p.name[:4]) < number:
            shutil.copy(p, old)
    return await open_database(url, migrations_dir=old)

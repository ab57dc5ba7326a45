"""The bot as its own process (``python -m bot``) against the fake Discord: how it starts and stops.

- A database it cannot use ends the process at once with a message naming the file and what to do
  (it used to print a traceback and then hang forever: a supervisor never restarted it).
- SIGTERM (``docker stop``, systemd) shuts down exactly as Ctrl-C does: the job being rendered goes back
  to the queue with its attempts unchanged and the process exits 0. (It used to die on the signal, and
  three such restarts failed the job as "the renderer crashed 3 times".)
- The model loads at start-up in a thread: its libraries before the bot connects, its weights while the bot
  serves; jobs wait queued meanwhile, and a stop does not wait for the load.
"""
from __future__ import annotations

import signal

import pytest
from e2e_helpers import BotProcess, db_job, gif_frames, job_id_of, result_messages

from fakediscord import eventually

pytestmark = pytest.mark.slow  # each bot process imports torch


async def test_unusable_database_exits_at_once_naming_the_file(fake, tmp_path):
    fake.add_guild("Morph Club")
    db = tmp_path / "data" / "morph.sqlite3"
    db.parent.mkdir()
    db.write_bytes(b"not a database at all\n" * 300)
    bot = await BotProcess(fake, tmp_path, MORPH_DB=db).spawn()
    rc = await bot.wait_exit(timeout=60)  # it used to hang here until killed (rc -9)
    log = bot.log_text()
    assert rc == 2, log
    assert f"database error: The database {db} is damaged or not a SQLite database" in log, log
    assert "restore it from a backup" in log and "MORPH_DB" in log
    assert "Traceback" not in log, log
    assert fake.gateway_stats["identifies"] == 0  # it never went online


async def test_sigterm_mid_render_requeues_the_job_like_ctrl_c(fake, tmp_path):
    guild = fake.add_guild("Morph Club")
    alice = guild.add_member("alice")
    db = tmp_path / "morph.sqlite3"
    env = dict(MORPH_DEFAULT_STEPS=15)

    job_id = status = None
    for n in range(3):  # three restarts used to fail the job ("crashed 3 times")
        bot = await BotProcess(fake, tmp_path, **env).start()
        if job_id is None:
            it = await fake.slash(alice, "morph", from_="a house", to="a boat", frames=40)
            job_id, status = job_id_of(it.content), it.original
        # this process renders it: its progress shows on the status message
        await fake.wait_for_message(lambda m, status=status: m is status and "%" in m.content, existing=False,
                                    timeout=90)
        rc = await bot.interrupt(sig=signal.SIGTERM)
        log = bot.log_text()
        assert rc == 0, log
        assert "SIGTERM received: shutting down" in log
        assert f"job #{job_id} interrupted by shutdown; back in the queue" in log, log
        row = db_job(db, job_id)
        assert (row["state"], row["attempts"], row["worker_id"]) == ("queued", 0, None), (n, row)

    last = await BotProcess(fake, tmp_path, **env).start()
    try:
        assert await eventually(lambda: db_job(db, job_id)["state"] == "delivered", timeout=180, interval=0.2), \
            last.log_tail()
    finally:
        assert await last.interrupt(sig=signal.SIGTERM) == 0, last.log_tail()
    row = db_job(db, job_id)
    assert row["attempts"] == 0 and row["error"] is None
    (result,) = result_messages(fake, job_id)
    assert len(gif_frames(result.attachment(f"morph-{job_id}.gif").data)) == 40
    assert "recovered job" not in "".join((tmp_path / f).read_text() for f in _logs(tmp_path))
    assert fake.violations == []


async def test_sigterm_while_the_model_loads_exits_0_at_once(fake, tmp_path):
    """The model loads in a thread at start-up while the bot serves (sd15-random: the SD 1.5 architecture,
    tens of seconds to build on a CPU). A job sent meanwhile waits in the queue; SIGTERM then stops the
    process at once with status 0 (Python's own exit beside a thread inside torch used to abort it)."""
    guild = fake.add_guild("Morph Club")
    alice = guild.add_member("alice")
    bot = await BotProcess(fake, tmp_path, MORPH_MODEL="sd15-random").start()
    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)
    assert "queued" in it.content
    db, job_id = tmp_path / "morph.sqlite3", job_id_of(it.content)
    assert await eventually(lambda: db_job(db, job_id)["status_message_id"], timeout=10)  # /morph fully handled
    assert "model sd15-random loaded" not in bot.log_text()  # still loading
    rc = await bot.interrupt(sig=signal.SIGTERM, timeout=10)
    log = bot.log_text()
    assert rc == 0, log
    assert "terminate called" not in log and "Traceback" not in log, log
    # the libraries were imported (seconds holding the GIL) before the bot went online
    assert log.index("model sd15-random: libraries imported in") < log.index("has connected to Gateway"), log
    row = db_job(db, job_id)
    assert (row["state"], row["attempts"], row["started_at"]) == ("queued", 0, None)


def _logs(tmp_path):
    return sorted(p.name for p in tmp_path.glob("bot-*.log"))

"""The job queue on SQLite and on PostgreSQL, measured in one run on one machine.

1. **Enqueue**: ``--submissions`` concurrent ``Store.enqueue`` calls (what 200 people pressing Enter at once
   cost the Discord front), latency p50/p99 per call, SQLite vs PostgreSQL.
2. **Claim latency**: queued → claimed (``started_at - created_at``) for jobs submitted one at a time to an
   idle ``morph-worker`` in another process: on SQLite it notices by polling (every 2 s), on PostgreSQL a
   ``NOTIFY`` wakes it.
3. **Throughput**: ``--jobs`` small ``tiny`` morphs rendered by 1 and by 2 ``morph-worker`` processes sharing a
   PostgreSQL queue (one CPU thread each), jobs per minute.

The PostgreSQL server is a throwaway one started here (``testkit.postgres``). Writes nothing unless
``--write-results`` (then it replaces its section of ``bench/RESULTS.md``).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.results import replace_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Queue: SQLite vs PostgreSQL"


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def settings_for(db, data_dir: Path, **kw):
    from bot.config import Settings

    base = dict(db_path=db, data_dir=data_dir, cooldown_s=0, max_user_active=10_000, max_guild_queue=10_000,
                max_queue=100_000, model="tiny", device="cpu", worker_id="bench")
    return Settings(**{**base, **kw})


def request(i: int, frames: int = 2, steps: int = 1):
    from morph.request import RenderRequest

    return RenderRequest([f"a red circle {i}", "a blue square"], frames=frames, steps=steps, candidates=1, seed=i)


async def enqueue_latencies(db, data_dir: Path, n: int) -> list[float]:
    from bot.store import Store

    store = await Store.open(db, settings_for(db, data_dir))
    try:
        async def one(i: int) -> float:
            t = time.perf_counter()
            await store.enqueue(guild_id=1000 + i % 20, channel_id=1, user_id=i, request=request(i),
                                upload_limit=8 << 20)
            return time.perf_counter() - t

        await one(10_000)  # warm up the connection
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await store.close()


def worker_env(db, data_dir: Path, worker_id: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "MORPH_"))}
    env.update({"MORPH_DB": str(db), "MORPH_DATA_DIR": str(data_dir), "MORPH_MODEL": "tiny", "MORPH_DEVICE": "cpu",
                "MORPH_WORKER_ID": worker_id, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LOG_LEVEL": "WARNING",
                "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    return env


async def start_workers(db, data_dir: Path, count: int, tmp: Path) -> list[asyncio.subprocess.Process]:
    procs = []
    for i in range(count):
        log = open(tmp / f"worker-{i}.log", "wb")  # noqa: ASYNC230 — a local file for the child's output
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.worker_main", env=worker_env(db, data_dir, f"bench-{i}"), stdout=log,
            stderr=asyncio.subprocess.STDOUT))
    return procs


async def stop_workers(procs) -> None:
    for p in procs:
        if p.returncode is None:
            p.terminate()
    for p in procs:
        await p.wait()


async def wait_all(store, ids: list[int], state: str, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while True:
        jobs = [await store.get(i) for i in ids]
        if all(j.state == state for j in jobs):
            return jobs
        bad = [j for j in jobs if j.state in ("failed", "cancelled")]
        if bad or time.monotonic() > deadline:
            raise RuntimeError(f"jobs not {state}: {[(j.id, j.state, j.error) for j in jobs if j.state != state]}")
        await asyncio.sleep(0.05)


async def claim_latencies(db, data_dir: Path, n: int, tmp: Path) -> list[float]:
    from bot.store import Store

    store = await Store.open(db, settings_for(db, data_dir))
    procs = await start_workers(db, data_dir, 1, tmp)
    try:
        # the first job waits for the model to load; not counted
        first = await store.enqueue(guild_id=1, channel_id=1, user_id=1, request=request(0), upload_limit=8 << 20)
        await wait_all(store, [first.id], "rendered", 300)
        out = []
        for i in range(1, n + 1):
            await asyncio.sleep(0.5)  # the worker is idle again (waiting on its poll or a notification)
            job = await store.enqueue(guild_id=1, channel_id=1, user_id=1, request=request(i), upload_limit=8 << 20)
            done, = await wait_all(store, [job.id], "rendered", 60)
            out.append(done.started_at - done.created_at)
        return out
    finally:
        await stop_workers(procs)
        await store.close()


async def throughput(db, data_dir: Path, workers: int, jobs: int, frames: int, steps: int, tmp: Path) -> float:
    """Jobs per minute with ``workers`` processes, timed from the first claim to the last render."""
    from bot.store import Store

    store = await Store.open(db, settings_for(db, data_dir))
    procs = await start_workers(db, data_dir, workers, tmp)
    try:
        warm = [await store.enqueue(guild_id=1, channel_id=1, user_id=1, request=request(90_000 + i),
                                    upload_limit=8 << 20) for i in range(workers)]
        await wait_all(store, [j.id for j in warm], "rendered", 300)  # every worker has loaded the model
        ids = [(await store.enqueue(guild_id=1 + i % 4, channel_id=1, user_id=i, request=request(i, frames, steps),
                                    upload_limit=8 << 20)).id for i in range(jobs)]
        done = await wait_all(store, ids, "rendered", 1800)
        span = max(j.rendered_at for j in done) - min(j.started_at for j in done)
        by = {j.worker_id for j in done}
        assert len(by) == workers, f"expected {workers} workers to render, got {by}"
        return jobs / span * 60
    finally:
        await stop_workers(procs)
        await store.close()


async def measure(args) -> dict:
    from testkit.postgres import TempPostgres

    out: dict = {}
    with TempPostgres() as pg, tempfile.TemporaryDirectory(prefix="morph-bench-queue-") as tmp_name:
        tmp = Path(tmp_name)
        dbs = {"SQLite": lambda name: tmp / f"{name}.sqlite3", "PostgreSQL": lambda name: pg.create_database()}
        for label, make in dbs.items():
            lat = await enqueue_latencies(make("enqueue"), tmp / "art", args.submissions)
            out[f"enqueue {label}"] = (1000 * percentile(lat, 50), 1000 * percentile(lat, 99), sum(lat))
            print(f"enqueue {label}: p50 {out[f'enqueue {label}'][0]:.1f} ms, p99 {out[f'enqueue {label}'][1]:.1f} ms",
                  flush=True)
        for label, make in dbs.items():
            lat = await claim_latencies(make("claim"), tmp / "art", args.claims, tmp)
            out[f"claim {label}"] = (1000 * statistics.median(lat), 1000 * max(lat))
            print(f"claim {label}: median {out[f'claim {label}'][0]:.0f} ms, max {out[f'claim {label}'][1]:.0f} ms",
                  flush=True)
        for workers in (1, 2):
            rate = await throughput(pg.create_database(), tmp / "art", workers, args.jobs, args.frames, args.steps, tmp)
            out[f"throughput {workers}"] = rate
            print(f"throughput with {workers} worker process(es): {rate:.1f} jobs/min", flush=True)
    return out


def report(r: dict, args) -> str:
    e_s, e_p = r["enqueue SQLite"], r["enqueue PostgreSQL"]
    c_s, c_p = r["claim SQLite"], r["claim PostgreSQL"]
    t1, t2 = r["throughput 1"], r["throughput 2"]
    return (
        f"## {SECTION}\n\n"
        f"`python -m bench.queue` ({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} "
        f"cores shared with other work, Python {platform.python_version()}; PostgreSQL 15 started by the run, "
        f"fsync off). One process submits; workers are `morph-worker` processes.\n\n"
        f"| measure | SQLite | PostgreSQL | PostgreSQL / SQLite |\n|---|---|---|---|\n"
        f"| enqueue, {args.submissions} at once: p50 | {e_s[0]:.1f} ms | {e_p[0]:.1f} ms | {e_p[0] / e_s[0]:.2f}× |\n"
        f"| enqueue, {args.submissions} at once: p99 | {e_s[1]:.1f} ms | {e_p[1]:.1f} ms | {e_p[1] / e_s[1]:.2f}× |\n"
        f"| queued → claimed by an idle worker in another process, median of {args.claims} | {c_s[0]:.0f} ms | "
        f"{c_p[0]:.0f} ms | {c_p[0] / c_s[0]:.3g}× |\n"
        f"| same, max | {c_s[1]:.0f} ms | {c_p[1]:.0f} ms | |\n\n"
        f"Render throughput on PostgreSQL, {args.jobs} `tiny` morphs of {args.frames} frames × {args.steps} steps, one "
        f"CPU thread per worker: 1 worker {t1:.1f} jobs/min, 2 workers {t2:.1f} jobs/min (**{t2 / t1:.2f}×**).\n\n"
        f"Enqueues take turns (an advisory lock on PostgreSQL, SQLite's single writer), so 200 at once are served "
        f"one after another: p99 is about the whole burst. A SQLite worker in another process sees a new job at its "
        f"next poll (every 2 s); on PostgreSQL a NOTIFY wakes it.\n"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__.split("\n\n")[0])
    p.add_argument("--submissions", type=int, default=200)
    p.add_argument("--claims", type=int, default=10)
    p.add_argument("--jobs", type=int, default=16)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--write-results", action="store_true", help="replace this section of bench/RESULTS.md")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    section = report(asyncio.run(measure(args)), args)
    print("\n" + section)
    if args.write_results:
        replace_section(SECTION, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

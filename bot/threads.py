"""The worker's background threads (model loading, rendering) and the event loop sharing the CPU: the
threads run at a lower priority and hand the GIL over quickly, so the loop answers Discord in time."""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Callable

#: How much lower the CPU priority (nice value) of the render and model-loading threads is.
BACKGROUND_NICE = 10
#: Python's GIL switch interval once the worker loads or renders (Python's default: 5 ms): a thread waiting
#: for the GIL, such as the event loop with Discord's answers, gets it after at most this long while
#: another runs Python (loading a model is seconds of it; a render on a GPU mostly Python between kernels).
GIL_SWITCH_INTERVAL_S = 0.001


def lower_priority() -> None:
    """Lower the calling thread's CPU priority by :data:`BACKGROUND_NICE` (Linux, where every thread has
    its own nice value and the threads it starts, such as torch's OpenMP workers, inherit it; elsewhere
    nothing). For the threads that render and load models: when the CPU is short, the event loop's thread,
    which must answer Discord within 3 s, runs first."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE))


def share_gil_quickly() -> None:
    """Lower the process's GIL switch interval to :data:`GIL_SWITCH_INTERVAL_S` (never raise it)."""
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def settle_threadsafe(loop: asyncio.AbstractEventLoop, future: asyncio.Future, result, error) -> None:
    """From another thread: complete ``future`` (unless done) with ``result`` or ``error``."""
    def settle() -> None:
        if not future.done():
            future.set_result(result) if error is None else future.set_exception(error)

    with contextlib.suppress(RuntimeError):  # the event loop is gone: the process is exiting
        loop.call_soon_threadsafe(settle)


def in_daemon_thread(fn: Callable[[], object], name: str) -> asyncio.Future:
    """Run ``fn()`` in a new daemon thread; its result (or exception) arrives in the returned Future."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
            settle_threadsafe(loop, future, None, e)
        else:
            settle_threadsafe(loop, future, result, None)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future

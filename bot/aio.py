"""Small asyncio helpers shared by the worker, the delivery loops, the status editor and the processes' main
loops (``morph-bot``, the playground)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable

log = logging.getLogger(__name__)


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds pass. Unlike ``asyncio.wait_for`` on Python 3.11,
    a cancellation that arrives as the event is set is never lost (a loop stopped at that moment would
    otherwise run on, and whoever stops it wait forever)."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()


async def quietly(work: Awaitable[object], what: str) -> None:
    """Await ``work``; a failure is logged as a warning naming ``what``, not raised (for side tasks such as
    a status edit's fallback, whose failure must not stop the caller)."""
    try:
        await work
    except Exception as err:  # noqa: BLE001 - logged; the caller goes on whatever failed
        log.warning("%s failed: %s", what, err)


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)):
    """Within the block, SIGINT (Ctrl-C) and SIGTERM (``docker stop``, systemd, Kubernetes) both cancel the
    current task, so the caller shuts down the same clean way for either. Yields a list that holds the
    signal once one came (true from then on)."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    if task is None:
        raise RuntimeError("stop_on_signals() is for a coroutine running as a task")
    received: list[signal.Signals] = []

    def handle(sig: signal.Signals) -> None:
        if received:  # a second cancel would cut the clean shutdown short
            log.warning("%s received: already shutting down (SIGKILL stops at once)", sig.name)
        else:
            log.info("%s received: shutting down", sig.name)
            task.cancel()
        received.append(sig)

    installed = []
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises KeyboardInterrupt
            loop.add_signal_handler(sig, handle, sig)
            installed.append(sig)
    try:
        yield received
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)

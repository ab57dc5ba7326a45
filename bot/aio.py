"""Small asyncio helpers shared by the worker, the delivery loops and the status editor."""
from __future__ import annotations

import asyncio
import logging
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

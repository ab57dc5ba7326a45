"""A small asyncio helper shared by the worker and the delivery loops."""
from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds pass. Unlike ``asyncio.wait_for`` on Python 3.11,
    a cancellation that arrives as the event is set is never lost (a loop stopped at that moment would
    otherwise run on, and whoever stops it wait forever)."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()

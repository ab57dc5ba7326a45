"""A bounded memory of ids (:class:`RecentIds`) for what a long-running process only needs to remember
about recent messages."""
from __future__ import annotations

from collections import OrderedDict

#: How many ids a :class:`RecentIds` keeps by default: far more messages than are active at once.
RECENT_IDS = 10_000


class RecentIds:
    """A set of ids that keeps the ``size`` most recently added ones (the oldest is forgotten first), so a
    bot that runs for months does not grow with every message it ever saw."""

    def __init__(self, size: int = RECENT_IDS) -> None:
        self.size = size
        self._ids: OrderedDict[int, None] = OrderedDict()

    def add(self, item: int) -> None:
        self._ids[item] = None
        self._ids.move_to_end(item)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

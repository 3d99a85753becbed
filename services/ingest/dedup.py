"""Remembers recently accepted event ids so that a bus retry is not published twice.

Best effort and bounded: the aggregator's idempotent writes are what guarantee that a
duplicate never counts twice; this only saves Kafka and the aggregator the work.

Two generations of plain sets instead of an LRU: membership and insertion stay in C at
ingest's per-event rate (an OrderedDict cost ~8 % of ingest's CPU). The newest ids are
kept, at least the last capacity / 2 of them, and never more than capacity in all.
"""
from __future__ import annotations


class RecentIds:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._generation_size = max(1, capacity // 2)
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._current or event_id in self._previous

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def add_all(self, event_ids) -> None:
        size = self._generation_size
        if isinstance(event_ids, (set, list)) and len(self._current) + len(event_ids) < size:
            self._current.update(event_ids)
            return
        for event_id in event_ids:
            current = self._current
            current.add(event_id)
            if len(current) >= size:
                self._previous, self._current = current, set()

"""Remembers recently accepted event ids so that a bus retry is not published twice.

Best effort and bounded: the aggregator's idempotent writes are what guarantee that a
duplicate never counts twice; this only saves Kafka and the aggregator the work.
"""
from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    def __init__(self, capacity: int):
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add_all(self, event_ids) -> None:
        ids = self._ids
        for event_id in event_ids:
            ids[event_id] = None
        overflow = len(ids) - self._capacity
        for _ in range(max(0, overflow)):
            ids.popitem(last=False)

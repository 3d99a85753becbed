"""Ingest use case: validate a batch, drop known duplicates, publish, remember ids."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from dti.events.v1.events_pb2 import Event
from dti_pulse.registry import Registry
from services.ingest.dedup import RecentIds
from services.ingest.validation import Invalid, to_event


class Publisher(Protocol):
    async def publish(self, events: list[Event]) -> None: ...


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class IngestService:
    def __init__(self, registry: Registry, publisher: Publisher, recent_ids: RecentIds):
        self.registry = registry
        self.publisher = publisher
        self.recent_ids = recent_ids

    async def ingest(self, raw_events: list, source: str) -> BatchResult:
        """Raises the publisher's error if Kafka did not acknowledge: then nothing counts."""
        result = BatchResult()
        now_ms = int(time.time() * 1000)
        fresh: list[Event] = []
        in_batch: set[str] = set()
        for index, raw in enumerate(raw_events):
            try:
                event = to_event(raw, self.registry, source, now_ms)
            except Invalid as exc:
                result.rejected.append({"index": index, "reason": str(exc)})
                continue
            # A duplicate is accepted (the bus may retry) but published once.
            if event.event_id in in_batch or event.event_id in self.recent_ids:
                result.duplicates += 1
            else:
                in_batch.add(event.event_id)
                fresh.append(event)
        await self.publisher.publish(fresh)
        self.recent_ids.add_all(in_batch)
        result.accepted = len(fresh) + result.duplicates
        return result

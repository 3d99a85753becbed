"""Ingest use case: validate a batch, drop known duplicates, publish, remember ids."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from dti.events.v1.events_pb2 import Event
from dti_pulse.registry import Registry
from services.ingest.dedup import RecentIds
from services.ingest.sources import SourceScope
from services.ingest.validation import DEFAULT_MAX_FUTURE_MS, Invalid, latest_allowed_ms, to_event, valid_batch


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
    def __init__(self, registry: Registry, publisher: Publisher, dedup_capacity: int,
                 max_future_ms: int = DEFAULT_MAX_FUTURE_MS, sources: SourceScope | None = None):
        self.registry = registry
        self.max_future_ms = max_future_ms
        self.publisher = publisher
        self.sources = sources or SourceScope()
        self.dedup_capacity = dedup_capacity
        # Event ids are deduplicated per source: no source can pre-empt another's ids.
        self.recent_ids: dict[str, RecentIds] = {}

    def recent_ids_of(self, source: str) -> RecentIds:
        recent = self.recent_ids.get(source)
        if recent is None:
            recent = self.recent_ids[source] = RecentIds(self.dedup_capacity)
        return recent

    def valid_batch(self, body: bytes, source: str) -> list[Event] | None:
        """Every event of a batch body, validated at once, if every one is valid (see
        validation.valid_batch); None sends the batch to ingest() event by event."""
        events = valid_batch(body, self.registry, source, int(time.time() * 1000),
                             latest_allowed_ms(self.max_future_ms))
        if events and self.sources.restricted and not all(self.sources.allows(source, e.agency_code) for e in events):
            return None  # the per-event path says which events, and why
        return events

    async def ingest(self, raw_events: list, source: str) -> BatchResult:
        """Raises the publisher's error if Kafka did not acknowledge: then nothing counts."""
        result = BatchResult()
        now_ms = int(time.time() * 1000)
        latest_ms = now_ms + self.max_future_ms
        valid: list[Event] = []
        for index, raw in enumerate(raw_events):
            try:
                event = to_event(raw, self.registry, source, now_ms, latest_ms)
            except Invalid as exc:
                result.rejected.append({"index": index, "reason": str(exc)})
                continue
            if self.sources.allows(source, event.agency_code):
                valid.append(event)
            else:
                result.rejected.append({"index": index, "reason": self.sources.refusal(source, event.agency_code)})
        return await self.ingest_valid(valid, result)

    async def ingest_valid(self, events: list[Event], result: BatchResult | None = None) -> BatchResult:
        """Publishes validated events, each event_id once; raises as ingest() does."""
        result = result or BatchResult()
        fresh: list[Event] = []
        in_batch: set[str] = set()
        recent_ids = self.recent_ids_of(events[0].source if events else "")  # a request's events share its source
        for event in events:
            # A duplicate is accepted (the bus may retry) but published once.
            event_id = event.event_id
            if event_id in in_batch or event_id in recent_ids:
                result.duplicates += 1
            else:
                in_batch.add(event_id)
                fresh.append(event)
        await self.publisher.publish(fresh)
        recent_ids.add_all(in_batch)
        result.accepted = len(fresh) + result.duplicates
        return result

"""The aggregator's use case: fold a batch of Kafka messages into entity states.

At-least-once delivery + idempotent writes: a batch's offsets are acknowledged only
after its states are written; an event already in its entity's set is skipped, so a
redelivery after a crash never counts twice. Anything that cannot be processed goes to
the dead-letter port with its reason and does not hold up the rest of the batch.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

from google.protobuf.message import DecodeError

from dti.events.v1.events_pb2 import Event, EventBatch
from services.aggregator.state import DossierSummary, state_key, summarize
from services.aggregator.store import encode_events

log = logging.getLogger(__name__)


class StateStore(Protocol):
    def load(self, keys) -> dict[tuple, list[Event]]: ...
    def write(self, dossier_rows: list, document_rows: list) -> None: ...


# (payload, reason) -> awaitable that completes once the dead letter is durable
DeadLetterSink = Callable[[bytes, str], Awaitable[None]]


@dataclass
class BatchStats:
    messages: int = 0
    events: int = 0
    new_events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    states_written: int = 0


class EntityCache:
    """Recently used entity event sets, bounded; misses are loaded from the store."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: OrderedDict[tuple, dict[str, Event]] = OrderedDict()

    def get(self, key):
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key, events: dict[str, Event]) -> None:
        self._entries[key] = events
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class Aggregator:
    def __init__(self, store: StateStore, dead_letter: DeadLetterSink, cache_capacity: int = 500_000,
                 write_retry_s: float = 1.0):
        self.store = store
        self.dead_letter = dead_letter
        self.cache = EntityCache(cache_capacity)
        self.write_retry_s = write_retry_s

    async def process(self, payloads: list[bytes]) -> BatchStats:
        stats = BatchStats(messages=len(payloads))
        incoming: dict[tuple, list[Event]] = defaultdict(list)
        for payload in payloads:
            try:
                events = EventBatch.FromString(payload).events
            except DecodeError as exc:
                await self._reject(stats, payload, f"undecodable EventBatch: {exc}")
                continue
            for event in events:
                stats.events += 1
                try:
                    if not event.event_id:
                        raise ValueError("event has no event_id")
                    key = state_key(event)
                except ValueError as exc:
                    await self._reject(stats, EventBatch(events=[event]).SerializeToString(), str(exc))
                    continue
                incoming[key].append(event)

        known_sets = await self._known_sets(list(incoming))
        dossier_rows, document_rows, updates = [], [], {}
        for key, events in incoming.items():
            merged = dict(known_sets[key])
            fresh = []
            for event in events:
                if event.event_id in merged:
                    stats.duplicates += 1
                else:
                    merged[event.event_id] = event
                    fresh.append(event)
            if not fresh:
                continue
            try:
                summary = summarize(key, merged.values())
            except Exception as exc:  # a malformed event must not stop the partition
                for event in fresh:
                    await self._reject(stats, EventBatch(events=[event]).SerializeToString(),
                                       f"cannot fold into {key[0]} state: {exc}")
                continue
            row = (*summary, encode_events(list(merged.values())))
            (dossier_rows if isinstance(summary, DossierSummary) else document_rows).append(row)
            updates[key] = merged
            stats.new_events += len(fresh)

        await self._write(dossier_rows, document_rows)
        # Only a written state may enter the cache: otherwise a redelivery would be skipped.
        for key, merged in updates.items():
            self.cache.put(key, merged)
        stats.states_written = len(updates)
        return stats

    async def _reject(self, stats: BatchStats, payload: bytes, reason: str) -> None:
        stats.dead_letters += 1
        log.warning("dead letter: %s", reason)
        await self.dead_letter(payload, reason)

    async def _known_sets(self, keys: list[tuple]) -> dict[tuple, dict[str, Event]]:
        """The event sets already folded into each key's state, from the cache or the store."""
        known, missing = {}, []
        for key in keys:
            cached = self.cache.get(key)
            if cached is None:
                missing.append(key)
            else:
                known[key] = cached
        if missing:
            found = await self._retrying(self.store.load, missing)
            for key in missing:
                known[key] = {e.event_id: e for e in found.get(key, ())}
        return known

    async def _write(self, dossier_rows: list, document_rows: list) -> None:
        if dossier_rows or document_rows:
            await self._retrying(self.store.write, dossier_rows, document_rows)

    async def _retrying(self, call, *args):
        """ClickHouse being away is not the events' fault: wait for it, never skip them."""
        while True:
            try:
                return await asyncio.to_thread(call, *args)
            except Exception as exc:
                log.error("ClickHouse call %s failed, retrying in %.1fs: %s", call.__name__, self.write_retry_s, exc)
                await asyncio.sleep(self.write_retry_s)

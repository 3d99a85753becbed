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
from itertools import islice
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

import numpy as np
from google.protobuf.message import DecodeError

from dti.events.v1.events_pb2 import Event, EventBatch
from dti_pulse.state import (DOCUMENT_RECALL_AGREED, PER_AGENCY, PLACING_EVENTS, UNDATED, day_pairs, placement,
                             state_key, summarize)
from dti_pulse.collector import collector_paused
from dti_pulse.events import ENTITIES, activity_type, encode_envelope

log = logging.getLogger(__name__)


class RowsRejected(Exception):
    """The store can never hold these rows as they are (a value outside its column's type):
    retrying cannot help, unlike ClickHouse being away. Raised by StateStore.write."""


class StateStore(Protocol):
    def load(self, keys) -> dict[tuple, bytes]: ...  # each stored key's events, as EventBatch bytes
    def stored_ids(self): ...  # yields (family, id) of every stored state
    def document_day_pairs(self, document_ids) -> set[tuple[str, int]]: ...  # every side's (agency, day) pairs
    # Rows: a summary's fields, then is_deleted (1 for a tombstone, see state_row), then the
    # events as EventBatch bytes.
    # day_pairs: the (agency, day) pairs whose day snapshots the rows change (marked dirty)
    # changed: family -> the agencies whose counts of that family the rows change (told to ranking)
    # Idempotent (a state row rewritten is the same state); raises RowsRejected for rows it cannot hold.
    # rows: family ("dossier", "document", "petition") -> its rows
    def write(self, rows: dict[str, list], day_pairs: set, changed: dict) -> None: ...
    def write_activity(self, activity_rows: list) -> None: ...


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


@dataclass
class PreparedBatch:
    stats: BatchStats
    rows: dict  # family -> its state rows
    updates: dict
    activity_rows: list
    day_pairs: set
    changed: dict  # family -> the agencies whose counts of it the batch changes
    fresh: dict  # state key -> its new events (EventBatch bytes), for the dead letters if its row is rejected
    tombstones: dict  # state key -> the tombstone of where its stored row sat, written with its new row
    # The new events of states the store refused, counted in activity_rows beside their write:
    # withdrawn from the live activity once both writes are done.
    withdrawn: "ActivityCounter" = field(default_factory=lambda: ActivityCounter())


def state_row(summary, events: bytes) -> tuple:
    return (*summary, 0, events)


def tombstone_row(previous, current) -> tuple | None:
    """When the state moved (placement), the tombstone of where it sat: the previous row
    again, with is_deleted = 1, at the current version, so FINAL finds nothing there."""
    if placement(previous) == placement(current):
        return None
    return (*previous._replace(event_count=current.event_count), 1, b"")


def row_key(family: str, row: tuple) -> tuple:
    return (family, row[0], row[1]) if family in PER_AGENCY else (family, row[0])


class ActivityCounter:
    """New events per (minute of arrival, agency, activity type), with the latest arrival."""

    def __init__(self):
        self._counts: dict[tuple, list[int]] = {}

    def count_all(self, events) -> None:
        counts = self._counts
        for event in events:
            arrived_ms = event.ingested_at_ms or event.occurred_at_ms
            key = (arrived_ms - arrived_ms % 60_000, event.agency_code, activity_type(event))
            entry = counts.get(key)
            if entry is None:
                counts[key] = [1, arrived_ms]
            else:
                entry[0] += 1
                if arrived_ms > entry[1]:
                    entry[1] = arrived_ms

    def rows(self, withdrawn: bool = False) -> list[tuple]:
        """The rows to add to activity_minute, or (withdrawn) to take these counts back out:
        the table sums its rows."""
        if withdrawn:
            return [(*key, -count, 0) for key, (count, _) in self._counts.items()]
        return [(*key, count, latest) for key, (count, latest) in self._counts.items()]


class KeyFilter:
    """A Bloom filter of the entities that have a stored state. "Absent" is certain, so a
    new dossier costs no ClickHouse lookup (a random-key lookup reads every part: ~10 ms);
    "maybe" (about 0.02 % false positives at the planned size) costs one.

    Keys are hashed by Python's hash(), which is per process: the filter is built per process
    by reset(). Keys go in and are asked about a batch at a time, the bit arithmetic in numpy:
    one key at a time in Python cost ~2.5-3.5 µs (a tenth of the fold) where this costs a
    fraction of one."""

    HASHES = 4
    _STEPS = np.arange(HASHES, dtype=np.uint64)[:, None]

    def __init__(self, expected_keys: int, bits_per_key: int = 32):
        self.size = max(1 << 16, expected_keys * bits_per_key)
        self.bits = np.zeros(self.size // 8 + 1, dtype=np.uint8)
        self.count = 0

    def _slots(self, keys: list) -> tuple[np.ndarray, np.ndarray]:
        """Each key's HASHES bits (double hashing), one row per hash: the byte of each, and
        its mask in that byte."""
        first = np.array([hash(key) for key in keys], dtype=np.int64).view(np.uint64)
        second = (first >> np.uint64(32)) | np.uint64(1)
        positions = (first + self._STEPS * second) % np.uint64(self.size)
        return positions >> np.uint64(3), np.left_shift(np.uint8(1), (positions & np.uint64(7)).astype(np.uint8))

    def add_all(self, keys: list) -> None:
        if keys:
            byte, mask = self._slots(keys)
            np.bitwise_or.at(self.bits, byte.ravel(), mask.ravel())
            self.count += len(keys)

    def might_contain_all(self, keys: list) -> list[bool]:
        if not keys:
            return []
        byte, mask = self._slots(keys)
        return (self.bits[byte] & mask).all(axis=0).tolist()


def filter_key(key: tuple) -> tuple:
    # Documents and procedure listings are looked up by id (all agencies' at once):
    # ("document", id), as StateStore.stored_ids yields it.
    return key[:2]


class EntityCache:
    """Recently used entities' events, bounded; misses are loaded from the store. An entry is
    the entity's EventBatch bytes, not its Event objects: those are tracked by Python's
    cyclic GC, and a cache of millions of them made each older-generation collection walk
    them all, pausing the process for 0.2-1.2 s under load (bench/README.md, 2026-11-30).
    Bytes are not tracked, and parsing an entity's few events back costs about what copying
    its event set did."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()

    def get(self, key):
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key, events: bytes) -> None:
        self._entries[key] = events
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class EventChecks(Protocol):
    """The rules ingest holds events to (services.ingest.validation.EventRules): what was put
    on the topic by anything else than ingest is held to them too."""
    def checker(self) -> Callable[[Event], None]: ...  # raises ValueError with the reason


class Aggregator:
    def __init__(self, store: StateStore, dead_letter: DeadLetterSink, cache_capacity: int = 500_000,
                 write_retry_s: float = 1.0, rules: EventChecks | None = None):
        self.store = store
        self.rules = rules
        self.dead_letter = dead_letter
        self.cache = EntityCache(cache_capacity)
        self.write_retry_s = write_retry_s
        self._unwritten: dict[tuple, bytes] = {}  # prepared, not yet committed
        self.known: KeyFilter | None = None  # None until reset(): then every miss is looked up

    async def reset(self) -> int:
        """Forgets cached states and rebuilds the filter of stored entities from the store.
        Called at start and whenever partitions move, since another worker may have
        written the entities of the partitions this one receives."""
        def build() -> KeyFilter:
            ids = list(self.store.stored_ids())
            known = KeyFilter(max(1_000_000, 2 * len(ids)))
            stored = iter(ids)
            while chunk := list(islice(stored, 100_000)):  # bounds numpy's copies
                known.add_all(chunk)
            return known

        self.known = await self._retrying(build)
        self.cache = EntityCache(self.cache.capacity)
        log.info("aggregator state filter rebuilt: %d stored entities", self.known.count)
        return self.known.count

    async def process(self, payloads: list[bytes]) -> BatchStats:
        """Folds and writes one batch; when this returns, the batch may be acknowledged."""
        prepared = await self.prepare(payloads)
        await self.commit(prepared)
        return prepared.stats

    async def prepare(self, payloads: list[bytes]) -> "PreparedBatch":
        """Decodes and folds a batch into new states, without writing them. A later batch
        may be prepared while this one is written, if commits happen in order."""
        # A batch keeps its events' parsed messages (two GC-tracked objects an event), keys and
        # rows alive until it is folded: the collections its allocations set off walked them
        # again and again and found nothing, ~1.5 µs an event (10 % of the fold) under a
        # backlog. Reference counting frees the rest as before.
        with collector_paused():
            return await self._fold(payloads)

    async def _fold(self, payloads: list[bytes]) -> "PreparedBatch":
        stats = BatchStats(messages=len(payloads))
        incoming: dict[tuple, list[Event]] = defaultdict(list)
        check = self.rules.checker() if self.rules is not None else None
        for payload in payloads:
            if not payload:
                await self._reject(stats, b"", "empty message: no value (a tombstone?)")
                continue
            try:
                events = EventBatch.FromString(payload).events
            except DecodeError as exc:
                await self._reject(stats, payload, f"undecodable EventBatch: {exc}")
                continue
            if not events:
                await self._reject(stats, payload, "a message with no events (fields unknown to EventBatch only)")
                continue
            stats.events += len(events)
            for event in events:
                try:
                    if not event.event_id:
                        raise ValueError("event has no event_id")
                    if check is not None:
                        check(event)
                    key = state_key(event)
                except ValueError as exc:
                    await self._reject(stats, EventBatch(events=[event]).SerializeToString(), str(exc))
                    continue
                incoming[key].append(event)

        known_envelopes = await self._known_envelopes(list(incoming))
        rows: dict[str, list] = {family: [] for family in ENTITIES}
        updates, fresh_payloads, tombstones = {}, {}, {}
        touched_days: set[tuple[str, int]] = set()
        changed: dict[str, set[str]] = {family: set() for family in ENTITIES}
        recalled_documents, new_entities = [], []
        activity = ActivityCounter()
        for key, events in incoming.items():
            envelope = known_envelopes[key]
            try:
                known = list(EventBatch.FromString(envelope).events) if envelope else []
            except DecodeError as exc:  # a stored state that cannot be read must not stop the partition
                for event in events:
                    await self._reject(stats, EventBatch(events=[event]).SerializeToString(),
                                       f"stored {key[0]} state unreadable: {exc}")
                continue
            if not known and len(events) == 1:
                fresh = events  # a new entity's one event: nothing to deduplicate (the common case)
            else:
                # An event is its source's id: no source can pre-empt another's (ingest keeps to it too).
                seen = {(event.source, event.event_id) for event in known}
                fresh = []
                for event in events:
                    identity = (event.source, event.event_id)
                    if identity in seen:
                        stats.duplicates += 1
                    else:
                        seen.add(identity)
                        fresh.append(event)
                if not fresh:
                    continue
            try:
                summary = summarize(key, [*known, *fresh] if known else fresh)
            except Exception as exc:  # a malformed event must not stop the partition
                for event in fresh:
                    await self._reject(stats, EventBatch(events=[event]).SerializeToString(),
                                       f"cannot fold into {key[0]} state: {exc}")
                continue
            pairs = day_pairs(summary)
            if known and any(event.WhichOneof("body") in PLACING_EVENTS for event in fresh):
                # The state may leave the days it counted on: those change too, and its row
                # moves in the table.
                previous = summarize(key, known)
                pairs += day_pairs(previous)
                if (tombstone := tombstone_row(previous, summary)) is not None:
                    tombstones[key] = tombstone
            touched_days.update(pairs)
            changed[key[0]].update(agency for agency, _ in pairs)
            if key[0] in UNDATED:  # counted as of each period's end: every period of its agency changes
                changed[key[0]].add(summary.agency_code)
            if getattr(summary, "recalled", 0) and any(
                    event.WhichOneof("body") == "document_status"
                    and event.document_status.status_code == DOCUMENT_RECALL_AGREED for event in fresh):
                recalled_documents.append(key[1])  # the document stops counting for every side
            # Repeated fields concatenate: the known events' bytes are kept, only the new encoded.
            fresh_payloads[key] = encode_envelope([event.SerializeToString() for event in fresh])
            merged = envelope + fresh_payloads[key]
            row = state_row(summary, merged)
            rows[key[0]].append(row)
            updates[key] = merged
            self._unwritten[key] = merged
            if not known:
                new_entities.append(filter_key(key))
            stats.new_events += len(fresh)
            activity.count_all(fresh)
        if self.known is not None:
            self.known.add_all(new_entities)
        if recalled_documents:
            sides = await self._retrying(self.store.document_day_pairs, recalled_documents)
            touched_days |= sides
            changed["document"].update(agency for agency, _ in sides)
        stats.states_written = len(updates)
        return PreparedBatch(stats, rows, updates, activity.rows(), touched_days, changed, fresh_payloads, tombstones)

    async def commit(self, prepared: "PreparedBatch") -> None:
        """Writes a prepared batch (retrying until ClickHouse takes it)."""
        writes = []
        if any(prepared.rows.values()):
            writes.append(self._write_states(prepared, prepared.rows))
        # Beside the states (the store gives it a connection of its own: the next batch's
        # states wait for this commit), in a call of its own so a retry never counts twice.
        # A crash after the states are written loses this batch from the live activity
        # (never from the scores), as the offsets are acknowledged after both.
        if prepared.activity_rows:
            writes.append(self._retrying(self.store.write_activity, prepared.activity_rows))
        await asyncio.gather(*writes)
        # After the activity write it corrects, so a reader never sees a count below zero.
        if withdrawn := prepared.withdrawn.rows(withdrawn=True):
            await self._retrying(self.store.write_activity, withdrawn)
        # Only written states enter the cache; until then they are found in _unwritten.
        for key, merged in prepared.updates.items():
            self.cache.put(key, merged)
            if self._unwritten.get(key) is merged:
                del self._unwritten[key]

    async def _write_states(self, prepared: "PreparedBatch", rows: dict[str, list]) -> None:
        """Writes the rows; when the store rejects some, finds them by halving (a rejection
        is rare, and the halves are written again: writes are idempotent) and sends each
        rejected state's new events to the dead letters, so the rest of the partition goes
        on. Its stored state stays as it was. (In a batch already prepared, the same state's
        row carries the same value: its events follow these to the dead letters.) A state's
        tombstone is written in the same insert as its row, never without it."""
        tombstones = prepared.tombstones
        written = {family: [*family_rows, *(tombstones[key] for row in family_rows  # where each state sat
                                            if (key := row_key(family, row)) in tombstones)] if tombstones else family_rows
                   for family, family_rows in rows.items() if family_rows}
        try:
            await self._retrying(self.store.write, written, prepared.day_pairs, prepared.changed)
            return
        except RowsRejected as exc:
            rejection = exc
        flat = [(family, row) for family, family_rows in rows.items() for row in family_rows]
        if len(flat) > 1:
            for half in (flat[:len(flat) // 2], flat[len(flat) // 2:]):
                by_family: dict[str, list] = {}
                for family, row in half:
                    by_family.setdefault(family, []).append(row)
                await self._write_states(prepared, by_family)
            return
        family, row = flat[0]
        key = row_key(family, row)
        events = EventBatch.FromString(prepared.fresh[key]).events
        reason = f"cannot store {family} state {row[0]!r}: {rejection}"
        for event in events:
            await self._reject(prepared.stats, EventBatch(events=[event]).SerializeToString(), reason)
        prepared.withdrawn.count_all(events)
        prepared.stats.new_events -= len(events)
        prepared.stats.states_written -= 1
        # Neither cached nor seen by later batches: the next event of this state is folded
        # onto what the store holds.
        merged = prepared.updates.pop(key)
        if self._unwritten.get(key) is merged:
            del self._unwritten[key]

    async def _reject(self, stats: BatchStats, payload: bytes, reason: str) -> None:
        stats.dead_letters += 1
        log.warning("dead letter: %s", reason)
        await self.dead_letter(payload, reason)

    async def _known_envelopes(self, keys: list[tuple]) -> dict[tuple, bytes]:
        """The events already folded into each key's state (EventBatch bytes, empty for a new
        entity), from the cache or the store."""
        known, uncached = {}, []
        for key in keys:
            cached = self._unwritten.get(key) or self.cache.get(key)
            if cached is not None:
                known[key] = cached
            else:
                uncached.append(key)
        missing = uncached
        if self.known is not None and uncached:
            missing = []
            for key, maybe in zip(uncached, self.known.might_contain_all([filter_key(key) for key in uncached])):
                if maybe:
                    missing.append(key)
                else:
                    known[key] = b""  # certainly new
        if missing:
            found = await self._retrying(self.store.load, missing)
            for key in missing:
                known[key] = found.get(key, b"")
        return known

    async def _retrying(self, call, *args):
        """ClickHouse being away is not the events' fault: wait for it, never skip them."""
        while True:
            try:
                return await asyncio.to_thread(call, *args)
            except RowsRejected:
                raise  # the rows' fault, not ClickHouse's: waiting would block the partition for good
            except Exception as exc:
                log.error("state store call %s failed, retrying in %.1fs: %s", call.__name__, self.write_retry_s, exc)
                await asyncio.sleep(self.write_retry_s)

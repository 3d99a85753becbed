"""The aggregator's fold alone: CPU time an event of Aggregator.prepare + commit over the bus
simulator's events, in this process, with a store that keeps nothing (no Kafka, no
ClickHouse). The `aggregate` scenario of bench.run measures the whole path; this one
isolates the Python that decides how many events a core folds, and moves less with the
machine's neighbours. Usage: python -m bench.fold [--events N] [--repeat R] [--json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

from dti.events.v1.events_pb2 import EventBatch
from dti_pulse.bootstrap import tune_gc
from dti_pulse.config import DEFAULT_AGENCIES, Settings
from dti_pulse.registry import load_registry
from services.aggregator.processor import Aggregator
from services.ingest.validation import to_event
from bench.run import simulated_events

MESSAGES_PER_BATCH = 40  # what a 0.2 s window holds at 5,000 events/s
EVENTS_PER_MESSAGE = 100


class NothingKept:
    def load(self, keys):
        return {}

    def stored_ids(self):
        return iter(())

    def document_day_pairs(self, document_ids):
        return set()

    def write(self, rows, day_pairs=(), changed=None):
        pass

    def write_activity(self, activity_rows):
        pass


async def _dead_letter(payload: bytes, reason: str) -> None:
    raise AssertionError(f"simulated events must fold: {reason}")


async def fold_us_per_event(payloads: list[bytes], events: int, aggregator_class=Aggregator,
                            per_batch: int = MESSAGES_PER_BATCH) -> float:
    aggregator = aggregator_class(NothingKept(), _dead_letter)
    await aggregator.reset()
    started = time.process_time()
    for i in range(0, len(payloads), per_batch):
        await aggregator.commit(await aggregator.prepare(payloads[i:i + per_batch]))
    return (time.process_time() - started) / events * 1e6


def simulated_payloads(count: int) -> tuple[list[bytes], list]:
    """The bus simulator's first `count` events, as ingest would publish them, and the events."""
    registry = load_registry(DEFAULT_AGENCIES)
    now_ms = int(time.time() * 1000)
    events = [to_event(raw, registry, "bench", now_ms) for raw in simulated_events(count)]
    payloads = [EventBatch(events=events[i:i + EVENTS_PER_MESSAGE]).SerializeToString()
                for i in range(0, len(events), EVENTS_PER_MESSAGE)]
    return payloads, events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the runs as one JSON line (bench.run reads it)")
    args = parser.parse_args()
    payloads, events = simulated_payloads(args.events)
    tune_gc(Settings().tuning.gc_young_threshold)  # as the aggregator runs
    runs = []
    for run in range(args.repeat):
        runs.append(asyncio.run(fold_us_per_event(payloads, len(events))))
        if not args.json:
            print(f"run {run + 1}: {runs[-1]:.2f} µs of CPU an event "
                  f"({len(events):,} events, {MESSAGES_PER_BATCH} messages of {EVENTS_PER_MESSAGE} a batch)")
    if args.json:
        print(json.dumps({"events": len(events), "us_per_event": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

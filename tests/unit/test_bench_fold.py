"""bench.fold keeps working: it folds simulated events without a dead letter."""
import asyncio
import time

from bench.fold import EVENTS_PER_MESSAGE, fold_us_per_event
from dti.events.v1.events_pb2 import EventBatch
from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.registry import load_registry
from dti_pulse.simulator import BusSimulator
from services.ingest.validation import to_event


def test_the_fold_benchmark_folds_simulated_events():
    registry = load_registry(DEFAULT_AGENCIES)
    events = [to_event(raw, registry, "test", int(time.time() * 1000))
              for raw in BusSimulator(registry, seed=3).batch(2_000)[:2_000]]
    payloads = [EventBatch(events=events[i:i + EVENTS_PER_MESSAGE]).SerializeToString()
                for i in range(0, len(events), EVENTS_PER_MESSAGE)]
    assert asyncio.run(fold_us_per_event(payloads, len(events))) > 0


def test_bench_run_reads_the_fold_ceiling_from_bench_fold():
    from bench.run import fold_alone_us_per_event

    assert fold_alone_us_per_event(events=2_000) > 0


def test_the_ingest_benchmark_takes_simulated_posts_through_the_publisher():
    from bench.ab import _ingest_us_per_event, ingest_bodies

    assert asyncio.run(_ingest_us_per_event(ingest_bodies(2_000), 2_000, "services")) > 0

"""A hot path of this tree against another commit's, in one process: CPU an event of each,
run after run, alternating, on the same events. This machine's speed moves 1.5-2x within
minutes (bench/README.md), so two runs minutes apart cannot tell a 10 % change; runs a few
seconds apart in one process can. Prints each run and the median ratio.

Usage: python -m bench.ab REV [--path fold|ingest] [--events N] [--runs R] [--messages-per-batch M]

- fold: the aggregator's `prepare` + `commit` (what `bench.fold` times), M messages of 100
  events a batch.
- ingest: what a worker does with a POST of 1,000 valid events, but the HTTP and the
  Kafka client: `valid_batch`, `ingest_valid` (dedup) and the publisher's envelopes,
  handed to a producer that acknowledges at once (aiokafka's API: a REV from before ingest
  published with aiokafka, 2026-12-01, cannot be compared on this path; nor one from before
  `dc38d28`, whose publisher reads `dti_pulse.events.envelopes_by_partition` as a dict).

REV's `services` package is checked out into a temporary directory and imported under
another name (its `services.` imports rewritten); `dti` and `dti_pulse` are this tree's,
so a REV that needs something this tree no longer has cannot be compared.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dti_pulse.bootstrap import tune_gc
from dti_pulse.config import DEFAULT_AGENCIES, Settings
from dti_pulse.registry import load_registry
from bench.fold import EVENTS_PER_MESSAGE, fold_us_per_event, simulated_payloads
from bench.run import PARTITIONS, post_bodies, simulated_events

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PER_POST = 1000


def import_services_of(rev: str, into: Path) -> str:
    """Copies REV's services package to `into` as services_at_rev; returns that name."""
    checkout = into / "checkout"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(checkout), rev], check=True)
    try:
        package = into / "services_at_rev"
        shutil.copytree(checkout / "services", package)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], check=True)
    for source in package.rglob("*.py"):
        text = source.read_text()
        source.write_text(re.sub(r"\bservices\.", "services_at_rev.", text))
    sys.path.insert(0, str(into))
    return "services_at_rev"


class _ProducerThatAcknowledges:
    """aiokafka's producer, every record acknowledged at once."""

    async def send(self, topic, value, partition):
        acknowledged = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged

    async def partitions_for(self, topic):
        return set(range(PARTITIONS))


async def _ingest_us_per_event(bodies: list[bytes], events: int, package: str) -> float:
    service_module = importlib.import_module(f"{package}.ingest.service")
    publisher_module = importlib.import_module(f"{package}.ingest.publisher")
    dedup_module = importlib.import_module(f"{package}.ingest.dedup")
    # The Kafka adapter as it is, but its producer (started on first use, so never here).
    publisher = publisher_module.KafkaPublisher("unused:9092", "bench.ab")
    publisher._producer = _ProducerThatAcknowledges()
    capacity = Settings().tuning.ingest_dedup_capacity
    # A revision before per-source deduplication takes the RecentIds itself.
    dedup = (capacity if "dedup_capacity" in inspect.signature(service_module.IngestService).parameters
             else dedup_module.RecentIds(capacity))
    service = service_module.IngestService(load_registry(DEFAULT_AGENCIES), publisher, dedup)
    started = time.process_time()
    for body in bodies:
        valid = service.valid_batch(body, "bench")
        assert valid is not None, "simulated events must be valid"
        await service.ingest_valid(valid)
    return (time.process_time() - started) / events * 1e6


def ingest_bodies(count: int) -> list[bytes]:
    return post_bodies(simulated_events(count), EVENTS_PER_POST)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the commit to compare with (e.g. HEAD~1)")
    parser.add_argument("--path", choices=["fold", "ingest"], default="fold")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=12, help="runs of each, alternating which goes first")
    parser.add_argument("--messages-per-batch", type=int, default=40, help="fold: messages a batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as work:
        theirs = import_services_of(args.rev, Path(work))
        if args.path == "fold":
            payloads, events = simulated_payloads(args.events)
            count, shape = len(events), f"{args.messages_per_batch} messages of {EVENTS_PER_MESSAGE} a batch"
            tune_gc(Settings().tuning.gc_young_threshold)  # as the aggregator runs

            def measure(package: str) -> float:
                aggregator_class = importlib.import_module(f"{package}.aggregator.processor").Aggregator
                return asyncio.run(fold_us_per_event(payloads, count, aggregator_class, args.messages_per_batch))
        else:
            bodies = ingest_bodies(args.events)
            count, shape = args.events, f"POSTs of {EVENTS_PER_POST}"

            def measure(package: str) -> float:
                return asyncio.run(_ingest_us_per_event(bodies, count, package))
        runs: dict[str, list[float]] = {"this tree": [], args.rev: []}
        for run in range(args.runs):
            order = [("this tree", "services"), (args.rev, theirs)]
            for name, package in (order if run % 2 == 0 else order[::-1]):
                runs[name].append(measure(package))
    for name, figures in runs.items():
        print(f"{name:>12}: " + " ".join(f"{figure:.2f}" for figure in figures) + " µs of CPU an event")
    ratios = [ours / theirs for ours, theirs in zip(runs["this tree"], runs[args.rev])]
    print(f"this tree / {args.rev} ({args.path}): median {statistics.median(ratios):.3f} "
          f"(runs {min(ratios):.3f}-{max(ratios):.3f}; {count:,} events, {shape})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

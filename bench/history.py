"""What recounting the current day costs once the state tables hold a year of history.

    python -m bench.history DATA_PATH [--provinces 1] [--events 60000] [--calls 40]

After every batch the aggregator writes, ranking recounts the open day of the agencies the
batch changed (day snapshots cover only closed days). This loads PROVINCES provinces of
2022 state rows in bulk (bench/national.py's rows: Thanh Hóa's volumes each), as if written
long ago, then today's simulated events through the aggregator into chDB, and times the
measures of today for the department cohort and for one department, uncached. Run with
--provinces 0 for the baseline: the same day with no history."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from bench.national import load_provinces
from bench.run import percentile, simulated_events
from dti.events.v1.events_pb2 import EventBatch
from dti_pulse.clickhouse import get_client
from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.localtime import DAY_MS, LOCAL_OFFSET_MS, local_day
from dti_pulse.registry import load_registry
from dti_pulse.schema import migrate
from services.aggregator.processor import Aggregator
from services.aggregator.store import ClickHouseStateStore
from services.ingest.validation import to_event
from services.ranking.store import ClickHouseMeasures

DEPARTMENTS = [f"000.00.{i:02d}.H56" for i in range(1, 21)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--provinces", type=int, default=1)
    parser.add_argument("--events", type=int, default=60_000, help="today's events, through the aggregator")
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    client = get_client(f"chdb://{args.path}")
    migrate(client)
    history_rows, load_s = load_provinces(client, args.provinces)

    registry = load_registry(DEFAULT_AGENCIES)
    events = [to_event(raw, registry, "bench", int(time.time() * 1000)) for raw in simulated_events(args.events)]
    envelopes = [EventBatch(events=events[i:i + 1000]).SerializeToString() for i in range(0, len(events), 1000)]

    async def no_dead_letters(payload: bytes, reason: str) -> None:
        raise RuntimeError(f"unexpected dead letter: {reason}")

    aggregator = Aggregator(ClickHouseStateStore(client), no_dead_letters)
    for first in range(0, len(envelopes), 10):
        asyncio.run(aggregator.process(envelopes[first:first + 10]))

    measures = ClickHouseMeasures(client)
    now_ms = int(time.time() * 1000)
    day_start = local_day(now_ms) * DAY_MS - LOCAL_OFFSET_MS
    judged_at = now_ms - now_ms % 60_000
    asked = {"department cohort, today": DEPARTMENTS, "one department, today": DEPARTMENTS[4:5]}
    timings, answers = {}, {}
    for name, codes in asked.items():
        answers[name] = measures.measures(codes, day_start, day_start + DAY_MS, judged_at)  # warm-up
        spent = []
        for _ in range(args.calls):
            begun = time.perf_counter()
            measures.measures(codes, day_start, day_start + DAY_MS, judged_at)
            spent.append(1000 * (time.perf_counter() - begun))
        timings[name] = {"p50_ms": percentile(spent, 0.5), "p99_ms": percentile(spent, 0.99)}
    received_today = sum(found.get("dossiers_received", 0) for found in answers["department cohort, today"].values())
    print(json.dumps({"provinces": args.provinces, "history_rows": history_rows, "load_seconds": load_s,
                      "events_today": args.events, "department_dossiers_today": received_today,
                      "recount": timings}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

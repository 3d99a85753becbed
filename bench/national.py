"""National-scale data for the ranking benchmark, loaded in bulk (not through Kafka).

    python -m bench.national DATA_PATH [--provinces 34]

Each province gets Thanh Hóa's 2022 volumes (docs/domain.md, Sources): 917,255 dossiers, 1,073,930
documents sent and 2,387,247 received, as state rows spread over 2022 among its 20
departments and 27 districts, and a catalogue of 150 procedures listed by each agency
(one to three versions over the year). Province 0 uses the shipped registry's codes (H56); the
others use codes the registry does not know, so they are only weight in the tables."""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dti_pulse.clickhouse import get_client
from dti_pulse.schema import (DOCUMENT_COLUMNS, DOSSIER_COLUMNS, MARK_ALL_DAYS_DIRTY_SQL, PROCEDURE_COLUMNS,
                              column_names, migrate)
from services.ranking.day_snapshots import DaySnapshotKeeper

DOSSIERS, SENT, RECEIVED = 917_255, 1_073_930, 2_387_247
PROCEDURES_PER_AGENCY = 150
YEAR_START_MS = 1_640_970_000_000  # 2022-01-01T00:00+07:00
YEAR_MS = 365 * 86_400_000
DAY_MS = 86_400_000
CHUNK = 1_000_000


def agencies(province: int) -> np.ndarray:
    suffix = "H56" if province == 0 else f"X{province:02d}"
    return np.array([f"000.00.{i:02d}.{suffix}" for i in range(1, 21)] + [f"000.{i:02d}.00.{suffix}" for i in range(1, 28)])


def _ids(prefix: str, start: int, count: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(start, start + count)), pa.string())
    return pc.binary_join_element_wise(pa.scalar(prefix), numbers, "")


def _flags(rng, probability: float, count: int) -> pa.Array:
    return pa.array((rng.random(count) < probability).astype(np.uint8))


def dossier_chunk(rng, province: int, start: int, count: int) -> pa.Table:
    received = YEAR_START_MS + rng.integers(0, YEAR_MS, count)
    due = received + rng.choice([1, 3, 5, 10], count) * DAY_MS
    has_end = (rng.random(count) < 0.9).astype(np.uint8)
    end = received + (rng.random(count) * (due - received) * 1.15).astype(np.int64)
    zeros8 = pa.array(np.zeros(count, np.uint8))
    columns = {
        "dossier_id": _ids(f"P{province}-D", start, count),
        "agency_code": pa.array(agencies(province)[rng.integers(0, 47, count)]),
        "procedure_code": pa.array(np.char.add("1.0", rng.integers(10000, 10300, count).astype(str))),
        "channel": pa.array(rng.choice(np.array([1, 2, 3], np.uint8), count, p=[0.35, 0.6, 0.05])),
        "service_level": pa.array(np.where(rng.random(count) < 0.6, "full_online", "partial")),
        "has_received": pa.array(np.ones(count, np.uint8)),
        "received_at_ms": pa.array(received), "due_at_ms": pa.array(due), "due_effective_ms": pa.array(due),
        "has_fee": _flags(rng, 0.4, count), "has_end": pa.array(has_end),
        "end_at_ms": pa.array(np.where(has_end == 1, end, 0)), "paused_ms": pa.array(np.zeros(count, np.int64)),
        "supplement_count": pa.array(np.zeros(count, np.uint16)), "late_forced": zeros8,
        "last_status": pa.array(np.where(has_end == 1, 9, 4).astype(np.uint8)),
        "paid": _flags(rng, 0.4, count), "paid_online": _flags(rng, 0.3, count), "rated": _flags(rng, 0.3, count),
        "satisfied": _flags(rng, 0.95, count), "apology_count": pa.array(np.zeros(count, np.uint16)),
        "event_count": pa.array(np.full(count, 3, np.uint32)), "events_blob": pa.array([b""] * count, pa.binary()),
        # Decision-766 digitisation and sync, drawn last so that the columns above stay a seed's
        "digitized_on_receipt": _flags(rng, 0.85, count), "reused_digitized_data": _flags(rng, 0.4, count),
        "citizen_data_used": _flags(rng, 0.6, count), "synced": _flags(rng, 0.97, count),
        "result_issued": pa.array(has_end),
        "result_electronic": pa.array((has_end & (rng.random(count) < 0.8)).astype(np.uint8)),
        "result_shared": _flags(rng, 0.7, count),
    }
    return pa.table([columns[name] for name in column_names(DOSSIER_COLUMNS)], names=column_names(DOSSIER_COLUMNS))


def document_chunk(rng, province: int, start: int, count: int, sent: bool) -> pa.Table:
    at = YEAR_START_MS + rng.integers(0, YEAR_MS, count)
    completed = (rng.random(count) < 0.8).astype(np.uint8)
    zeros = pa.array(np.zeros(count, np.int64))
    ones8, zeros8 = pa.array(np.ones(count, np.uint8)), pa.array(np.zeros(count, np.uint8))
    columns = {
        "document_id": _ids(f"P{province}-{'S' if sent else 'R'}", start, count),
        "agency_code": pa.array(agencies(province)[rng.integers(0, 47, count)]),
        "sent": ones8 if sent else zeros8, "sent_at_ms": pa.array(at) if sent else zeros,
        "received": zeros8 if sent else ones8, "received_at_ms": zeros if sent else pa.array(at),
        "classified": _flags(rng, 0.01, count), "electronic": _flags(rng, 0.95, count),
        "business_type": zeros8, "has_due": zeros8 if sent else ones8,
        "due_at_ms": zeros if sent else pa.array(at + 7 * DAY_MS),
        "signed": ones8 if sent else zeros8, "personal_signature": _flags(rng, 0.987, count),
        "agency_signature": _flags(rng, 0.99, count), "completed": pa.array(completed),
        "completed_at_ms": pa.array(np.where(completed == 1, at + rng.integers(0, 9 * DAY_MS, count), 0)),
        "last_status": pa.array(np.where(completed == 1, "06", "03")), "recalled": zeros8,
        "event_count": pa.array(np.full(count, 2, np.uint32)), "events_blob": pa.array([b""] * count, pa.binary()),
    }
    return pa.table([columns[name] for name in column_names(DOCUMENT_COLUMNS)], names=column_names(DOCUMENT_COLUMNS))


def procedure_chunk(rng, province: int) -> pa.Table:
    """Each agency's listings of PROCEDURES_PER_AGENCY procedures: one to three versions,
    the first before the year, with dti_pulse.state.PROCEDURE_FLAGS' bits drawn."""
    codes = agencies(province)
    count = len(codes) * PROCEDURES_PER_AGENCY
    versions = rng.integers(1, 4, count)
    starts = [np.sort(np.concatenate(([YEAR_START_MS - DAY_MS], YEAR_START_MS + rng.integers(0, YEAR_MS, n - 1))))
              for n in versions]
    # full content 95 %, population database 70 %, certifies copies 5 % (electronically 60 %); 1 % withdrawn
    bits = [((rng.random(n) < 0.01) | (rng.random(n) < 0.95) << 1 | (rng.random(n) < 0.7) << 2
             | (rng.random(n) < 0.05) << 3 | (rng.random(n) < 0.6) << 4).astype(np.uint8) for n in versions]
    columns = {
        "procedure_id": pa.array(np.tile([f"1.0{n}" for n in range(10000, 10000 + PROCEDURES_PER_AGENCY)], len(codes))),
        "agency_code": pa.array(np.repeat(codes, PROCEDURES_PER_AGENCY)),
        "versions_from_ms": pa.array(starts, pa.list_(pa.int64())),
        "versions_flags": pa.array(bits, pa.list_(pa.uint8())),
        "event_count": pa.array(versions.astype(np.uint32)), "events_blob": pa.array([b""] * count, pa.binary()),
    }
    return pa.table([columns[name] for name in column_names(PROCEDURE_COLUMNS)], names=column_names(PROCEDURE_COLUMNS))


def load_provinces(client, provinces: int, seed: int = 34) -> tuple[int, float]:
    """Loads the provinces' 2022 state rows in bulk, as history; returns how many rows, and
    the seconds it took."""
    rng, rows, started = np.random.default_rng(seed), 0, time.perf_counter()
    for province in range(provinces):
        for start in range(0, DOSSIERS, CHUNK):
            count = min(CHUNK, DOSSIERS - start)
            client.insert_arrow("dossier_state", dossier_chunk(rng, province, start, count))
            rows += count
        for total, sent in ((SENT, True), (RECEIVED, False)):
            for start in range(0, total, CHUNK):
                count = min(CHUNK, total - start)
                client.insert_arrow("document_state", document_chunk(rng, province, start, count, sent))
                rows += count
        listings = procedure_chunk(rng, province)
        client.insert_arrow("procedure_state", listings)
        rows += listings.num_rows
        print(f"province {province + 1}/{provinces}: {rows:,} rows, {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    return rows, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--provinces", type=int, default=34)
    parser.add_argument("--settle", type=float, default=600, help="seconds to let merges finish")
    args = parser.parse_args()
    client = get_client(f"chdb://{args.path}")
    migrate(client)
    rows, loaded_s = load_provinces(client, args.provinces)
    # Rows loaded in bulk bypass the aggregator, which marks the days it writes: mark them all,
    # then build their day snapshots the way ranking's background rounds do.
    snapshots_started = time.perf_counter()
    keeper = DaySnapshotKeeper(client, quiet_ms=0)
    if not keeper.ensure_definitions():
        client.command(MARK_ALL_DAYS_DIRTY_SQL)
    while keeper.recompute_dirty() >= keeper.batch:
        pass
    snapshot_s = time.perf_counter() - snapshots_started
    print(f"day snapshots built in {snapshot_s:.0f} s", file=sys.stderr, flush=True)
    # A live system merges its parts in the background; measure the ranking on settled
    # tables (up to --settle seconds of merging, reported).
    settle_started = time.perf_counter()
    while time.perf_counter() - settle_started < args.settle:
        if not client.query("SELECT count() FROM system.merges").result_rows[0][0]:
            break
        time.sleep(2)
    parts = client.query("SELECT count() FROM system.parts WHERE active AND table IN "
                         "('dossier_state', 'document_state', 'day_measures')").result_rows[0][0]
    snapshot_rows = client.query("SELECT count() FROM day_measures FINAL").result_rows[0][0]
    print(json.dumps({"rows": rows, "seconds": loaded_s, "snapshot_seconds": snapshot_s, "snapshot_rows": snapshot_rows,
                      "settle_seconds": time.perf_counter() - settle_started,
                      "active_parts": parts, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

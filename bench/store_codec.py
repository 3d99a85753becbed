"""What the state store's protobuf frames cost against pickle (the baseline, measured in the
same run): 10,000 dossier state rows encoded and decoded, as a write from a fold process
apart to the chDB owner carries them.

python -m bench.store_codec [--rows 10000] [--repeat 20]
"""
from __future__ import annotations

import argparse
import pickle
import time

from dti.store.v1 import store_pb2 as pb
from dti_pulse.state import summarize
from services.aggregator import remote_store
from services.aggregator.processor import state_row
from tests.factories import dossier_received, dossier_status
from tests.fakes import envelope


def state_rows(count: int) -> list[tuple]:
    rows = []
    for i in range(count):
        events = [dossier_received(f"D-{i}", "2026-10-01 08:00", "2026-10-03 17:00"),
                  dossier_status(f"D-{i}", 9, "2026-10-02 09:00")]
        rows.append(state_row(summarize(("dossier", f"D-{i}"), events), envelope(*events)))
    return rows


def per_row_us(round_trip, rows: list, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        round_trip(rows)
    return (time.perf_counter() - started) / repeat / len(rows) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rows = state_rows(args.rows)
    baseline = per_row_us(lambda r: pickle.loads(pickle.dumps(r)), rows, args.repeat)
    protobuf = per_row_us(lambda r: remote_store.rows_of(pb.Rows.FromString(
        remote_store.rows_message(r, pb.Rows()).SerializeToString())), rows, args.repeat)
    print(f"state rows, encode + decode: pickle {baseline:.2f} us a row, protobuf columns {protobuf:.2f} us a row "
          f"({protobuf / baseline:.2f} x)")


if __name__ == "__main__":
    main()

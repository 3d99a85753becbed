"""gRPC load generator, run as its own process.

    python -m bench.grpc_load TARGET KIND SECONDS CONCURRENCY [RATE]

KIND: health (the empty unary baseline), score (GetAgencyScore over the departments) or
ranking (ListRanking of the departments). Prints requests/s and latency percentiles; with
RATE, a call's latency runs from when it was due (since 2026-11-30: before, from when it was
sent, which hid the calls held behind a stall)."""
from __future__ import annotations

import asyncio
import os
import json
import sys
import time
from datetime import datetime

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from dti_pulse.collector import collector_paused
from dti_pulse.grpc_channel import async_ranking_channel
from dti_pulse.localtime import LOCAL_TZ

GRPC_TOKEN = "bench-grpc-token"  # what bench/run.py gives ranking
DEPARTMENTS = [f"000.00.{i:02d}.H56" for i in range(1, 21)]


async def main(target: str, kind: str, seconds: float, concurrency: int, rate: float | None) -> None:
    month = datetime.now(LOCAL_TZ).strftime("%Y-%m")
    async with async_ranking_channel(target, os.environ.get("DTI_RANKING_TOKEN", GRPC_TOKEN)) as channel:
        ranking = ranking_pb2_grpc.RankingServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        calls = {
            "health": lambda i: health.Check(health_pb2.HealthCheckRequest()),
            "score": lambda i: ranking.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(
                agency_code=DEPARTMENTS[i % len(DEPARTMENTS)], period=month)),
            "ranking": lambda i: ranking.ListRanking(ranking_pb2.ListRankingRequest(cohort="department", period=month)),
        }
        call = calls[kind]
        # Warm up the channel, and the answers: the steady state between data changes is
        # measured here (a lookup that has to count is the national scenario's figure).
        for index in range(len(DEPARTMENTS) if kind == "score" else 1):
            await call(index)
        latencies: list[float] = []
        by_second: dict[int, list[float]] = {}  # paced: latencies by the second the call was due in
        errors = 0
        started = time.perf_counter()
        deadline = started + seconds
        issued = 0

        async def worker():
            nonlocal issued, errors
            while True:
                index = issued
                issued += 1
                if rate:
                    due = started + index / rate
                    if due > deadline:
                        return
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                elif time.perf_counter() > deadline:
                    return
                begun = time.perf_counter()
                try:
                    await call(index)
                except grpc.RpcError:
                    errors += 1
                # Paced: from when the call was due, so that a stalled server's backlog counts
                # (measured from the send, the calls held behind a stall would look fast).
                latencies.append(time.perf_counter() - (due if rate else begun))
                if rate:
                    by_second.setdefault(int(time.time() - (time.perf_counter() - due)), []).append(latencies[-1])

        with collector_paused(freeze_existing=True):  # the bench's own pauses out of its timings
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    print(json.dumps({"kind": kind, "requests_per_s": len(latencies) / elapsed, "errors": errors,
                      "p50_ms": 1000 * latencies[len(latencies) // 2],
                      "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)], "max_ms": 1000 * latencies[-1],
                      # where a stall falls (e.g. against the judgement minute's turn): each
                      # wall-clock second's call count, calls over 10 ms and slowest call
                      "seconds": [{"at": second, "calls": len(values), "over_10_ms": sum(v > 0.010 for v in values),
                                   "max_ms": round(1000 * max(values), 1)}
                                  for second, values in sorted(by_second.items())]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]),
                     float(sys.argv[5]) if len(sys.argv) > 5 else None))

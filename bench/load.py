"""HTTP load generator, run as its own process: posts pre-built JSON batches.

    python -m bench.load URL TOKEN BODIES CONCURRENCY [EVENTS_PER_S EVENTS_PER_BODY]

Without a rate it posts as fast as CONCURRENCY requests in flight allow; with one it
paces the bodies to that many events per second (background load)."""
from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

from dti_pulse.collector import collector_paused


async def main(url: str, token: str, bodies_path: str, concurrency: int, rate: float | None, per_body: int) -> None:
    with open(bodies_path, "rb") as handle:
        bodies = [line.rstrip(b"\n") for line in handle if line.strip()]
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    statuses: dict[int, int] = {}
    accepted = 0
    latencies = []
    started = time.perf_counter()
    sent = 0

    async def worker(client: httpx.AsyncClient):
        nonlocal accepted, sent
        while not queue.empty():
            body = queue.get_nowait()
            if rate:
                due = started + sent * per_body / rate
                sent += 1
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            begun = time.perf_counter()
            response = await client.post("/v1/events", content=body)
            latencies.append(time.perf_counter() - begun)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                accepted += response.json()["accepted"]

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:
        with collector_paused(freeze_existing=True):  # the bench's own pauses out of its timings
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(json.dumps({"accepted": accepted, "seconds": elapsed, "statuses": statuses,
                      "p50_ms": 1000 * latencies[len(latencies) // 2],
                      "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}))


if __name__ == "__main__":
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else None
    per_body = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), rate, per_body))

"""Operations-centre screens, simulated, run as their own process: CLIENTS Server-Sent-Events
streams of the console, each noting when it first saw each province activity total.

    python -m bench.console_watch URL TOKEN CLIENTS SECONDS

Prints JSON: {"connected": n, "seen": [{total: unix seconds first seen}, ...]} (one per client)."""
from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


async def watch(client: httpx.AsyncClient, seen: dict, connected: list, deadline: float) -> None:
    async with client.stream("GET", "/api/stream", params={"cohort": "department", "period": "today"}) as response:
        response.raise_for_status()
        connected.append(1)
        name = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "activity":
                total = sum(json.loads(line[6:])["totals"].values())
                seen.setdefault(total, time.time())
            if time.monotonic() > deadline:
                return


async def main(url: str, token: str, clients: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    seen: list[dict] = [{} for _ in range(clients)]
    connected: list = []
    limits = httpx.Limits(max_connections=clients + 5)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=None,
                                 limits=limits) as client:
        tasks = [asyncio.create_task(watch(client, seen[i], connected, deadline)) for i in range(clients)]
        await asyncio.wait(tasks, timeout=seconds + 5)
        for task in tasks:
            task.cancel()
    print(json.dumps({"connected": len(connected), "seen": seen}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))

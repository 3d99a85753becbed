"""`make bench`: throughput of ingest and of the aggregator, each beside a naive baseline
measured in the same run on the same engines (tansu, chDB). Prints a table and writes
bench/results/latest.json."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from dti.events.v1.events_pb2 import EventBatch
from dti_pulse.broker import EmbeddedBroker, free_port, wait_for_port
from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.events import entity_key, partition_for
from dti_pulse.kafka import ensure_topics
from dti_pulse.registry import load_registry
from dti_pulse.simulator import BusSimulator
from services.ingest.validation import to_event

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
TOKEN = "bench-token"


def simulated_events(count: int, seed: int = 7) -> list[dict]:
    simulator = BusSimulator(load_registry(DEFAULT_AGENCIES), seed=seed)
    return simulator.batch(count)[:count]


def child_env(bootstrap: str, data_dir: Path, topic: str, group: str, http_port: int) -> dict[str, str]:
    return {**os.environ, "DTI_KAFKA_BOOTSTRAP": bootstrap, "DTI_DATA_DIR": str(data_dir),
            "DTI_EVENTS_TOPIC": topic, "DTI_DLQ_TOPIC": f"{topic}.dlq", "DTI_TOPIC_PARTITIONS": str(PARTITIONS),
            "DTI_AGGREGATOR_GROUP": group, "DTI_HTTP_PORT": str(http_port), "DTI_GRPC_PORT": str(free_port()),
            "DTI_INGEST_TOKENS": f"bench={TOKEN}", "DTI_KAFKA_SESSION_TIMEOUT_S": "6", "PYTHONUNBUFFERED": "1"}


def bench_ingest_baseline(bootstrap: str, events: list[dict]) -> float:
    """kafka-python, one Kafka message per event (acks=all), the naive way."""
    from kafka import KafkaProducer

    registry = load_registry(DEFAULT_AGENCIES)
    topic = "bench.baseline.ingest"
    ensure_topics(bootstrap, {topic: PARTITIONS})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False)
    started = time.perf_counter()
    for raw in events:
        event = to_event(raw, registry, "bench", 0)
        producer.send(topic, value=event.SerializeToString(), partition=partition_for(entity_key(event)[1], PARTITIONS))
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return len(events) / elapsed


def bench_ingest(bootstrap: str, events: list[dict], work: Path, batch: int, concurrency: int, workers: int) -> dict:
    bodies = work / "bodies.jsonl"
    with open(bodies, "wb") as handle:
        for i in range(0, len(events), batch):
            handle.write(orjson.dumps({"events": events[i:i + batch]}) + b"\n")
    port = free_port()
    env = child_env(bootstrap, work / "ingest-data", f"bench.ingest.{workers}", "unused", port)
    env["DTI_INGEST_WORKERS"] = str(workers)
    log = open(work / "ingest.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "dti_pulse.cli", "serve", "ingest"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, timeout_s=60, process=server)
        load = [sys.executable, "-m", "bench.load", f"http://127.0.0.1:{port}", TOKEN, str(bodies), str(concurrency)]
        # warm-up on a fresh copy of the first bodies would be deduplicated; the run itself is long enough
        result = json.loads(subprocess.run(load, capture_output=True, check=True, cwd=ROOT).stdout)
    finally:
        server.terminate()
        server.wait(20)
        log.close()
    result["events_per_s"] = result["accepted"] / result["seconds"]
    return result


def fill_topic(bootstrap: str, topic: str, events: list[dict], per_request: int) -> int:
    """Publishes events the way ingest does (one envelope per partition per request)."""
    from kafka import KafkaProducer

    registry = load_registry(DEFAULT_AGENCIES)
    ensure_topics(bootstrap, {topic: PARTITIONS})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False,
                             max_request_size=64 * 1024 * 1024)
    for i in range(0, len(events), per_request):
        batches: dict[int, EventBatch] = {}
        for raw in events[i:i + per_request]:
            event = to_event(raw, registry, "bench", 0)
            batches.setdefault(partition_for(entity_key(event)[1], PARTITIONS), EventBatch()).events.append(event)
        for partition, envelope in batches.items():
            producer.send(topic, value=envelope.SerializeToString(), partition=partition)
    producer.flush()
    producer.close()
    return len(events)


async def _consume_decode(bootstrap: str, topic: str, expected: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, fetch_max_wait_ms=100)
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < expected:
            records = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and records:
                started = time.perf_counter()
            for batch in records.values():
                for record in batch:
                    seen += len(EventBatch.FromString(record.value).events)
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - started)


def committed_events(bootstrap: str, group: str, topic: str, offsets_to_events: dict) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        committed = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    total = 0
    for tp, meta in committed.items():
        if tp.topic == topic and meta.offset > 0:
            total += offsets_to_events[tp.partition][meta.offset - 1]
    return total


def bench_aggregator(bootstrap: str, events: list[dict], work: Path, per_request: int) -> dict:
    topic = "bench.aggregate"
    fill_topic(bootstrap, topic, events, per_request)
    baseline = asyncio.run(_consume_decode(bootstrap, topic, len(events)))

    # cumulative events per partition at each offset, to read progress from committed offsets
    from kafka import KafkaConsumer, TopicPartition

    offsets_to_events: dict[int, list[int]] = {}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    for record in consumer:
        running = offsets_to_events.setdefault(record.partition, [])
        running.append((running[-1] if running else 0) + len(EventBatch.FromString(record.value).events))
    consumer.close()

    group = f"bench-aggregator-{int(time.time())}"
    env = child_env(bootstrap, work / "aggregator-data", topic, group, free_port())
    env["DTI_AGGREGATOR_COMMIT_INTERVAL_S"] = "0.2"  # progress is read from committed offsets
    log = open(work / "aggregator.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "dti_pulse.cli", "serve", "aggregator"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = committed_events(bootstrap, group, topic, offsets_to_events)
            now = time.perf_counter()
            if done and first is None:
                first = (now, done)
            if done >= len(events):
                break
            if process.poll() is not None:
                raise RuntimeError(f"aggregator exited: {(work / 'aggregator.log').read_text()[-2000:]}")
            time.sleep(0.2)
        else:
            raise TimeoutError("aggregator did not finish in 600 s")
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    rate = (len(events) - first[1]) / (now - first[0])
    return {"events_per_s": rate, "baseline_events_per_s": baseline}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1000, help="events per HTTP request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=["ingest", "aggregate"], help="run one scenario")
    args = parser.parse_args()

    events = simulated_events(args.events)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "events": len(events), "cores": os.cpu_count()}
    try:
        results["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                           cwd=ROOT).stdout.strip()
    except OSError:
        results["commit"] = ""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = EmbeddedBroker(log_path=work / "tansu.log").start()
        try:
            rows = []
            if args.only in (None, "ingest"):
                baseline = bench_ingest_baseline(broker.bootstrap, events[: min(len(events), 100_000)])
                for workers in (1, 2):
                    ingest = bench_ingest(broker.bootstrap, events, work, args.batch, args.concurrency, workers)
                    results[f"ingest_http_{workers}_workers"] = {k: ingest[k] for k in ("p50_ms", "p99_ms", "statuses")}
                    rows.append((f"ingest, HTTP, {workers} worker{'s' if workers > 1 else ''}", ingest["events_per_s"],
                                 baseline, "kafka-python, one message per event", 50_000))
            if args.only in (None, "aggregate"):
                aggregate = bench_aggregator(broker.bootstrap, events, work, args.batch)
                rows.append(("aggregator (Kafka -> state -> chDB)", aggregate["events_per_s"],
                             aggregate["baseline_events_per_s"], "aiokafka consume + decode", 50_000))
        finally:
            broker.stop()
    results["scenarios"] = [{"scenario": name, "events_per_s": round(value), "baseline_events_per_s": round(base),
                             "baseline": what, "ratio": round(value / base, 2), "target_events_per_s": target,
                             "pass": value >= target} for name, value, base, what, target in rows]
    print(f"{'scenario':40} {'events/s':>10} {'baseline':>10} {'ratio':>6} {'target':>8}  result")
    for row in results["scenarios"]:
        print(f"{row['scenario']:40} {row['events_per_s']:>10,} {row['baseline_events_per_s']:>10,} "
              f"{row['ratio']:>6} {row['target_events_per_s']:>8,}  {'pass' if row['pass'] else 'MISS'}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

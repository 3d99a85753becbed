"""`make bench`: throughput of ingest and of the aggregator, each beside a naive baseline
measured in the same run on the same engines (Apache Kafka, chDB). Prints a table and writes
bench/results/latest.json."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from bench.grpc_load import GRPC_TOKEN
from dti.events.v1.events_pb2 import EventBatch
from dti_pulse.bootstrap import aggregation_layout
from dti_pulse.collector import collector_paused
from dti_pulse.broker import KafkaBroker, free_port, wait_for_port
from dti_pulse.config import DEFAULT_AGENCIES, Settings
from dti_pulse.events import entity_key, envelopes_by_partition, partition_for
from dti_pulse.kafka import ensure_topics
from dti_pulse.grpc_channel import ranking_channel
from dti_pulse.localtime import LOCAL_TZ
from dti_pulse.registry import load_registry
from dti_pulse.simulator import BusSimulator
from services.ingest.validation import to_event

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
TOKEN = "bench-token"
# What `dti-pulse up` runs unless told otherwise; --aggregator-processes sets it for a run.
AGGREGATOR_PROCESSES = Settings().tuning.aggregator_processes


def simulated_events(count: int, seed: int = 7) -> list[dict]:
    simulator = BusSimulator(load_registry(DEFAULT_AGENCIES), seed=seed)
    return simulator.batch(count)[:count]


def child_env(bootstrap: str, data_dir: Path, topic: str, group: str, http_port: int) -> dict[str, str]:
    return {**os.environ, "DTI_KAFKA_BOOTSTRAP": bootstrap, "DTI_DATA_DIR": str(data_dir),
            "DTI_EVENTS_TOPIC": topic, "DTI_DLQ_TOPIC": f"{topic}.dlq", "DTI_TOPIC_PARTITIONS": str(PARTITIONS),
            "DTI_AGGREGATOR_GROUP": group, "DTI_HTTP_PORT": str(http_port), "DTI_METRICS_PORT": "0", "DTI_GRPC_PORT": str(free_port()),
            "DTI_INGEST_TOKENS": f"bench={TOKEN}",
            "DTI_GRPC_TOKENS": f"bench={GRPC_TOKEN}", "DTI_RANKING_TOKEN": GRPC_TOKEN, "DTI_KAFKA_SESSION_TIMEOUT_S": "6", "PYTHONUNBUFFERED": "1",
            "DTI_AGGREGATOR_PROCESSES": str(AGGREGATOR_PROCESSES)}


def start_core(start, name: str, env: dict[str, str], ranking: bool = True) -> list[subprocess.Popen]:
    """The process that owns chDB (answering gRPC when ranking), folding the events itself,
    or with DTI_AGGREGATOR_PROCESSES = N serving its state store to N fold processes apart,
    as `dti-pulse up` runs them. Returns the core process first, then the fold processes."""
    layout = aggregation_layout(int(env.get("DTI_AGGREGATOR_PROCESSES") or 0), ranking,
                                data_dir=Path(env["DTI_DATA_DIR"]))
    return [start(name if index == 0 else f"{name}-fold-{index - 1}", ["dti_pulse.cli", *args], env)
            for index, (_, args) in enumerate(layout)]


@contextlib.contextmanager
def children(work: Path):
    """start(name, ["module", args...], env) runs `python -m` children with their output in
    work/NAME.log (the process's `log_path`); leaving the block stops them all, last started
    first."""
    started: list[subprocess.Popen] = []

    def start(name: str, module_args: list[str], env: dict[str, str]) -> subprocess.Popen:
        with open(work / f"{name}.log", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", *module_args], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        process.log_path = work / f"{name}.log"
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in reversed(started):
            stop(process)


def stop(process: subprocess.Popen, timeout_s: float = 30) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def post_bodies(events: list[dict], per_body: int) -> list[bytes]:
    """The JSON bodies of POSTs of per_body events each."""
    return [orjson.dumps({"events": events[i:i + per_body]}) for i in range(0, len(events), per_body)]


def write_bodies(handle, events: list[dict], per_body: int) -> None:
    """POST bodies of per_body events, one JSON document a line (what bench.load sends)."""
    for body in post_bodies(events, per_body):
        handle.write(body + b"\n")


def bench_ingest(bootstrap: str, events: list[dict], work: Path, batch: int, concurrency: int, workers: int) -> dict:
    bodies = work / "bodies.jsonl"
    with open(bodies, "wb") as handle:
        write_bodies(handle, events, batch)
    port = free_port()
    env = child_env(bootstrap, work / "ingest-data", f"bench.ingest.{workers}", "unused", port)
    env["DTI_INGEST_WORKERS"] = str(workers)
    with children(work) as start:
        server = start("ingest", ["dti_pulse.cli", "serve", "ingest"], env)
        wait_for_port("127.0.0.1", port, timeout_s=60, process=server)
        load = [sys.executable, "-m", "bench.load", f"http://127.0.0.1:{port}", TOKEN, str(bodies), str(concurrency)]
        cpu_before = _tree_cpu_s(server.pid)
        result = json.loads(subprocess.run(load, capture_output=True, check=True, cwd=ROOT).stdout)
        result["cpu_us_per_event"] = (_tree_cpu_s(server.pid) - cpu_before) / max(1, result["accepted"]) * 1e6
    result["events_per_s"] = result["accepted"] / result["seconds"]
    return result


def fold_alone_us_per_event(events: int = 200_000) -> float:
    """bench.fold in a child process (its own GC settings): the aggregator's fold alone, CPU
    an event, the ceiling of one aggregator process measured beside the scenario."""
    run = subprocess.run([sys.executable, "-m", "bench.fold", "--events", str(events), "--repeat", "1", "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(run.stdout.strip().splitlines()[-1])["us_per_event"][0]


def fill_topic(bootstrap: str, topic: str, events: list[dict], per_request: int) -> int:
    """Publishes events the way ingest does (one envelope per partition per request)."""
    from kafka import KafkaProducer

    registry = load_registry(DEFAULT_AGENCIES)
    ensure_topics(bootstrap, {topic: PARTITIONS})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False,
                             max_request_size=64 * 1024 * 1024)
    for i in range(0, len(events), per_request):
        request = [to_event(raw, registry, "bench", 0) for raw in events[i:i + per_request]]
        for partition, envelope in envelopes_by_partition(request, PARTITIONS):
            producer.send(topic, value=envelope, partition=partition)
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


def committed_events(admin, group: str, topic: str, offsets_to_events: dict) -> int:
    committed = admin.list_group_offsets(group).get(group, {})
    total = 0
    for tp, meta in committed.items():
        if tp.topic == topic and meta.offset > 0:
            total += offsets_to_events[tp.partition][meta.offset - 1]
    return total


def bench_aggregator(bootstrap: str, events: list[dict], work: Path, per_request: int, processes: int) -> dict:
    """processes: fold processes apart from the chDB owner (0: the owner folds). The window
    runs from the first partition assignment a fold process logs (no event is folded
    before) until the group has committed every event. A window opened at the first commit
    seen opened late: under a backlog a batch takes whatever came in during the previous
    fold (hundreds of thousands of events), so commits move in a few big steps, and it read
    rates beyond the CPU spent (187,054 events/s at 7.6 us an event)."""
    topic = f"bench.aggregate.{processes}"
    fill_topic(bootstrap, topic, events, per_request)
    baseline = asyncio.run(_consume_decode(bootstrap, topic, len(events)))

    # cumulative events per partition at each offset, to read progress from committed offsets
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

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
    env = child_env(bootstrap, work / f"aggregator-data-{processes}", topic, group, free_port())
    env["DTI_AGGREGATOR_COMMIT_INTERVAL_S"] = "0.2"  # progress is read from committed offsets
    env["DTI_AGGREGATOR_PROCESSES"] = str(processes)
    with children(work) as start:
        started = start_core(start, f"aggregator-{processes}", env, ranking=False)

        def exit_if_any_died() -> None:
            if any(process.poll() is not None for process in started):
                logs = "".join(process.log_path.read_text()[-2000:] for process in started)
                raise RuntimeError(f"an aggregator process exited: {logs}")

        fold_logs = [process.log_path for process in started[1:] or started]  # the owner folds when alone
        deadline = time.monotonic() + 120
        while (opened := _first_assignment(fold_logs)) is None:
            exit_if_any_died()
            if time.monotonic() > deadline:
                raise TimeoutError("no fold process was assigned partitions in 120 s")
            time.sleep(0.02)
        # One admin client for the whole wait: a new one every poll (its connection and version
        # probes) took ~5 % of a core from the processes measured.
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            cpu_opened = [_cpu_s(process.pid) for process in started]
            deadline = time.monotonic() + 600
            while committed_events(admin, group, topic, offsets_to_events) < len(events):
                exit_if_any_died()
                if time.monotonic() > deadline:
                    raise TimeoutError("aggregator did not finish in 600 s")
                time.sleep(0.1)
            closed = time.time()
        finally:
            admin.close()
        # the chDB owner first, then each fold process apart
        cpu_us = [(_cpu_s(process.pid) - before) / len(events) * 1e6 for process, before in zip(started, cpu_opened)]
    return {"events_per_s": len(events) / (closed - opened), "baseline_events_per_s": baseline,
            "cpu_us_per_event": sum(cpu_us), "cpu_us_per_event_by_process": cpu_us}


def _first_assignment(logs: list[Path]) -> float | None:
    """When the first of these aggregator logs says it took partitions (it rebuilds its
    filter on each assignment, before folding), as a Unix time; None before."""
    stamps = []
    for log in logs:
        for line in (log.read_text(errors="replace") if log.exists() else "").splitlines():
            if "state filter rebuilt" in line:
                stamps.append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp())
                break
    return min(stamps) if stamps else None


def _probe_event(index: int, agency: str) -> dict:
    now = datetime.now(LOCAL_TZ)
    stamp = now.isoformat(timespec="milliseconds")
    return {"event_id": str(uuid.uuid4()), "type": "dossier.received", "occurred_at": stamp, "agency_code": agency,
            "dossier_id": f"PROBE-{uuid.uuid4().hex[:12]}-{index}", "procedure_code": "1.000001", "channel": 2,
            "service_level": "full_online", "received_at": stamp,
            "due_at": (now + timedelta(days=3)).isoformat(timespec="milliseconds")}


async def _kafka_latency(bootstrap: str, probes: int) -> list[float]:
    """Kafka alone: aiokafka produce (acks=all) -> aiokafka consume (100 ms fetch wait)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"bench.kafka-latency.{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, {topic: 1})
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", group_id=None,
                                fetch_max_wait_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    await asyncio.sleep(1.0)  # assignment
    latencies = []
    try:
        for _ in range(probes):
            started = time.perf_counter()
            await producer.send_and_wait(topic, b"probe")
            await consumer.getone()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
        await consumer.stop()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# How a probe's score is read: pushed by WatchAgencyScore (what the operations centre's
# screens use), or GetAgencyScore called every 5 ms (its 200 calls a second are load too).
# Probes alternate between the two, so that both see the same load and the same state size.
FRESHNESS_VIA = ("watch", "poll")


def _freshness_probes(http, stub, request, agency: str, probes: int, denominator) -> dict[str, list[float]]:
    """Seconds from each probe's 2xx to a score that counts it, per way of reading it."""
    import grpc

    seen = {"count": denominator(stub.GetAgencyScore(request)), "at": 0.0}
    base = seen["count"]
    arrived = threading.Condition()
    stream = stub.WatchAgencyScore(request)

    def follow():
        try:
            for score in stream:
                with arrived:
                    seen["count"], seen["at"] = denominator(score), time.perf_counter()
                    arrived.notify_all()
        except grpc.RpcError:
            pass  # cancelled at the end

    threading.Thread(target=follow, name="watch", daemon=True).start()
    freshness = {via: [] for via in FRESHNESS_VIA}
    try:
        for index in range(len(FRESHNESS_VIA) * probes):
            via = FRESHNESS_VIA[index % len(FRESHNESS_VIA)]
            response = http.post("/v1/events", json={"events": [_probe_event(index, agency)]})
            accepted_at = time.perf_counter()
            assert response.status_code == 200, response.text
            wanted = base + index + 1
            if via == "watch":
                with arrived:
                    if not arrived.wait_for(lambda: seen["count"] >= wanted, timeout=30):
                        raise TimeoutError("a probe did not reach the watched score in 30 s")
                    freshness[via].append(max(0.0, seen["at"] - accepted_at))
            else:
                while denominator(stub.GetAgencyScore(request)) < wanted:
                    if time.perf_counter() - accepted_at > 30:
                        raise TimeoutError("a probe did not reach the score in 30 s")
                    time.sleep(0.005)
                freshness[via].append(time.perf_counter() - accepted_at)
            time.sleep(0.1)
    finally:
        stream.cancel()
    return freshness


def _wait_until_written(stub, quiet_s: float = 2.0, timeout_s: float = 120.0) -> None:
    """Until the aggregator has written what ingest accepted (the live activity stops
    growing for quiet_s): lookups measured while it still catches up would measure its writes."""
    from dti.ranking.v1 import ranking_pb2

    deadline, last, since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(stub.GetActivity(ranking_pb2.GetActivityRequest(minutes=120)).totals.values())
        if total != last:
            last, since = total, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the aggregator was still writing {timeout_s:.0f} s after the load stopped")


def bench_live(bootstrap: str, work: Path, background_rate: int, probes: int) -> dict:
    """Freshness under background load, then score lookups, on one running stack."""
    import httpx

    from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc

    topic = "bench.live"
    http_port, grpc_port = free_port(), free_port()
    env = child_env(bootstrap, work / "live-data", topic, "bench-live", http_port)
    env["DTI_GRPC_PORT"] = str(grpc_port)
    with children(work) as start:
        core, *folds = start_core(start, "live-core", env)
        ingest = start("live-ingest", ["dti_pulse.cli", "serve", "ingest"], env)
        wait_for_port("127.0.0.1", grpc_port, timeout_s=60, process=core)
        wait_for_port("127.0.0.1", http_port, timeout_s=60, process=ingest)
        duration_s = len(FRESHNESS_VIA) * probes * 0.6 + 15
        agency = "012.00.00.H56"  # a commune only the probes write to: the background leaves it out
        background = [e for e in simulated_events(int(background_rate * duration_s), seed=11)
                      if e["agency_code"] != agency]
        load = None
        if background:
            bodies = work / "background.jsonl"
            per_body = 250
            with open(bodies, "wb") as handle:
                write_bodies(handle, background, per_body)
            load = start("live-load", ["bench.load", f"http://127.0.0.1:{http_port}", TOKEN, str(bodies), "4",
                                       str(background_rate), str(per_body)], env)
            time.sleep(5)  # let the background load settle

        del background  # the runner's own collections walked it (0.43 s) while timing

        def on_time_denominator(score) -> int:
            return {i.code: i for i in score.indicators}["dossier_on_time_rate"].denominator

        # A collection of this process's heap (0.43 s, with the events held) counted against the services.
        with collector_paused(freeze_existing=True):
            kafka = asyncio.run(_kafka_latency(bootstrap, probes))
            stub = ranking_pb2_grpc.RankingServiceStub(ranking_channel(f"127.0.0.1:{grpc_port}", GRPC_TOKEN))
            today = datetime.now(LOCAL_TZ).strftime("%Y-%m-%d")
            request = ranking_pb2.GetAgencyScoreRequest(agency_code=agency, period=today)
            with httpx.Client(base_url=f"http://127.0.0.1:{http_port}",
                              headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                freshness = _freshness_probes(http, stub, request, agency, probes, on_time_denominator)
        if load:
            stop(load, 10)  # background load off for the lookups
        _wait_until_written(stub)

        def grpc_load(kind, seconds=5.0, concurrency=8, rate=None):
            args = [sys.executable, "-m", "bench.grpc_load", f"127.0.0.1:{grpc_port}", kind, str(seconds),
                    str(concurrency)] + ([str(rate)] if rate else [])
            return json.loads(subprocess.run(args, capture_output=True, check=True, cwd=ROOT).stdout)

        lookups = {kind: grpc_load(kind) for kind in ("health", "score", "ranking")}
        # The empty handler at the same rate: what the machine, the client and gRPC alone cost.
        lookups["health_at_1000"] = grpc_load("health", seconds=5.0, concurrency=32, rate=1000)
        lookups["score_at_1000"] = grpc_load("score", seconds=5.0, concurrency=32, rate=1000)
        lookups["ranking_at_1000"] = grpc_load("ranking", seconds=5.0, concurrency=32, rate=1000)
        # Open periods are judged at the start of the minute: when it turns, every answer is a
        # new question. From 15 s before the turn (the load asks first) to 5 s after it.
        before_turn = 60 - time.time() % 60 - 15
        time.sleep(before_turn if before_turn > 0 else before_turn + 60)
        lookups["score_across_turn"] = grpc_load("score", seconds=20.0, concurrency=32, rate=1000)
    # With 100 probes a way, p99 is the slowest probe: the JSON keeps every probe, and the
    # table says how many missed 500 ms.
    return {"freshness": {via: {"p50_ms": 1000 * percentile(seconds, 0.5), "p90_ms": 1000 * percentile(seconds, 0.9),
                                "p99_ms": 1000 * percentile(seconds, 0.99),
                                "over_500_ms": sum(s > 0.5 for s in seconds),
                                "probes_ms": sorted(round(1000 * s, 1) for s in seconds)}
                          for via, seconds in freshness.items()},
            "kafka_p50_ms": 1000 * percentile(kafka, 0.5), "kafka_p99_ms": 1000 * percentile(kafka, 0.99),
            "background_events_per_s": background_rate, "probes": probes, "lookups": lookups}


def bench_console(bootstrap: str, work: Path, clients: int, probes: int) -> dict:
    """From ingest's 2xx to the event in the live activity of CLIENTS console streams (the
    operations centre's screens), beside the same event read directly from ranking's gRPC."""

    from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc

    topic = "bench.console"
    http_port, console_port = free_port(), free_port()
    env = child_env(bootstrap, work / "console-data", topic, "bench-console", http_port)
    env.update({"DTI_CONSOLE_PORT": str(console_port), "DTI_CONSOLE_TOKENS": f"bench={TOKEN}"})
    grpc_port = int(env["DTI_GRPC_PORT"])
    seconds = probes * 1.5 + 20
    with children(work) as start:
        core, *folds = start_core(start, "console-core", env)
        ingest = start("console-ingest", ["dti_pulse.cli", "serve", "ingest"], env)
        wait_for_port("127.0.0.1", grpc_port, timeout_s=60, process=core)
        wait_for_port("127.0.0.1", http_port, timeout_s=60, process=ingest)
        console = start("console", ["dti_pulse.cli", "serve", "console"], env)
        wait_for_port("127.0.0.1", console_port, timeout_s=60, process=console)
        screens = subprocess.Popen([sys.executable, "-m", "bench.console_watch", f"http://127.0.0.1:{console_port}",
                                    TOKEN, str(clients), str(seconds)], stdout=subprocess.PIPE, cwd=ROOT)
        time.sleep(8)  # the screens connect and get their first push; the consumer group settles
        stub = ranking_pb2_grpc.RankingServiceStub(ranking_channel(f"127.0.0.1:{grpc_port}", GRPC_TOKEN))

        def total() -> int:
            return sum(stub.GetActivity(ranking_pb2.GetActivityRequest()).totals.values())

        posted, direct = [], []
        with httpx_client(http_port) as http:
            for index in range(probes):
                before = total()
                response = http.post("/v1/events", json={"events": [_probe_event(index, "012.00.00.H56")]})
                accepted_at = time.time()
                assert response.status_code == 200, response.text
                while total() < before + 1:
                    if time.time() - accepted_at > 30:
                        raise TimeoutError("a probe did not reach the activity in 30 s")
                    time.sleep(0.005)
                direct.append(time.time() - accepted_at)
                posted.append((before + 1, accepted_at))
                time.sleep(1.0)
        watched = json.loads(screens.communicate(timeout=seconds + 30)[0])
        rss = _peak_rss_mb(console.pid)
    latencies, missed = [], 0
    for seen in watched["seen"]:
        firsts = sorted((int(k), v) for k, v in seen.items())
        for expected, accepted_at in posted:
            at = next((t for value, t in firsts if value >= expected), None)
            if at is None:
                missed += 1
            else:
                latencies.append(max(0.0, at - accepted_at))
    return {"clients": clients, "connected": watched["connected"], "probes": probes, "missed": missed,
            "console_p50_ms": 1000 * percentile(latencies, 0.5), "console_p99_ms": 1000 * percentile(latencies, 0.99),
            "direct_p50_ms": 1000 * percentile(direct, 0.5), "direct_p99_ms": 1000 * percentile(direct, 0.99),
            "console_peak_rss_mb": rss}


@contextlib.contextmanager
def httpx_client(http_port: int):
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=30) as client:
        yield client


def _peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """A process's children (uvicorn workers)."""
    try:
        return [int(child) for child in
                subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    except OSError:
        return []


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children. On a machine shared with noisy
    neighbours, CPU per event moves far less than events per second does."""
    return _cpu_s(pid) + sum(_cpu_s(child) for child in _children(pid))


def _tree_peak_rss_mb(pid: int) -> float:
    """Peak RSS of a process plus its children, each at its own peak."""
    return _peak_rss_mb(pid) + sum(_peak_rss_mb(child) for child in _children(pid))


def bench_replay(broker: KafkaBroker, work: Path, total_events: int, year: int = 2022) -> dict:
    """A year of one province (Thanh Hóa 2022 volumes, ~4.4 M events) through the whole
    pipeline: HTTP ingest -> Kafka -> aggregator -> chDB -> gRPC ranking."""

    from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc

    simulator = BusSimulator(load_registry(DEFAULT_AGENCIES), seed=2022)
    bodies = work / "replay.jsonl"
    per_body, generated, dossier_ids = 1000, 0, set()
    start_of_year = datetime(year, 1, 1, tzinfo=LOCAL_TZ)
    per_day = total_events / 365
    with open(bodies, "wb") as handle:
        for day in range(365):
            moment = start_of_year + timedelta(days=day, hours=16)
            events = simulator.batch(int(per_day * (day + 1)) - generated, moment)
            generated += len(events)
            # A late dossier is received days before the moment it is generated at: those of
            # early January belong to the year before, and the ranking of this year leaves them out.
            dossier_ids.update(e["dossier_id"] for e in events
                               if e["type"] == "dossier.received" and e["received_at"].startswith(str(year)))
            write_bodies(handle, events, per_body)
    dossiers = len(dossier_ids)
    topic = "bench.replay"
    http_port, grpc_port = free_port(), free_port()
    env = child_env(broker.bootstrap, work / "replay-data", topic, "bench-replay", http_port)
    env["DTI_GRPC_PORT"] = str(grpc_port)
    with children(work) as start:
        core, *folds = start_core(start, "replay-core", env)
        ingest = start("replay-ingest", ["dti_pulse.cli", "serve", "ingest"], env)
        wait_for_port("127.0.0.1", grpc_port, timeout_s=60, process=core)
        wait_for_port("127.0.0.1", http_port, timeout_s=60, process=ingest)
        stub = ranking_pb2_grpc.RankingServiceStub(ranking_channel(f"127.0.0.1:{grpc_port}", GRPC_TOKEN))

        def dossiers_scored() -> int:
            total = 0
            for cohort in ("department", "district"):
                ranking = stub.ListRanking(ranking_pb2.ListRankingRequest(cohort=cohort, period=str(year)))
                total += sum({i.code: i for i in e.score.indicators}["dossier_on_time_rate"].denominator
                             for e in ranking.entries)
            return total

        started = time.perf_counter()
        load = subprocess.run([sys.executable, "-m", "bench.load", f"http://127.0.0.1:{http_port}", TOKEN, str(bodies), "8"],
                              capture_output=True, check=True, cwd=ROOT)
        ingested_at = time.perf_counter()
        accepted = json.loads(load.stdout)["accepted"]
        deadline = time.monotonic() + 900
        while dossiers_scored() < dossiers:
            if time.monotonic() > deadline or core.poll() is not None:
                raise RuntimeError(f"replay did not finish: {dossiers_scored()} of {dossiers} dossiers scored")
            time.sleep(1)
        scored_at = time.perf_counter()
        rss = {"ingest": _tree_peak_rss_mb(ingest.pid),
               "aggregator+ranking" if not folds else "ranking+store": _peak_rss_mb(core.pid),
               **{f"fold {index}": _peak_rss_mb(fold.pid) for index, fold in enumerate(folds)},
               "kafka": _peak_rss_mb(broker.process.pid)}
    return {"events": generated, "accepted": accepted, "dossiers": dossiers, "ingest_seconds": ingested_at - started,
            "total_seconds": scored_at - started, "peak_rss_mb": rss}


def bench_national(work: Path, provinces: int, requests: int = 200, baseline_requests: int = 50) -> dict:
    """ListRanking for a whole year over national-scale state tables, uncached: from the day
    snapshots (the default), and from the entity states alone (DTI_DAY_SNAPSHOTS=false) as the
    baseline, one server after the other on the same data."""

    from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc

    path = (work / "national").resolve()
    loaded = json.loads(subprocess.run([sys.executable, "-m", "bench.national", str(path), "--provinces", str(provinces)],
                                       capture_output=True, check=True, cwd=ROOT).stdout)

    def measure(snapshots: bool, calls_each: int) -> tuple[dict, float, int]:
        grpc_port = free_port()
        env = {**os.environ, "DTI_CLICKHOUSE_DSN": f"chdb://{path}", "DTI_GRPC_PORT": str(grpc_port),
               "DTI_GRPC_TOKENS": f"bench={GRPC_TOKEN}", "DTI_RANKING_CACHE": "false",
               "DTI_DAY_SNAPSHOTS": str(snapshots).lower(), "PYTHONUNBUFFERED": "1"}
        timings: dict[str, list[float]] = {}
        with children(work) as start:
            server = start(f"national-ranking-{'snapshots' if snapshots else 'states'}",
                           ["dti_pulse.cli", "serve", "ranking"], env)
            wait_for_port("127.0.0.1", grpc_port, timeout_s=120, process=server)
            stub = ranking_pb2_grpc.RankingServiceStub(ranking_channel(f"127.0.0.1:{grpc_port}", GRPC_TOKEN))
            calls = {
                "ListRanking department 2022": lambda: stub.ListRanking(
                    ranking_pb2.ListRankingRequest(cohort="department", period="2022")),
                "ListRanking district 2022": lambda: stub.ListRanking(
                    ranking_pb2.ListRankingRequest(cohort="district", period="2022")),
                "GetAgencyScore 2022": lambda: stub.GetAgencyScore(
                    ranking_pb2.GetAgencyScoreRequest(agency_code="000.00.05.H56", period="2022")),
            }
            check = calls["ListRanking department 2022"]()
            scored = sum({i.code: i for i in e.score.indicators}["dossier_on_time_rate"].denominator
                         for e in check.entries)
            with collector_paused(freeze_existing=True):  # the bench's own pauses out of its timings
                for name, call in calls.items():
                    timings[name] = []
                    for _ in range(calls_each):
                        begun = time.perf_counter()
                        call()
                        timings[name].append(time.perf_counter() - begun)
            rss = _peak_rss_mb(server.pid)
        latency = {name: {"p50": 1000 * percentile(v, 0.5), "p99": 1000 * percentile(v, 0.99)}
                   for name, v in timings.items()}
        return latency, rss, scored

    latency, rss, scored = measure(True, requests)
    baseline, baseline_rss, baseline_scored = measure(False, baseline_requests)
    disk = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True).stdout.split()[0]
    return {"provinces": provinces, "calls": requests, "baseline_calls": baseline_requests, "rows": loaded["rows"],
            "load_seconds": loaded["seconds"], "snapshot_seconds": loaded["snapshot_seconds"],
            "snapshot_rows": loaded["snapshot_rows"], "settle_seconds": loaded["settle_seconds"],
            "active_parts": loaded["active_parts"], "loader_peak_rss_mb": loaded["peak_rss_mb"],
            "ranking_peak_rss_mb": rss, "baseline_ranking_peak_rss_mb": baseline_rss, "disk_mb": int(disk),
            "thanh_hoa_department_dossiers_2022": scored, "same_answer_as_baseline": scored == baseline_scored,
            "latency_ms": latency, "baseline_latency_ms": baseline}


def bench_history(work: Path, provinces: int) -> dict:
    """The recount of the current day that follows each written batch, on state tables that
    hold `provinces` provinces' year of history, beside the same day with no history
    (bench/history.py, each in a process of its own: chDB lets a process own one path)."""
    def run(with_provinces: int) -> dict:
        path = (work / f"history-{with_provinces}").resolve()
        return json.loads(subprocess.run([sys.executable, "-m", "bench.history", str(path), "--provinces",
                                          str(with_provinces)], capture_output=True, check=True, cwd=ROOT).stdout)

    return {"baseline": run(0), "history": run(provinces)}


def _keep_logs(work: Path, into: Path) -> None:
    """The run's logs (each child's, the broker's) into `into`, replacing the last run's."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for log in work.glob("*.log"):
        shutil.copy2(log, into / log.name)


def main() -> int:
    global AGGREGATOR_PROCESSES
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000, help="events in the ingest scenario")
    # A batch takes what came in one window, so 300,000 events made only ~3 batches: too few
    # for a steady figure (bench/README.md, 2026-11-29).
    parser.add_argument("--aggregate-events", type=int, default=1_000_000, help="events in the aggregate scenario")
    parser.add_argument("--batch", type=int, default=1000, help="events per HTTP request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=["ingest", "aggregate", "live", "console", "replay", "national", "history",
                                           "backfill"],
                        help="run one scenario")
    parser.add_argument("--provinces", type=int, default=34, help="provinces in the national scenario")
    parser.add_argument("--history-provinces", type=int, default=1, help="provinces of history in the history scenario")
    parser.add_argument("--replay-events", type=int, default=4_400_000, help="events in the province replay")
    parser.add_argument("--backfill-events", type=int, default=300_000, help="events in the backfill scenario")
    parser.add_argument("--probes", type=int, default=100, help="freshness probes")
    parser.add_argument("--live-rate", type=int, default=5000,
                        help="background events/s during the freshness probes (the target is set at 5,000)")
    parser.add_argument("--screens", type=int, default=50, help="console streams in the console scenario")
    parser.add_argument("--aggregator-processes", type=int, default=AGGREGATOR_PROCESSES,
                        help="fold processes apart from the one that owns chDB (0: it folds; DTI_AGGREGATOR_PROCESSES)")
    parser.add_argument("--aggregate-apart", type=int, default=2,
                        help="the aggregate scenario also runs this many fold processes apart (0: not)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (children's logs, data)")
    args = parser.parse_args()
    AGGREGATOR_PROCESSES = args.aggregator_processes

    events = simulated_events(args.events)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "events": len(events), "cores": os.cpu_count(),
               "aggregator_processes": AGGREGATOR_PROCESSES}
    errors: dict[str, str] = {}
    try:
        results["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                           cwd=ROOT).stdout.strip()
    except OSError:
        results["commit"] = ""
    with contextlib.ExitStack() as scope:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            work = args.keep.resolve()
        else:
            work = Path(scope.enter_context(tempfile.TemporaryDirectory()))
            # The data goes (the national scenario's is ~3 GB); the logs stay, to look into a
            # row that missed without running it again.
            scope.callback(_keep_logs, work, ROOT / "bench" / "results" / "logs")
        broker = KafkaBroker(work / "kafka", log_path=work / "kafka.log").start()
        rows = []

        def ingest_scenario():
            baseline = bench_ingest_baseline(broker.bootstrap, events[: min(len(events), 100_000)])
            for workers in (1, 2):
                ingest = bench_ingest(broker.bootstrap, events, work, args.batch, args.concurrency, workers)
                cores = min(workers, os.cpu_count())
                results[f"ingest_http_{workers}_workers"] = {k: ingest[k] for k in ("p50_ms", "p99_ms", "statuses",
                                                                                     "cpu_us_per_event")}
                rows.append((f"ingest, HTTP, {workers} worker{'s' if workers > 1 else ''}", ingest["events_per_s"],
                             baseline, "kafka-python, one message per event", 100_000, 3.5, ingest["cpu_us_per_event"],
                             f"{cores * 1e6 / ingest['cpu_us_per_event']:,.0f} events/s "
                             f"with {cores} whole core(s) at this CPU an event (the load "
                             "generator and the broker share the machine)"))

        def aggregate_scenario():
            aggregate_events = (events if args.aggregate_events == len(events)
                                else simulated_events(args.aggregate_events))
            results["aggregate_events"] = len(aggregate_events)
            fold_us = fold_alone_us_per_event()
            results["fold_alone_us_per_event"] = fold_us
            for processes in dict.fromkeys([AGGREGATOR_PROCESSES, args.aggregate_apart]):
                aggregate = bench_aggregator(broker.bootstrap, aggregate_events, work, args.batch, processes)
                results[f"aggregate_{processes}_fold_processes"] = aggregate
                folding = min(max(1, processes), os.cpu_count())
                layout = (f"{processes} fold processes apart, writing through the chDB owner" if processes
                          else "folding in the process that owns chDB")
                rows.append((f"aggregator (Kafka -> state -> chDB), {layout}", aggregate["events_per_s"],
                             aggregate["baseline_events_per_s"], "aiokafka consume + decode", 80_000, None,
                             aggregate["cpu_us_per_event"],
                             f"one core folds {1e6 / fold_us:,.0f} events/s alone ({fold_us:.1f} us CPU an "
                             f"event, bench.fold, same run); {folding} core(s) folding: "
                             f"{folding * 1e6 / fold_us:,.0f} events/s, with chDB's writes and the broker on "
                             "the same cores; CPU an event by process (the chDB owner first): "
                             + " / ".join(f"{us:.1f}" for us in aggregate["cpu_us_per_event_by_process"])
                             + " us"))

        def backfill_scenario():
            """`dti-pulse load` of a sample year against ingest over HTTP (1 worker), same events, same run."""
            from dti_pulse.simulator import sample_year

            sample = work / "sample-year.jsonl"
            with open(sample, "wb") as out:
                sample_year(2025, out, load_registry(DEFAULT_AGENCIES), scale=args.backfill_events / 9_000_000)
            events_of_year = [json.loads(line) for line in sample.read_bytes().splitlines()]
            http = bench_ingest(broker.bootstrap, events_of_year, work, args.batch, args.concurrency, 1)
            env = child_env(broker.bootstrap, work / "backfill-data", "bench.backfill", "unused", free_port())
            started = time.perf_counter()
            loaded = subprocess.run([sys.executable, "-m", "dti_pulse.cli", "load", str(sample), "--source", "bench"],
                                    env=env, check=True, capture_output=True, text=True, cwd=ROOT)
            rate = len(events_of_year) / (time.perf_counter() - started)
            results["backfill"] = {"events": len(events_of_year), "events_per_s": rate,
                                   "reported": loaded.stdout.strip().splitlines()[-1],
                                   "http_1_worker_events_per_s": http["events_per_s"]}
            print(f"backfill: {results['backfill']}", flush=True)
            rows.append(("dti-pulse load (a sample year, JSONL -> validation -> Kafka, process start included)", rate,
                         http["events_per_s"], "ingest over HTTP, 1 worker, the same events", round(http["events_per_s"]),
                         None, 0.0, "one process: validation (msgspec) and aiokafka share a core"))

        # A scenario that fails is reported with the others' figures, not instead of them.
        scenarios = {
            "ingest": ingest_scenario,
            "aggregate": aggregate_scenario,
            "live": lambda: results.__setitem__("live", bench_live(broker.bootstrap, work, background_rate=args.live_rate,
                                                                   probes=args.probes)),
            "console": lambda: results.__setitem__("console", bench_console(broker.bootstrap, work, args.screens,
                                                                            min(args.probes, 20))),
            "replay": lambda: results.__setitem__("replay", bench_replay(broker, work, args.replay_events)),
            "history": lambda: results.__setitem__("history", bench_history(work, args.history_provinces)),
            "backfill": backfill_scenario,
            "national": lambda: results.__setitem__("national", bench_national(work, args.provinces)),
        }
        try:
            for name, run in scenarios.items():
                if args.only not in (None, name):
                    continue
                try:
                    run()
                except Exception as exc:
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    print(f"scenario {name} failed: {errors[name]}", file=sys.stderr, flush=True)
        finally:
            broker.stop()
    # issue 5's targets: an absolute rate and, for ingest, a multiple of the naive baseline
    table = [{"scenario": name, "figure": f"{round(value):,} events/s ({cpu:.1f} us CPU an event)", "baseline": f"{round(base):,} events/s ({what})",
              "ratio": round(value / base, 2),
              "target": f">= {target:,} events/s" + (f" and >= {min_ratio} x baseline" if min_ratio else ""),
              "pass": value >= target and (min_ratio is None or value / base >= min_ratio),
              "ceiling": ceiling}
             for name, value, base, what, target, min_ratio, cpu, ceiling in rows]
    if "live" in results:
        live = results["live"]
        for via, figures in live["freshness"].items():
            how = "WatchAgencyScore push" if via == "watch" else "GetAgencyScore polled every 5 ms"
            table.append({"scenario": f"freshness (ingest 2xx -> {how}, {live['background_events_per_s']:,} events/s background)",
                          "figure": f"p50 {figures['p50_ms']:.0f} ms, p90 {figures['p90_ms']:.0f} ms, "
                                    f"p99 {figures['p99_ms']:.0f} ms ({figures['over_500_ms']} of "
                                    f"{len(figures['probes_ms'])} over 500 ms)",
                          "baseline": f"Kafka produce -> consume p50 {live['kafka_p50_ms']:.0f} ms, p99 {live['kafka_p99_ms']:.0f} ms",
                          "ratio": round(figures["p99_ms"] / live["kafka_p99_ms"], 2),
                          "target": "p99 <= 500 ms", "pass": figures["p99_ms"] <= 500})
        lookups = live["lookups"]
        health = lookups["health"]["requests_per_s"]
        health_p99 = lookups["health_at_1000"]["p99_ms"]
        for kind, label in (("score", "GetAgencyScore"), ("ranking", "ListRanking")):
            figure = lookups[kind]["requests_per_s"]
            at_1000 = lookups[f"{kind}_at_1000"]
            table.append({"scenario": f"score lookups: {label}",
                          "figure": f"{figure:,.0f} req/s; at 1,000 req/s p99 {at_1000['p99_ms']:.1f} ms",
                          "baseline": f"{health:,.0f} req/s, at 1,000 req/s p99 {health_p99:.1f} ms "
                                      "(health check, same server)",
                          "ratio": round(figure / health, 2), "target": ">= 0.7 x baseline; p99 <= 10 ms at 1,000 req/s",
                          "pass": figure >= 0.7 * health and at_1000["p99_ms"] <= 10
                          and at_1000["requests_per_s"] >= 950})
        across = lookups.get("score_across_turn")
        if across:
            table.append({"scenario": "score lookups across the judgement minute's turn (GetAgencyScore, 1,000 req/s "
                                      "from 15 s before to 5 s after)",
                          "figure": f"p50 {across['p50_ms']:.1f} ms, p99 {across['p99_ms']:.1f} ms, "
                                    f"max {across['max_ms']:.0f} ms",
                          "baseline": f"health check at 1,000 req/s p99 {health_p99:.1f} ms",
                          "ratio": round(across["p99_ms"] / health_p99, 2), "target": "p99 <= 10 ms at 1,000 req/s",
                          "pass": across["p99_ms"] <= 10 and across["requests_per_s"] >= 950})
    if "console" in results:
        console = results["console"]
        table.append({"scenario": f"console push ({console['connected']} of {console['clients']} screens connected, "
                                  f"{console['probes']} probes, {console['missed']} missed)",
                      "figure": f"ingest 2xx -> every screen's live activity p50 {console['console_p50_ms']:.0f} ms, "
                                f"p99 {console['console_p99_ms']:.0f} ms; console RSS {console['console_peak_rss_mb']:.0f} MB",
                      "baseline": f"the same event read from gRPC GetActivity p50 {console['direct_p50_ms']:.0f} ms, "
                                  f"p99 {console['direct_p99_ms']:.0f} ms",
                      "ratio": round(console["console_p99_ms"] / max(console["direct_p99_ms"], 1), 2),
                      "target": "every screen within seconds (no target set); none missed",
                      "pass": console["missed"] == 0 and console["connected"] == console["clients"]})
    if "replay" in results:
        replay = results["replay"]
        rss = ", ".join(f"{name} {mb:,.0f} MB" for name, mb in replay["peak_rss_mb"].items())
        table.append({"scenario": f"province replay ({replay['events']:,} events of {replay['dossiers']:,} dossiers "
                                  "and their documents, HTTP to score)",
                      "figure": f"{replay['total_seconds']:.0f} s (ingest done at {replay['ingest_seconds']:.0f} s); "
                                f"peak RSS {rss}",
                      "baseline": "-", "ratio": "-", "target": "<= 300 s",
                      "pass": replay["total_seconds"] <= 300})
    if "national" in results:
        national = results["national"]
        worst = max(v["p99"] for v in national["latency_ms"].values())
        baseline_worst = max(v["p99"] for v in national["baseline_latency_ms"].values())
        table.append({"scenario": f"national year ({national['provinces']} provinces, {national['rows']:,} state rows, "
                                  f"{national['snapshot_rows']:,} day snapshots built in "
                                  f"{national['snapshot_seconds']:.0f} s, {national['disk_mb']:,} MB on disk, "
                                  f"{national['active_parts']} parts after {national['settle_seconds']:.0f} s of "
                                  f"merging, uncached, {national['calls']} calls each)",
                      "figure": "; ".join(f"{name} p50 {v['p50']:.0f} ms p99 {v['p99']:.0f} ms"
                                          for name, v in national["latency_ms"].items())
                                + f"; ranking RSS {national['ranking_peak_rss_mb']:,.0f} MB",
                      "baseline": "from the entity states (DTI_DAY_SNAPSHOTS=false, "
                                  f"{national['baseline_calls']} calls each): "
                                  + "; ".join(f"{name} p50 {v['p50']:.0f} ms p99 {v['p99']:.0f} ms"
                                              for name, v in national["baseline_latency_ms"].items()),
                      "ratio": round(worst / baseline_worst, 2), "target": "p99 <= 300 ms",
                      "pass": worst <= 300 and national["same_answer_as_baseline"]})
    if "history" in results:
        history, baseline = results["history"], results["history"]["baseline"]
        for name, figures in history["history"]["recount"].items():
            base = baseline["recount"][name]
            table.append({"scenario": f"recount of the open day under {history['history']['history_rows']:,} state rows "
                                      f"of history ({history['history']['provinces']} province-year"
                                      f"{'s' if history['history']['provinces'] != 1 else ''}): {name}",
                          "figure": f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms",
                          "baseline": f"the same day, no history: p50 {base['p50_ms']:.1f} ms, p99 {base['p99_ms']:.1f} ms",
                          "ratio": round(figures["p50_ms"] / base["p50_ms"], 2),
                          # Ours, not issue 5's: what follows each batch must not grow with the years kept.
                          "target": "p50 <= 2 x baseline",
                          "pass": figures["p50_ms"] <= 2 * base["p50_ms"]})
    results["scenarios"] = table
    for row in table:
        print(f"{row['scenario']}\n    {row['figure']}  |  baseline {row['baseline']}  |  ratio {row['ratio']}  |  "
              f"target {row['target']}  |  {'pass' if row['pass'] else 'MISS'}")
        if row.get("ceiling"):
            print(f"    ceiling on this machine: {row['ceiling']}")
    for name, error in errors.items():
        print(f"{name}\n    FAILED: {error}")
    results["errors"] = errors
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""Fixtures that start the real engines (Apache Kafka, chDB) and our own processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import httpx
import pytest

from dti_pulse.broker import KafkaBroker, die_with_parent, free_port, wait_for_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One Apache Kafka for the tests; tests isolate themselves by topic names."""
    ARTIFACTS.mkdir(exist_ok=True)
    instance = KafkaBroker(tmp_path_factory.mktemp("kafka"), log_path=ARTIFACTS / "kafka-session.log").start()
    yield instance
    instance.stop()


@pytest.fixture
def private_broker(tmp_path):
    """A broker that the test may stop, kill and start again (its log stays on disk)."""
    ARTIFACTS.mkdir(exist_ok=True)
    instance = KafkaBroker(tmp_path / "kafka", log_path=ARTIFACTS / "kafka-private.log").start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory):
    """chDB lets a process own one data path, so the test process has exactly one."""
    from dti_pulse.clickhouse import close_client

    dsn = f"chdb://{tmp_path_factory.mktemp('chdb') / 'data'}"
    yield dsn
    close_client(dsn)


@pytest.fixture(scope="session")
def chdb_client(chdb_dsn):
    from dti_pulse.clickhouse import get_client
    from dti_pulse.schema import migrate

    client = get_client(chdb_dsn)
    migrate(client)
    return client


@pytest.fixture
def empty_chdb_database(chdb_dsn, chdb_client):
    """A client of a database of its own on the session's chDB, with no table (for migrations)."""
    import clickhouse_connect

    name = f"empty_{uuid.uuid4().hex[:8]}"
    chdb_client.command(f"CREATE DATABASE {name}")
    client = clickhouse_connect.get_client(dsn=chdb_dsn, database=name)
    yield client
    client.close()
    chdb_client.command(f"DROP DATABASE {name}")


@pytest.fixture
def clean_chdb(chdb_client):
    for table in ("dossier_state", "document_state", "petition_state", "publication_state", "procedure_state",
                  "activity_minute", "day_measures", "alert_state", "alert_index_samples"):
        chdb_client.command(f"TRUNCATE TABLE {table}")
    return chdb_client


@pytest.fixture
def topic_names():
    suffix = uuid.uuid4().hex[:8]
    return f"test.events.{suffix}", f"test.dlq.{suffix}"


class ServiceProcess:
    """A `dti-pulse ...` child process with its output in test-artifacts/."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]):
        self.name, self.args, self.env = name, args, env
        self.process: subprocess.Popen | None = None
        self.log_path = ARTIFACTS / f"{name}.log"

    def start(self) -> "ServiceProcess":
        ARTIFACTS.mkdir(exist_ok=True)
        log = open(self.log_path, "ab")
        self._log_start = log.tell()
        log.write(f"\n==== start {' '.join(self.args)} at {time.strftime('%X')}\n".encode())
        log.flush()
        self.process = subprocess.Popen([sys.executable, "-m", "dti_pulse.cli", *self.args],
                                        env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=die_with_parent)
        log.close()
        return self

    def output(self) -> str:
        """What this run printed (the log file keeps earlier runs too)."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            return log.read().decode("utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


@pytest.fixture
def services():
    started: list[ServiceProcess] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> ServiceProcess:
        service = ServiceProcess(name, args, env).start()
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        service.stop()


def pytest_sessionstart(session):
    (ARTIFACTS / "faults.md").unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter):
    """The fault suite's table, when this run made one (tests/e2e/test_faults.py)."""
    faults = ARTIFACTS / "faults.md"
    if faults.exists():
        terminalreporter.section("fault suite")
        terminalreporter.write_line(faults.read_text())


CONSOLE_PASSWORD = "đúng-mật-khẩu"  # non-ASCII on purpose
GRPC_TOKEN = "test-grpc-token"
CHROMIUM = Path(os.environ.get("DTI_CHROMIUM", "/usr/bin/chromium"))
# Flags that keep Chromium off the (closed) network and out of the sandbox it cannot make as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def ranking_server(clean_chdb):
    """The ranking gRPC service in this process over chDB, holding the October scenario
    (arrived just now, so that it shows in the live activity)."""
    from dti_pulse.config import DEFAULT_AGENCIES, DEFAULT_RULES_DIR
    from dti_pulse.registry import load_registry
    from services.ranking.grpc_server import RankingServer
    from services.ranking.pipeline import PipelineMonitor
    from services.ranking.rules import RulesCatalog
    from services.ranking.cache import CachedMeasures
    from services.ranking.service import RankingService
    from services.ranking.store import ClickHouseMeasures
    from tests import scenario

    fold(clean_chdb, scenario.EVENTS, ingested_at_ms=now_ms())
    service = RankingService(load_registry(DEFAULT_AGENCIES), RulesCatalog(DEFAULT_RULES_DIR, check_every_s=0),
                             scenario.RULES_VERSION, CachedMeasures(ClickHouseMeasures(clean_chdb)))
    # Its pipeline is the store alone (no Kafka here); a test may swap the probe to fail it.
    monitor = PipelineMonitor(lambda: clean_chdb.query("SELECT 1"))
    server = RankingServer(service, "127.0.0.1", free_port(), {GRPC_TOKEN: "test"}, watch_interval_s=0.2,
                           monitor=monitor,
                           monitor_interval_s=0.2)
    server.start_in_thread()
    yield server
    server.stop()


@pytest.fixture
def console(ranking_server, services):
    """`dti-pulse serve console` in front of ranking_server; an HTTP client of it (not logged in)."""
    from services.console.auth import hash_password

    port = free_port()
    env = {"DTI_RANKING_ADDRESS": f"127.0.0.1:{ranking_server.port}", "DTI_RANKING_TOKEN": GRPC_TOKEN,
           "DTI_CONSOLE_PORT": str(port),
           "DTI_CONSOLE_VIEWERS": f"operator={hash_password(CONSOLE_PASSWORD, iterations=1000)}",
           "DTI_CONSOLE_TOKENS": "wall=screen-token", "DTI_CONSOLE_HEARTBEAT_S": "0.5"}
    process = services("console", ["serve", "console"], env)
    wait_for_port("127.0.0.1", port, timeout_s=30, process=process.process)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        client.service = process  # its output holds the audit records
        yield client


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright (which downloads no browser)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def service_env(tmp_path: Path, bootstrap: str, events_topic: str, dlq_topic: str, **extra) -> dict[str, str]:
    return {
        "DTI_DATA_DIR": str(tmp_path / "data"),
        "DTI_KAFKA_BOOTSTRAP": bootstrap,
        "DTI_EVENTS_TOPIC": events_topic,
        "DTI_DLQ_TOPIC": dlq_topic,
        "DTI_TOPIC_PARTITIONS": "4",
        "DTI_AGGREGATOR_GROUP": f"agg-{events_topic}",
        "DTI_KAFKA_SESSION_TIMEOUT_S": "6",
        "DTI_HTTP_PORT": str(free_port()),
        "DTI_GRPC_PORT": str(free_port()),
        "DTI_CONSOLE_PORT": str(free_port()),
        "DTI_METRICS_PORT": "0",  # processes of one env run side by side: a test that scrapes sets ports
        "DTI_INGEST_TOKENS": "lgsp=test-token",
        "DTI_GRPC_TOKENS": f"test={GRPC_TOKEN}",
        "DTI_RANKING_TOKEN": GRPC_TOKEN,
        **extra,
    }


def ranking_stub(port: int):
    from dti.ranking.v1 import ranking_pb2_grpc

    from dti_pulse.grpc_channel import ranking_channel

    return ranking_pb2_grpc.RankingServiceStub(ranking_channel(f"127.0.0.1:{port}", GRPC_TOKEN))


def poll(check, timeout_s: float = 60.0, interval_s: float = 0.25, what: str = "condition"):
    """Calls check() until it returns a truthy value; fails with the last value seen."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (grpc.RpcError, httpx.HTTPError, OSError) as exc:  # not up yet
            last = exc
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


def consume_all(bootstrap: str, topic: str, expected_events: int, timeout_s: float = 20.0,
                message_sizes: list | None = None):
    """(partition, Event) pairs read from the start of a topic, until expected_events or
    timeout_s of silence; each message's size appended to message_sizes if given."""
    from kafka import KafkaConsumer

    from dti.events.v1.events_pb2 import EventBatch

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=int(timeout_s * 1000))
    found = []
    try:
        for record in consumer:
            found.extend((record.partition, event) for event in EventBatch.FromString(record.value).events)
            if message_sizes is not None:
                message_sizes.append(len(record.value))
            if len(found) >= expected_events:
                break
    finally:
        consumer.close()
    return found


def bus_envelopes(raw_events: list[dict], per_envelope: int = 1000, ingested_at_ms: int = 0) -> list[bytes]:
    """Bus JSON events, validated as ingest does, in EventBatch envelopes."""
    from dti.events.v1.events_pb2 import EventBatch
    from dti_pulse.config import DEFAULT_AGENCIES
    from dti_pulse.registry import load_registry
    from services.ingest.validation import to_event

    registry = load_registry(DEFAULT_AGENCIES)
    events = [to_event(raw, registry, "lgsp", ingested_at_ms) for raw in raw_events]
    return [EventBatch(events=events[i:i + per_envelope]).SerializeToString()
            for i in range(0, len(events), per_envelope)]


def fold(client, raw_events: list[dict], ingested_at_ms: int = 0):
    """Folds bus events into a real ClickHouse through the aggregator; a dead letter fails."""
    import asyncio

    from services.aggregator.processor import Aggregator
    from services.aggregator.store import ClickHouseStateStore

    async def no_dead_letters(payload, reason):
        raise AssertionError(f"dead letter: {reason}")

    return asyncio.run(Aggregator(ClickHouseStateStore(client), no_dead_letters).process(
        bus_envelopes(raw_events, ingested_at_ms=ingested_at_ms)))


__all__ = ["CONSOLE_PASSWORD", "GRPC_TOKEN", "now_ms", "bus_envelopes", "fold", "consume_all", "ServiceProcess", "free_port", "poll", "ranking_stub", "service_env", "wait_for_port"]

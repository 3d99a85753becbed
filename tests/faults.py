"""The fault suite: `dti-pulse up` on its own Apache Kafka and chDB, hurt on purpose while the
bus sends, and what it counted afterwards.

`make faults` (python -m tests.faults) prints a table: scenario, events sent, accepted,
counted, lost, counted twice, time to recover. tests/e2e/test_faults.py runs the same
scenarios under `make test` and holds them to the target: 0 lost, 0 counted twice, each
recovered within 30 s with no one's help.

Each scenario sends its own dossiers to an agency of its own (received, accepted, resolved
in September 2026), so "counted" is that agency's dossier count in ranking's answer. The
sender behaves as the bus does: a batch answered 503 (or not answered) is sent again.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import orjson

from dti.events.v1.events_pb2 import EventBatch
from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from dti_pulse.broker import die_with_parent, free_port
from dti_pulse.grpc_channel import ranking_channel
from services.console.auth import hash_password

REPO = Path(__file__).resolve().parent.parent
TOKEN = "fault-token"
GRPC_TOKEN = "fault-grpc-token"
PORTAL_TOKEN = "fault-portal-token"  # a second source, which may speak for one agency only
PORTAL_AGENCY = "000.00.03.H56"
CONSOLE_PASSWORD = "fault-console-password"
PERIOD = "2026-09"
RECOVERY_TARGET_S = 30.0


@dataclass
class Row:
    scenario: str
    sent: int = 0  # distinct events the sender tried to deliver
    accepted: int = 0  # distinct events answered 200
    counted: int = 0  # events ranking counts, from the scenario's dossiers
    recovery_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return max(0, self.accepted - self.counted)

    @property
    def counted_twice(self) -> int:
        return max(0, self.counted - self.accepted)

    @property
    def passed(self) -> bool:
        return (self.lost == 0 and self.counted_twice == 0 and self.recovery_s is not None
                and self.recovery_s <= RECOVERY_TARGET_S)


def dossier_events(prefix: str, n: int, agency: str) -> list[dict]:
    """Three events of one dossier: received, accepted, resolved on time."""
    dossier = f"{prefix}-{n}"
    base = {"agency_code": agency, "dossier_id": dossier}

    def event_id(step):
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{dossier}/{step}"))

    return [
        {**base, "event_id": event_id("r"), "type": "dossier.received", "occurred_at": "2026-09-10T08:00:00+07:00",
         "procedure_code": "1.000002", "channel": 2, "service_level": "full_online",
         "received_at": "2026-09-10T08:00:00+07:00", "due_at": "2026-09-12T17:00:00+07:00"},
        {**base, "event_id": event_id("a"), "type": "dossier.status", "occurred_at": "2026-09-10T09:00:00+07:00",
         "status": 2},
        {**base, "event_id": event_id("9"), "type": "dossier.status", "occurred_at": "2026-09-11T09:00:00+07:00",
         "status": 9},
    ]


class Stack:
    """`dti-pulse up` as a child of this process, on fixed ports and one data dir."""

    def __init__(self, work: Path):
        self.work = work
        self.data_dir = work / "data"
        self.http_port, self.grpc_port, self.console_port, self.kafka_port, self.metrics_port = (
            free_port() for _ in range(5))
        self.log_path = work / "up.log"
        self.process: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DTI_")}
        return {**env, "DTI_INGEST_TOKENS": f"bus={TOKEN},portal={PORTAL_TOKEN}",
                "DTI_INGEST_SOURCE_AGENCIES": f"bus=*,portal={PORTAL_AGENCY}", "DTI_TOPIC_PARTITIONS": "4",
                "DTI_KAFKA_SESSION_TIMEOUT_S": "6", "DTI_INGEST_DELIVERY_TIMEOUT_MS": "4000",
                "DTI_AGGREGATOR_BATCH": "500", "DTI_CONSOLE_TOKENS": "wall=fault-wall",
                "DTI_CONSOLE_VIEWERS": f"operator={hash_password(CONSOLE_PASSWORD, iterations=1000)}",
                "DTI_GRPC_TOKENS": f"faults={GRPC_TOKEN}", "DTI_METRICS_PORT": str(self.metrics_port),
                "PYTHONUNBUFFERED": "1"}

    def start(self, timeout_s: float = 180) -> "Stack":
        self.work.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dti_pulse.cli", "up", "--no-simulator", "--data-dir", str(self.data_dir),
                 "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                 "--console-port", str(self.console_port), "--kafka-port", str(self.kafka_port)],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout_s
        while "dti-pulse is up" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dti-pulse up did not come up:\n{self.output()[-3000:]}")
            time.sleep(0.5)
        self.channel = ranking_channel(f"127.0.0.1:{self.grpc_port}", GRPC_TOKEN)
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def child(self, marker: str) -> int:
        """The pid of up's child whose command line holds marker."""
        for pid in self.children():
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                return pid
        raise LookupError(f"no child of up runs {marker!r}")

    def children(self) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found if _alive(int(pid))]

    def counted(self, agency: str) -> int:
        """The events ranking counts for an agency's dossiers: three for each resolved one."""
        stub = ranking_pb2_grpc.RankingServiceStub(self.channel)
        score = stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=agency, period=PERIOD), timeout=10)
        return 3 * {i.code: i for i in score.indicators}["dossier_on_time_rate"].denominator

    def stop(self) -> None:
        if self.channel:
            self.channel.close()
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


class Sender:
    """Posts batches as the bus does: again and again until answered 200 (or the deadline)."""

    def __init__(self, stack: Stack, row: Row):
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{stack.http_port}",
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=15)
        self.row = row
        self.accepted_ids: set[str] = set()
        self.sent_ids: set[str] = set()
        self.retries = 0

    def send(self, events: list[dict], deadline_s: float = 120) -> None:
        self.sent_ids.update(e["event_id"] for e in events)
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                answer = self.http.post("/v1/events", json={"events": events})
                if answer.status_code == 200:
                    if answer.json()["rejected"]:
                        raise AssertionError(f"refused: {answer.json()['rejected'][:3]}")
                    self.accepted_ids.update(e["event_id"] for e in events)
                    break
            except httpx.HTTPError:
                pass
            self.retries += 1
            time.sleep(0.5)
        self.row.sent, self.row.accepted = len(self.sent_ids), len(self.accepted_ids)

    def close(self) -> None:
        self.http.close()


def wait_counted(stack: Stack, row: Row, agency: str, since: float, timeout_s: float = 120) -> None:
    """Until ranking counts what was accepted; the time from `since` is the recovery."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            row.counted = stack.counted(agency)
            if row.counted >= row.accepted:
                row.recovery_s = time.monotonic() - since
                time.sleep(1.0)  # and nothing more arrives afterwards (counted twice)
                row.counted = stack.counted(agency)
                return
        except grpc.RpcError:
            pass
        time.sleep(0.25)


def batches(prefix: str, agency: str, dossiers: int, per_batch: int = 100) -> list[list[dict]]:
    events = [e for n in range(dossiers) for e in dossier_events(prefix, n, agency)]
    return [events[i:i + per_batch] for i in range(0, len(events), per_batch)]


def aggregator_killed_five_times(stack: Stack) -> Row:
    """Each kill lands while the aggregator folds: after the supervisor started it again and
    it has counted some of what came since."""
    row, agency = Row("kill -9 of the aggregator, 5 times mid-stream"), "000.00.02.H56"
    parts = batches("AGG", agency, 1800)
    sender = Sender(stack, row)
    rounds = [parts[i::6] for i in range(6)]
    last_kill = time.monotonic()
    for index, part in enumerate(rounds):
        for batch in part:
            sender.send(batch)
        if index == len(rounds) - 1:
            break
        owner = wait_for_child(stack, "serve aggregator,ranking")
        before = row.counted
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # mid-stream: it has begun counting this round
            try:
                row.counted = stack.counted(agency)
            except grpc.RpcError:
                pass
            if row.counted > before:
                break
            time.sleep(0.1)
        os.kill(owner, signal.SIGKILL)
        last_kill = time.monotonic()
    sender.close()
    wait_counted(stack, row, agency, last_kill)
    row.notes.append(f"restarts seen in up's log: {stack.output().count('aggregator+ranking started again')}")
    return row


def wait_for_child(stack: Stack, marker: str, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return stack.child(marker)
        except LookupError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def broker_killed(stack: Stack) -> Row:
    row, agency = Row("kill -9 of the broker mid-stream"), "000.00.13.H56"
    parts = batches("BRK", agency, 600)
    sender = Sender(stack, row)
    for batch in parts[:len(parts) // 2]:
        sender.send(batch)
    os.kill(wait_for_child(stack, "kafka.Kafka"), signal.SIGKILL)
    killed = time.monotonic()
    for batch in parts[len(parts) // 2:]:
        sender.send(batch)
    sender.close()
    wait_counted(stack, row, agency, killed)
    row.notes.append(f"{sender.retries} posts answered 503 or not at all, sent again")
    return row


def store_away(stack: Stack, seconds: float) -> Row:
    """chDB lives in the process that owns it: that process stopped (SIGSTOP) is the store
    away for the folds, and for ranking."""
    row, agency = Row(f"ClickHouse store away for {seconds:g} s"), "000.00.06.H56"
    parts = batches("CHA", agency, 600)
    sender = Sender(stack, row)
    owner = wait_for_child(stack, "serve aggregator,ranking")
    sender.send(parts[0])
    os.kill(owner, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        for batch in parts[1:]:
            sender.send(batch)
        time.sleep(max(0.0, seconds - (time.monotonic() - stopped)))
    finally:
        os.kill(owner, signal.SIGCONT)
    back = time.monotonic()
    sender.close()
    wait_counted(stack, row, agency, back)
    return row


def duplicates_and_shuffled(stack: Stack) -> Row:
    row, agency = Row("30 % duplicates, shuffled order"), "000.00.07.H56"
    events = [e for n in range(1500) for e in dossier_events("DUP", n, agency)]
    rng = random.Random(25)
    noisy = events + rng.sample(events, int(0.3 * len(events)))
    rng.shuffle(noisy)
    sender = Sender(stack, row)
    started = time.monotonic()
    for i in range(0, len(noisy), 200):
        sender.send(noisy[i:i + 200])
    sender.close()
    wait_counted(stack, row, agency, started)
    row.notes.append(f"{len(noisy) - len(events)} duplicates sent")
    return row


def poison(stack: Stack) -> Row:
    """Records no ingest would accept, written straight to the topic ahead of good events."""
    from kafka import KafkaProducer

    from dti.events.v1.events_pb2 import Event

    row, agency = Row("poison records on the topic"), "000.00.15.H56"
    poisoned = [None, b"", b"\xfa\x3e\x03abc", b"\x08\x96\x01 garbage"]
    for changes in ({"occurred_at_ms": -(2 ** 63)}, {"agency_code": "999.99.99.H56"}, {"status": 99},
                    {"dossier_id": "x" * 900_000}):
        event = Event(event_id=str(uuid.uuid4()), occurred_at_ms=1_789_000_000_000, agency_code=agency, source="x")
        event.dossier_status.dossier_id, event.dossier_status.status = "POISON", 9
        for name, value in changes.items():
            setattr(event.dossier_status if name in ("status", "dossier_id") else event, name, value)
        poisoned.append(EventBatch(events=[event]).SerializeToString())
    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{stack.kafka_port}", acks="all", max_request_size=2 ** 21)
    for partition in range(4):
        for value in poisoned:
            producer.send("dti.events.v1", key=b"k" if value is None else None, value=value,
                          partition=partition).get(10)
    producer.close()
    started = time.monotonic()
    sender = Sender(stack, row)
    for batch in batches("PSN", agency, 300):
        sender.send(batch)
    sender.close()
    wait_counted(stack, row, agency, started)
    from dti_pulse.dead_letters import list_dead_letters

    letters = list_dead_letters(f"127.0.0.1:{stack.kafka_port}", "dti.events.dlq")
    row.notes.append(f"{len(poisoned) * 4} poison records, {len(letters)} dead letters")
    if len(letters) < len(poisoned) * 4:
        row.counted = -1  # a poison record vanished: fail the row
    return row


def whole_tree_killed(stack: Stack) -> tuple[Row, Stack]:
    """kill -9 of up and every child right after a 200, then up again on the same data dir."""
    row, agency = Row("kill -9 of the whole tree right after a 200, up again"), "000.00.09.H56"
    sender = Sender(stack, row)
    parts = batches("TREE", agency, 900)
    for batch in parts:
        sender.send(batch)
    pids = [stack.process.pid, *stack.children()]
    for pid in pids:  # right after the last 200: everything dies at once
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed = time.monotonic()
    sender.close()
    stack.process.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.2)
    again = Stack(stack.work)
    again.http_port, again.grpc_port, again.console_port, again.kafka_port = (
        stack.http_port, stack.grpc_port, stack.console_port, stack.kafka_port)
    again.start()
    wait_counted(again, row, agency, killed, timeout_s=180)
    row.notes.append(f"recovery includes `up` starting again ({time.monotonic() - killed:.0f} s to the end)")
    return row, again


def up_killed_leaves_nothing(stack: Stack) -> list[int]:
    """kill -9 of `up` alone: the pids of its children still alive 30 s later."""
    children = stack.children()
    os.kill(stack.process.pid, signal.SIGKILL)
    stack.process.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [pid for pid in children if _alive(pid)]


@dataclass
class Intrusion:
    attempt: str
    tries: int = 0
    let_in: int = 0  # must stay 0

    def tried(self, refused: bool) -> None:
        self.tries += 1
        self.let_in += not refused


def intruders(stack: Stack) -> list[Intrusion]:
    """Who must not get in, tried against the running stack: each attempt made, and how many
    of them were let in."""
    found: list[Intrusion] = []
    ingest = f"http://127.0.0.1:{stack.http_port}/v1/events"

    def post(token: str | None, events: list[dict], headers: dict | None = None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.post(ingest, json={"events": events}, headers={**auth, **(headers or {})}, timeout=15)

    probe = dossier_events("INTRUDER", 0, PORTAL_AGENCY)[:1]
    attempt = Intrusion("ingest without a token, or with a wrong one")
    for token in (None, "fault-toke", TOKEN + "x", TOKEN.upper(), f"{TOKEN[:4]} {TOKEN[4:]}"):
        attempt.tried(post(token, probe).status_code == 401)
    found.append(attempt)

    attempt = Intrusion("a source sending for an agency it does not own")
    for agency in ("000.00.05.H56", "000.00.30.H56", "000.00.03.H5"):
        answer = post(PORTAL_TOKEN, dossier_events(f"FOREIGN-{agency}", 0, agency)[:1])
        attempt.tried(answer.status_code == 200 and answer.json()["accepted"] == 0)
    found.append(attempt)

    attempt = Intrusion("a source pre-empting another's event ids")
    for n in range(3):
        real = dossier_events("PRE-EMPTED", n, PORTAL_AGENCY)[0]
        post(PORTAL_TOKEN, [{**real, "procedure_code": "forged"}])  # the portal's own, the same id first
        answer = post(TOKEN, [real])
        attempt.tried(answer.status_code == 200 and answer.json()["duplicates"] == 0)
    found.append(attempt)

    attempt = Intrusion("a document naming an agency not in the registry")
    document = {"event_id": str(uuid.uuid4()), "type": "document.sent", "occurred_at": "2026-09-10T08:00:00+07:00",
                "agency_code": PORTAL_AGENCY, "document_id": "FORGED-1", "from_agency": PORTAL_AGENCY}
    for parties in ({"to_agencies": ["999.99.99.X99"]}, {"from_agency": "made-up", "to_agencies": [PORTAL_AGENCY]}):
        answer = post(TOKEN, [{**document, **parties}])
        attempt.tried(answer.status_code == 200 and answer.json()["accepted"] == 0)
    found.append(attempt)

    attempt = Intrusion("RankingService without a token, or with a wrong one")
    request = ranking_pb2.GetAgencyScoreRequest(agency_code=PORTAL_AGENCY, period=PERIOD)
    for channel in (grpc.insecure_channel(f"127.0.0.1:{stack.grpc_port}"),
                    ranking_channel(f"127.0.0.1:{stack.grpc_port}", "guess"),
                    ranking_channel(f"127.0.0.1:{stack.grpc_port}", GRPC_TOKEN[:-1])):
        try:
            ranking_pb2_grpc.RankingServiceStub(channel).GetAgencyScore(request, timeout=10)
            attempt.tried(False)
        except grpc.RpcError as exc:
            attempt.tried(exc.code() == grpc.StatusCode.UNAUTHENTICATED)
    found.append(attempt)

    if "console (web)   http" in stack.output():
        found.extend(console_intruders(stack))
    return found


def console_intruders(stack: Stack) -> list[Intrusion]:
    base = f"http://127.0.0.1:{stack.console_port}"
    right = {"username": "operator", "password": CONSOLE_PASSWORD}
    found = []

    attempt = Intrusion("console: a login posted from another site")
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = httpx.post(f"{base}/api/session", content=orjson.dumps(right),
                            headers={**headers, "Content-Type": "text/plain"}, timeout=15)
        attempt.tried(answer.status_code == 403)
    found.append(attempt)

    attempt = Intrusion("console: a session cookie replayed after logout, or forged")
    with httpx.Client(base_url=base, timeout=15) as operator:
        assert operator.post("/api/session", json=right).status_code == 200
        cookie = operator.cookies["dti_console_session"]
        operator.delete("/api/session")
    for value in (cookie, cookie[:-3] + "AAA", "e30.x"):
        with httpx.Client(base_url=base, timeout=15, cookies={"dti_console_session": value}) as replay:
            attempt.tried(replay.get("/api/ranking").status_code == 401)
    found.append(attempt)

    attempt = Intrusion("console: password guessing")
    with httpx.Client(base_url=base, timeout=15) as guesser:
        for n in range(8):
            attempt.tried(guesser.post("/api/session", json={**right, "password": f"guess-{n}"}).status_code in (401, 429))
    # ...which does not keep the operator out from elsewhere (not an intrusion: a check).
    with httpx.Client(base_url=base, timeout=15, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as fresh:
        assert fresh.post("/api/session", json=right).status_code == 200, "the operator was locked out"
    found.append(attempt)
    return found


def run_all(work: Path, store_away_s: float = 30.0) -> tuple[list[Row], list[int], list[Intrusion]]:
    stack = Stack(work).start()
    rows: list[Row] = []
    try:
        intrusions = intruders(stack)
        for scenario in (duplicates_and_shuffled, poison, aggregator_killed_five_times, broker_killed):
            rows.append(scenario(stack))
        rows.append(store_away(stack, store_away_s))
        row, stack = whole_tree_killed(stack)
        rows.append(row)
        orphans = up_killed_leaves_nothing(stack)
    finally:
        stack.stop()
    return rows, orphans, intrusions


def intruders_table(intrusions: list[Intrusion]) -> str:
    lines = ["| intruder | attempts | let in | result |", "|---|---|---|---|"]
    lines += [f"| {i.attempt} | {i.tries} | {i.let_in} | {'pass' if not i.let_in else 'FAIL'} |" for i in intrusions]
    return "\n".join(lines)


def table(rows: list[Row], orphans: list[int]) -> str:
    lines = ["| scenario | sent | accepted | counted | lost | counted twice | recovered in | result |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        recovered = f"{row.recovery_s:.1f} s" if row.recovery_s is not None else "not recovered"
        notes = f" ({'; '.join(row.notes)})" if row.notes else ""
        lines.append(f"| {row.scenario}{notes} | {row.sent:,} | {row.accepted:,} | {row.counted:,} | {row.lost:,} | "
                     f"{row.counted_twice:,} | {recovered} | {'pass' if row.passed else 'FAIL'} |")
    lines.append(f"| kill -9 of `up` alone | | | | | | processes left: {len(orphans)} | "
                 f"{'pass' if not orphans else 'FAIL'} |")
    return "\n".join(lines)


def main() -> int:
    import tempfile

    store_away_s = float(os.environ.get("DTI_FAULTS_STORE_AWAY_S", "30"))
    work = Path(tempfile.mkdtemp(prefix="dti-faults-"))
    rows, orphans, intrusions = run_all(work, store_away_s)
    print(table(rows, orphans) + "\n\n" + intruders_table(intrusions), flush=True)
    if not all(row.passed for row in rows) or orphans or any(i.let_in for i in intrusions):
        print(f"up's log: {work / 'up.log'}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

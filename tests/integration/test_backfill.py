"""`dti-pulse load` against Apache Kafka: JSONL, CSV and Parquet through ingest's validation,
refusals written with their record numbers, a checkpoint that resumes, and nothing sent
twice; `dti-pulse sample-year` at the province's proportions."""
import csv
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import orjson

from services.ingest.backfill import Checkpoint
from tests import scenario
from tests.conftest import consume_all, service_env

REPO = Path(__file__).resolve().parents[2]


def dti_pulse(*args, env) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "dti_pulse.cli", *args], env=env, capture_output=True,
                            text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_a_sample_year_has_the_provinces_proportions_and_stays_in_its_year(tmp_path):
    import os

    out = tmp_path / "2025.jsonl"
    dti_pulse("sample-year", "2025", "--out", str(out), "--scale", "0.002", env=dict(os.environ))
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    kinds = [e["type"] for e in events]
    assert 2_140 * 0.9 < kinds.count("document.sent") < 2_140 * 1.1  # 1.07 M x 0.002
    assert 1_834 * 0.9 < kinds.count("dossier.received") < 1_834 * 1.1  # 917 k x 0.002
    assert 1.9 < kinds.count("document.received") / kinds.count("document.sent") < 2.5
    years = {datetime.fromisoformat(e["occurred_at"]).year for e in events}
    assert years <= {2024, 2025}  # a late dossier of early January was received in December
    assert len({e["event_id"] for e in events}) == len(events)
    # Every agency lists its catalogue on its first day in service: the departments and
    # districts on 1 January (a Wednesday), the communes on 1 July.
    listed_on = {}
    for e in events:
        if e["type"] == "procedure.listed":
            listed_on.setdefault(e["agency_code"], set()).add(e["occurred_at"][:10])
    from dti_pulse.simulator import PROCEDURES_OFFERED
    assert kinds.count("procedure.listed") >= PROCEDURES_OFFERED * len(listed_on)
    assert listed_on["000.00.05.H56"] >= {"2025-01-01"} and listed_on["001.00.00.H56"] >= {"2025-07-01"}
    # Every event passes ingest's validation: each agency was in service on its event's day.
    import asyncio

    from dti_pulse.config import DEFAULT_AGENCIES
    from dti_pulse.registry import load_registry
    from services.ingest.service import IngestService

    class Accepting:
        async def publish(self, events):
            pass

    result = asyncio.run(IngestService(load_registry(DEFAULT_AGENCIES), Accepting(), 10**6,
                                       max_future_ms=10**12).ingest(events, "lgsp"))
    assert result.rejected == [] and result.accepted == len(events)


def test_load_validates_refuses_with_record_numbers_resumes_and_sends_nothing_twice(
        private_broker, topic_names, tmp_path):
    events_topic, dlq_topic = topic_names
    env = service_env(tmp_path, private_broker.bootstrap, events_topic, dlq_topic)
    env = {**__import__("os").environ, **env}
    good = scenario.EVENTS
    foreign = {**good[0], "event_id": str(uuid.uuid4()), "agency_code": "999.99.99.X00"}
    jsonl = tmp_path / "october.jsonl"
    lines = [orjson.dumps(e) for e in good[:5]] + [b"{not json"] + [orjson.dumps(e) for e in good[5:]] + \
        [orjson.dumps(foreign)]
    jsonl.write_bytes(b"\n".join(lines) + b"\n")

    first = dti_pulse("load", str(jsonl), "--source", "lgsp", env=env)
    assert f"{len(good):,} accepted" in first.stdout and "2 refused" in first.stdout, first.stdout
    rejected = [orjson.loads(line) for line in (tmp_path / "october.jsonl.rejected.jsonl").read_bytes().splitlines()]
    assert [r["record"] for r in rejected] == [6, len(lines)]
    assert "not JSON" in rejected[0]["reason"] and "unknown agency" in rejected[1]["reason"]
    published = consume_all(private_broker.bootstrap, events_topic, len(good))
    assert sorted(e.event_id for _, e in published) == sorted(e["event_id"] for e in good)
    assert {e.source for _, e in published} == {"lgsp"}

    # Again: the checkpoint says it is all in; nothing is read or sent.
    again = dti_pulse("load", str(jsonl), "--source", "lgsp", env=env)
    assert "0 records read" in again.stdout, again.stdout
    assert len(consume_all(private_broker.bootstrap, events_topic, len(good) + 1, timeout_s=3)) == len(good)

    # A run that stopped after its first chunks goes on from the checkpoint.
    later = tmp_path / "november.jsonl"
    fresh = [{**e, "event_id": str(uuid.uuid4())} for e in good]
    later.write_bytes(b"\n".join(orjson.dumps(e) for e in fresh) + b"\n")
    stopped = Checkpoint.of(Path(env["DTI_DATA_DIR"]), later, "lgsp")
    stopped.done = stopped.accepted = 4
    stopped.save(later)
    resumed = dti_pulse("load", str(later), "--source", "lgsp", env=env)
    assert f"{len(fresh) - 4:,} records read" in resumed.stdout, resumed.stdout
    ids = {e.event_id for _, e in consume_all(private_broker.bootstrap, events_topic, 2 * len(good) - 4)}
    assert ids == {e["event_id"] for e in good} | {e["event_id"] for e in fresh[4:]}


def test_csv_and_parquet_carry_the_same_events_as_jsonl(private_broker, topic_names, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    events_topic, dlq_topic = topic_names
    env = {**__import__("os").environ, **service_env(tmp_path, private_broker.bootstrap, events_topic, dlq_topic)}
    columns = sorted({k for e in scenario.EVENTS for k in e})
    with open(tmp_path / "october.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        for event in scenario.EVENTS:
            writer.writerow({k: "|".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v
                             for k, v in event.items()})
    renamed = [{**e, "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, e["event_id"]))} for e in scenario.EVENTS]
    # A column for every field (from_pylist would take the first row's), null where an event has none.
    pq.write_table(pa.Table.from_pydict({c: [e.get(c) for e in renamed] for c in columns}), tmp_path / "october.parquet")
    output = dti_pulse("load", str(tmp_path / "october.csv"), str(tmp_path / "october.parquet"), env=env).stdout
    assert output.count(f"{len(scenario.EVENTS):,} accepted") == 2, output
    published = {e.event_id: e for _, e in consume_all(private_broker.bootstrap, events_topic, 2 * len(scenario.EVENTS))}
    assert set(published) == {e["event_id"] for e in scenario.EVENTS} | {e["event_id"] for e in renamed}
    # The same event from either file is the same protobuf, its id apart.
    for original, twin in zip(scenario.EVENTS, renamed):
        a, b = published[original["event_id"]], published[twin["event_id"]]
        a_copy, b_copy = type(a)(), type(b)()
        a_copy.CopyFrom(a)
        b_copy.CopyFrom(b)
        for message in (a_copy, b_copy):
            message.event_id, message.ingested_at_ms = "", 0
        assert a_copy == b_copy, original

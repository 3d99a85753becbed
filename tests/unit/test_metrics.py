"""What /metrics tells: counts by outcome and reason kind, HTTP requests by route template,
every ingest worker's counts summed, and only names the dashboard and alert rules can use."""
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from dti_pulse import metrics
from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.registry import load_registry
from services.ingest.http import create_app
from services.ingest.service import IngestService

REPO = Path(__file__).resolve().parents[2]
DEPARTMENT = "000.00.05.H56"


class AcceptingPublisher:
    async def publish(self, events):
        pass

    async def ready(self):
        return True


def dossier(**fields):
    return {"event_id": str(uuid.uuid4()), "type": "dossier.status", "occurred_at": "2026-10-01T09:00:00+07:00",
            "agency_code": DEPARTMENT, "dossier_id": "H56.1", "status": 2, **fields}


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_reason_kinds_are_a_fixed_vocabulary():
    assert metrics.reason_kind("unknown agency 'X.Y'") == "unknown_agency"
    assert metrics.reason_kind("field 'due_at' is before 'received_at'") == "field_due_at"
    assert metrics.reason_kind("missing field 'dossier_id'") == "field_dossier_id"
    assert metrics.reason_kind("source 'portal' may not send for agency '000.00.05.H56'") == "foreign_agency"
    assert metrics.reason_kind("undecodable EventBatch: Error parsing message") == "undecodable"
    assert metrics.reason_kind("cannot store dossier state 'H56.1': too long") == "row_rejected"
    # What a sender wrote never becomes a label: an unknown shape is "other".
    assert metrics.reason_kind("field 'Robert'); DROP TABLE' is odd") == "other"


def test_ingest_counts_outcomes_reasons_and_routes(caplog):
    app = create_app(IngestService(load_registry(DEFAULT_AGENCIES), AcceptingPublisher(), 1000),
                     {"t": "bus"}, AcceptingPublisher().ready, 1_000_000, 1_000)
    before = {"accepted": value("dti_ingest_events_total", outcome="accepted"),
              "rejected": value("dti_ingest_events_total", outcome="rejected"),
              "unknown": value("dti_ingest_rejected_total", reason="unknown_agency"),
              "ok": value("dti_http_requests_total", service="ingest", route="/v1/events", method="POST", status="200"),
              "401": value("dti_http_requests_total", service="ingest", route="/v1/events", method="POST", status="401"),
              "404": value("dti_http_requests_total", service="ingest", route="unmatched", method="GET", status="404")}
    valid = dossier()
    caplog.set_level(logging.INFO, logger="dti_pulse.access")
    with TestClient(app) as client:
        answer = client.post("/v1/events", headers={"Authorization": "Bearer t"},
                             json={"events": [valid, valid, dossier(agency_code="999.99.99.X00")]})
        assert answer.json()["accepted"] == 2 and answer.json()["duplicates"] == 1
        assert client.post("/v1/events", json={"events": []}).status_code == 401
        assert client.get(f"/v1/events/{uuid.uuid4()}").status_code == 404
        scraped = client.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    assert value("dti_ingest_events_total", outcome="accepted") - before["accepted"] == 2
    assert value("dti_ingest_events_total", outcome="rejected") - before["rejected"] == 1
    assert value("dti_ingest_rejected_total", reason="unknown_agency") - before["unknown"] == 1
    assert value("dti_http_requests_total", service="ingest", route="/v1/events", method="POST",
                 status="200") - before["ok"] == 1
    assert value("dti_http_requests_total", service="ingest", route="/v1/events", method="POST",
                 status="401") - before["401"] == 1
    # A path the app does not serve is one series, whatever the path was.
    assert value("dti_http_requests_total", service="ingest", route="unmatched", method="GET",
                 status="404") - before["404"] == 1
    assert 'dti_ingest_events_total{outcome="accepted"}' in scraped.text
    lines = [r.getMessage() for r in caplog.records if r.name == "dti_pulse.access"]
    assert any(re.fullmatch(r"\S+ POST /v1/events 200 \d+\.\d ms", line) for line in lines), lines


def test_the_access_log_can_be_silenced():
    from dti_pulse import logs

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("WARNING", "text", access_lines=True)
        assert logging.getLogger("dti_pulse.access").isEnabledFor(logging.INFO)
        logs.configure("DEBUG", "text", access_lines=False)
        assert not logging.getLogger("dti_pulse.access").isEnabledFor(logging.CRITICAL)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("dti_pulse.access").setLevel(logging.NOTSET)


COUNT_IN_A_WORKER = """
from dti_pulse import metrics
metrics.ingest().events.labels("accepted").inc({n})
"""

SCRAPE = """
from dti_pulse import metrics
print(metrics.exposition()[0].decode())
"""


def test_every_ingest_workers_counts_are_summed(tmp_path):
    metrics.prepare_multiprocess(tmp_path / "ingest")
    env = {**os.environ, metrics.MULTIPROCESS_DIR: str(tmp_path / "ingest")}
    try:
        for n in (3, 4):
            subprocess.run([sys.executable, "-c", COUNT_IN_A_WORKER.format(n=n)], env=env, check=True, cwd=REPO)
        scraped = subprocess.run([sys.executable, "-c", SCRAPE], env=env, check=True, cwd=REPO,
                                 capture_output=True, text=True).stdout
    finally:
        os.environ.pop(metrics.MULTIPROCESS_DIR, None)
    assert re.search(r'^dti_ingest_events_total\{outcome="accepted"\} 7\.0$', scraped, re.M), scraped
    # A fresh start forgets the previous run's counts.
    metrics.prepare_multiprocess(tmp_path / "ingest")
    os.environ.pop(metrics.MULTIPROCESS_DIR, None)
    assert list((tmp_path / "ingest").iterdir()) == []


class Snapshot:
    lag_by_partition = ((0, 5),)
    healthy = store_reachable = broker_reachable = True
    aggregator_stalled = False
    dead_letters = 0
    checked_at_ms = 0


def defined_metric_names() -> set[str]:
    for kind in (metrics.ingest, metrics.http, metrics.aggregator, metrics.ranking):
        kind()
    names = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    for family in REGISTRY.collect():  # a labelled family with no child yet has no samples
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    shown = metrics.PIPELINE.snapshot
    metrics.PIPELINE.snapshot = Snapshot
    try:
        names.update(family.name for family in metrics.PIPELINE.collect())
    finally:
        metrics.PIPELINE.snapshot = shown
    return names


def test_the_dashboard_and_alerts_use_only_metrics_that_exist():
    import yaml

    names = defined_metric_names() | {"up"}
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/dti-pulse.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    expressions += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(expressions) > 20
    used = {name for expr in expressions for name in re.findall(r"\b(?:dti_[a-z_]+|up)\b(?=[{\[ )]|$)", expr)}
    assert used - names == set(), f"not defined by dti_pulse/metrics.py: {sorted(used - names)}"
    # Every panel reads the datasource compose provisions.
    datasource = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {datasource["datasources"][0]["uid"]}

"""Debian's Prometheus scrapes the stack `dti-pulse up` runs (two ingest workers, a fold process
apart, ranking, the console) with the project's alert rules loaded, and gives back what
happened: the rate of accepted events, exact counts summed over processes, gRPC calls by
code, the consumer lag per partition."""
import shutil
import subprocess
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
import yaml

from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from tests import scenario
from tests.conftest import poll, ranking_stub, service_env
from dti_pulse.broker import die_with_parent, free_port

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PARTITIONS = 4


def metrics_ports() -> int:
    """A port whose next one is free too (the fold process apart takes port + 1)."""
    for _ in range(20):
        port = free_port()
        try:
            import socket

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two free ports in a row")


@pytest.fixture
def scraped_stack(private_broker, topic_names, services, tmp_path):
    if not Path(PROMETHEUS).exists():
        pytest.fail(f"{PROMETHEUS} is missing: `make tools` installs Debian's prometheus")
    metrics_port = metrics_ports()
    env = service_env(tmp_path, private_broker.bootstrap, *topic_names, DTI_METRICS_PORT=str(metrics_port),
                      DTI_INGEST_WORKERS="2", DTI_AGGREGATOR_PROCESSES="1", DTI_INGEST_CONNECTION_MAX_AGE_S="0.1")
    up = services("up-scraped", ["up", "--no-simulator", "--data-dir", env["DTI_DATA_DIR"],
                                 "--http-port", env["DTI_HTTP_PORT"], "--grpc-port", env["DTI_GRPC_PORT"],
                                 "--console-port", env["DTI_CONSOLE_PORT"]], env)
    poll(lambda: "dti-pulse is up" in up.output() or up.process.poll() is not None, timeout_s=180, what="up")
    assert up.process.poll() is None, up.output()[-3000:]

    targets = {"dti-ingest": env["DTI_HTTP_PORT"], "dti-console": env["DTI_CONSOLE_PORT"],
               "dti-ranking": metrics_port, "dti-aggregator": metrics_port + 1}
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(REPO / "deploy/prometheus/alerts.yml")],
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                                 for job, port in targets.items()]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus_port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    api = httpx.Client(base_url=f"http://127.0.0.1:{prometheus_port}", timeout=10)
    try:
        poll(lambda: api.get("/-/ready").status_code == 200, timeout_s=60, what="prometheus ready")
        yield env, api, targets
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        api.close()


def query(api: httpx.Client, expression: str) -> list:
    answer = api.get("/api/v1/query", params={"query": expression}).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def scalar(api: httpx.Client, expression: str) -> float | None:
    result = query(api, expression)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_stack_and_queries_rates_back(scraped_stack):
    env, api, targets = scraped_stack
    ingest = httpx.Client(base_url=f"http://127.0.0.1:{env['DTI_HTTP_PORT']}",
                          headers={"Authorization": "Bearer test-token"}, timeout=30)
    poll(lambda: len(query(api, "up == 1")) == len(targets), timeout_s=60, what="every target up")
    accepted = 0

    def send(batches: int) -> None:
        nonlocal accepted
        for _ in range(batches):  # short-lived connections: the requests land on both workers
            answer = ingest.post("/v1/events", json={"events": scenario.EVENTS}, headers={"Connection": "close"})
            assert answer.status_code == 200, answer.text
            accepted += answer.json()["accepted"]

    send(5)
    # A rate needs the counter seen before it grows: the rest once Prometheus has seen it.
    poll(lambda: scalar(api, 'sum(dti_ingest_events_total{outcome="accepted"})') == accepted, timeout_s=30,
         what="the first batches scraped")
    send(5)
    refused = ingest.post("/v1/events", json={"events": [{**scenario.EVENTS[0], "event_id": str(uuid.uuid4()),
                                                           "agency_code": "999.99.99.X00"}]})
    assert len(refused.json()["rejected"]) == 1

    stub = ranking_stub(int(env["DTI_GRPC_PORT"]))
    request = ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD)
    poll(lambda: stub.GetAgencyScore(request).indicators, timeout_s=60, what="a score")
    stub.GetAgencyScore(request)
    stranger = ranking_pb2_grpc.RankingServiceStub(grpc.insecure_channel(f"127.0.0.1:{env['DTI_GRPC_PORT']}"))
    with pytest.raises(grpc.RpcError) as refusal:
        stranger.GetAgencyScore(request)
    assert refusal.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # The alert rules are loaded, and (at the end) none of them fires.
    rules = api.get("/api/v1/rules").json()["data"]["groups"]
    assert sum(len(group["rules"]) for group in rules) == 9
    # Counts summed over ingest's two workers, and the fold process's exact count.
    poll(lambda: scalar(api, 'sum(dti_ingest_events_total{outcome="accepted"})') == accepted, timeout_s=60,
         what=f"{accepted} accepted events in Prometheus")
    assert len({s["metric"].get("pid") for s in query(api, "dti_ingest_events_total")}) == 1  # one series each
    assert scalar(api, 'sum(dti_ingest_rejected_total{reason="unknown_agency"})') == 1
    poll(lambda: scalar(api, 'sum(dti_aggregator_events_total{outcome="folded"})') == len(scenario.EVENTS),
         timeout_s=60, what="every distinct event folded once")
    poll(lambda: (scalar(api, 'sum(rate(dti_ingest_events_total{outcome="accepted"}[20s]))') or 0) > 0,
         timeout_s=30, what="a rate of accepted events")
    method = "/dti.ranking.v1.RankingService/GetAgencyScore"
    poll(lambda: (scalar(api, f'sum(dti_grpc_requests_total{{method="{method}",code="OK"}})') or 0) >= 2
         and scalar(api, f'sum(dti_grpc_requests_total{{method="{method}",code="UNAUTHENTICATED"}})') == 1,
         timeout_s=30, what="gRPC calls by code")
    poll(lambda: len(query(api, "dti_consumer_lag")) == PARTITIONS
         and scalar(api, "sum(dti_consumer_lag)") == 0, timeout_s=60, what="the lag of every partition, caught up")
    assert scalar(api, 'sum(dti_http_requests_total{service="ingest",route="/v1/events",status="200"})') >= 11
    assert scalar(api, "min(dti_pipeline_healthy)") == 1
    assert scalar(api, "time() - max(dti_ranking_data_changed_timestamp_seconds)") < 120
    assert query(api, 'ALERTS{alertstate="firing"}') == []

"""The whole stack as `dti-pulse up` starts it: HTTP in, gRPC out."""
import os
import subprocess
import threading
import time
import uuid

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from dti.ranking.v1 import ranking_pb2
from tests import scenario
from tests.conftest import consume_all, poll, ranking_stub, service_env

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(private_broker, topic_names, services, tmp_path):
    events_topic, dlq_topic = topic_names
    env = service_env(tmp_path, private_broker.bootstrap, events_topic, dlq_topic,
                      DTI_INGEST_DELIVERY_TIMEOUT_MS="4000")
    up = services("up", ["up", "--no-simulator", "--data-dir", str(tmp_path / "data"),
                         "--http-port", env["DTI_HTTP_PORT"], "--grpc-port", env["DTI_GRPC_PORT"]], env)
    poll(lambda: "dti-pulse is up" in up.output() or up.process.poll() is not None, timeout_s=120,
         what="dti-pulse up")
    assert up.process.poll() is None, up.output()
    client = httpx.Client(base_url=f"http://127.0.0.1:{env['DTI_HTTP_PORT']}",
                          headers={"Authorization": "Bearer test-token"}, timeout=30)
    yield client, ranking_stub(int(env["DTI_GRPC_PORT"])), int(env["DTI_GRPC_PORT"]), events_topic, up
    client.close()


def score_of(stub, agency, period=scenario.PERIOD):
    return stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=agency, period=period))


def test_bus_events_become_exact_scores_and_bad_requests_get_clear_errors(stack, private_broker):
    client, stub, grpc_port, events_topic, up = stack

    # Health checking and reflection are on.
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="dti.ranking.v1.RankingService"))
    assert health.status == health_pb2.HealthCheckResponse.SERVING

    # The month arrives out of order with duplicates inside the batch, then again as a retry.
    first = client.post("/v1/events", json={"events": scenario.EVENTS + scenario.DUPLICATES})
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": len(scenario.EVENTS) + 2, "duplicates": 2, "rejected": []}
    retry = client.post("/v1/events", json={"events": scenario.EVENTS})
    assert retry.json()["duplicates"] == len(scenario.EVENTS)

    # Every family's events folded (they arrive on different partitions, in batches of their own).
    expected_denominators = {code: denominator for code, (_, denominator, _) in scenario.EXPECTED.items()}
    score = poll(lambda: (s := score_of(stub, scenario.AGENCY)) and
                 {i.code: i.denominator for i in s.indicators if i.code in expected_denominators}
                 == expected_denominators and s,
                 timeout_s=60, what="the October scenario in the score")
    indicators = {i.code: i for i in score.indicators}
    for code, (numerator, denominator, points) in scenario.EXPECTED.items():
        assert (indicators[code].numerator, indicators[code].denominator) == (numerator, denominator), code
        assert indicators[code].points == pytest.approx(points), code
        assert indicators[code].HasField("ratio")
    assert score.total_points == pytest.approx(scenario.EXPECTED_TOTAL)
    assert score.max_points == pytest.approx(scenario.EXPECTED_MAX)
    assert score.fraction == pytest.approx(scenario.EXPECTED_TOTAL / scenario.EXPECTED_MAX)
    assert score.rules_version == "dti-pulse-2026" and score.cohort == "department"
    # The 766 index apart on its published scale of 100, the DTI documents apart.
    indices = {i.index: (i.points, i.max_points, i.index_max_points) for i in score.indices}
    assert indices["766"] == pytest.approx((scenario.EXPECTED_766, scenario.EXPECTED_766_MAX, 100))
    assert indices["dti"] == pytest.approx((scenario.EXPECTED_TOTAL - scenario.EXPECTED_766, 20, 20))

    # A mixed batch: the valid events count, the invalid ones come back with reasons.
    other = "000.00.09.H56"
    valid = {"event_id": str(uuid.uuid4()), "type": "dossier.received", "occurred_at": "2026-10-03T08:00:00+07:00",
             "agency_code": other, "dossier_id": "M1", "procedure_code": "1.000001", "channel": 2,
             "service_level": "full_online", "received_at": "2026-10-03T08:00:00+07:00",
             "due_at": "2026-10-05T17:00:00+07:00"}
    bad_time = dict(valid, event_id=str(uuid.uuid4()), dossier_id="M2", occurred_at="03/10/2026")
    bad_agency = dict(valid, event_id=str(uuid.uuid4()), dossier_id="M3", agency_code="999.99.99.H56")
    mixed = client.post("/v1/events", json={"events": [bad_time, valid, bad_agency]})
    assert mixed.status_code == 200
    assert mixed.json()["accepted"] == 1
    assert [(r["index"], "occurred_at" in r["reason"]) for r in mixed.json()["rejected"]][0] == (0, True)
    assert "unknown agency '999.99.99.H56'" in mixed.json()["rejected"][1]["reason"]
    poll(lambda: score_of(stub, other).indicators[0].denominator == 1, timeout_s=30, what="the mixed batch's valid event")

    # Wrong credential, not a batch.
    assert httpx.post(f"{client.base_url}/v1/events", json={"events": []}).status_code == 401
    assert client.post("/v1/events", headers={"Authorization": "Bearer nope"}, json={"events": []}).status_code == 401
    not_a_batch = client.post("/v1/events", json=[valid])
    assert not_a_batch.status_code == 400 and not_a_batch.headers["content-type"] == "application/problem+json"

    # gRPC errors.
    with pytest.raises(grpc.RpcError) as missing:
        score_of(stub, "000.99.99.H56")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad_period:
        score_of(stub, scenario.AGENCY, period="October")
    assert bad_period.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ranking = stub.ListRanking(ranking_pb2.ListRankingRequest(cohort="department", period=scenario.PERIOD))
    assert ranking.entries[0].score.agency_code == scenario.AGENCY and len(ranking.entries) == 15

    # The broker goes away: 503 with Retry-After, and nothing of that batch is ever published.
    private_broker.stop()
    lost = [dict(valid, event_id=str(uuid.uuid4()), dossier_id=f"LOST{i}") for i in range(3)]
    started = time.monotonic()
    unavailable = client.post("/v1/events", json={"events": lost})
    assert unavailable.status_code == 503, unavailable.text
    assert int(unavailable.headers["Retry-After"]) > 0
    assert time.monotonic() - started < 20
    # Health tells the truth: readiness asks the broker now; ranking's health names the broker.
    assert client.get("/readyz").status_code == 503
    pipeline_health = health_pb2_grpc.HealthStub(channel)
    poll(lambda: pipeline_health.Check(health_pb2.HealthCheckRequest(service="dti.pipeline.broker")).status
         == health_pb2.HealthCheckResponse.NOT_SERVING, timeout_s=30, what="broker health NOT_SERVING")
    status = stub.GetPipelineStatus(ranking_pb2.GetPipelineStatusRequest())
    assert not status.broker_reachable and status.store_reachable and "Kafka unreachable" in status.problems[0]
    assert pipeline_health.Check(health_pb2.HealthCheckRequest(service="")).status == \
        health_pb2.HealthCheckResponse.NOT_SERVING
    private_broker.start()  # same port, same log on disk: the topic and what it held come back
    later = dict(valid, event_id=str(uuid.uuid4()), dossier_id="AFTER")
    accepted = poll(lambda: client.post("/v1/events", json={"events": [later]}).status_code == 200,
                    timeout_s=60, interval_s=1, what="ingest to recover after the broker restart")
    assert accepted
    # Everything the broker holds: the recovered batch, and none of the refused one.
    published = [e.dossier_received.dossier_id for _, e in consume_all(private_broker.bootstrap, events_topic, 10**6,
                                                                        timeout_s=10)]
    assert "AFTER" in published
    assert not [d for d in published if d.startswith("LOST")]
    poll(lambda: stub.GetPipelineStatus(ranking_pb2.GetPipelineStatusRequest()).problems == [], timeout_s=30,
         what="every part of the pipeline to work again")


def test_up_stops_every_process_it_started_on_sigterm(stack):
    client, stub, grpc_port, events_topic, up = stack
    children = subprocess.run(["pgrep", "-P", str(up.process.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 2  # ingest and aggregator+ranking (the broker is the test's own here)
    assert up.stop() == 0
    assert "dti-pulse stopped" in up.output()
    still_running = [pid for pid in children if os.path.exists(f"/proc/{pid}")
                     and open(f"/proc/{pid}/stat").read().split()[2] != "Z"]
    assert not still_running


def test_up_feeds_the_simulator_by_default(private_broker, topic_names, services, tmp_path):
    events_topic, dlq_topic = topic_names
    # A token that looks like an option once broke the simulator's command line.
    env = service_env(tmp_path, private_broker.bootstrap, events_topic, dlq_topic,
                      DTI_INGEST_TOKENS="simulator=-starts-with-a-dash")
    up = services("up-simulated", ["up", "--data-dir", str(tmp_path / "data"), "--simulator-rate", "500",
                                   "--http-port", env["DTI_HTTP_PORT"], "--grpc-port", env["DTI_GRPC_PORT"]], env)
    poll(lambda: "dti-pulse is up" in up.output() or up.process.poll() is not None, timeout_s=120, what="dti-pulse up")
    stub = ranking_stub(int(env["DTI_GRPC_PORT"]))

    def scored_agencies():
        assert up.process.poll() is None, up.output()
        ranking = stub.ListRanking(ranking_pb2.ListRankingRequest(cohort="department", period="last:1d"))
        return sum(e.score.HasField("fraction") for e in ranking.entries)

    assert poll(scored_agencies, timeout_s=60, what="simulated events in the ranking") > 0

    def catalogued():  # every department's catalogue, posted before the paced traffic
        ranking = stub.ListRanking(ranking_pb2.ListRankingRequest(cohort="department", period="last:1d"))
        listed = [next(i.denominator for i in e.score.indicators if i.code == "procedure_full_content_rate")
                  for e in ranking.entries]
        return len(listed) == 15 and min(listed) >= 15 and listed  # 20 each, a few withdrawn

    poll(catalogued, timeout_s=60, what="every department's procedure catalogue in the ranking")


def test_up_runs_without_the_consoles_assets_and_starts_a_dead_ingest_again(private_broker, topic_names, services,
                                                                            tmp_path):
    """The console's npm assets missing leave the console out, not the pipeline; a child
    that dies (here ingest, kill -9) is started again by up with a log line."""
    events_topic, dlq_topic = topic_names
    env = service_env(tmp_path, private_broker.bootstrap, events_topic, dlq_topic,
                      DTI_CONSOLE_ASSETS=str(tmp_path / "no-assets"))
    up = services("up-no-assets", ["up", "--no-simulator", "--data-dir", str(tmp_path / "data"),
                                   "--http-port", env["DTI_HTTP_PORT"], "--grpc-port", env["DTI_GRPC_PORT"]], env)
    poll(lambda: "dti-pulse is up" in up.output() or up.process.poll() is not None, timeout_s=120,
         what="dti-pulse up")
    assert "console (web)   not started" in up.output() and "console not started" in up.output(), up.output()
    ready = f"http://127.0.0.1:{env['DTI_HTTP_PORT']}/readyz"
    assert httpx.get(ready).status_code == 200
    children = subprocess.run(["pgrep", "-P", str(up.process.pid)], capture_output=True, text=True).stdout.split()
    ingest = [pid for pid in children if open(f"/proc/{pid}/cmdline").read().split("\0")[-3:-1] == ["serve", "ingest"]]
    assert len(ingest) == 1
    os.kill(int(ingest[0]), 9)
    poll(lambda: "ingest exited with -9; starting it again" in up.output(), timeout_s=10, what="the death logged")
    poll(lambda: httpx.get(ready).status_code == 200, timeout_s=60, what="ingest started again")
    assert "ingest started again" in up.output() and up.process.poll() is None


def test_up_with_fold_processes_apart_scores_exactly_and_stops_them_all(private_broker, topic_names, services,
                                                                        tmp_path):
    """DTI_AGGREGATOR_PROCESSES=2: ranking's process serves the state store, two fold
    processes write through it."""
    events_topic, dlq_topic = topic_names
    env = service_env(tmp_path, private_broker.bootstrap, events_topic, dlq_topic, DTI_AGGREGATOR_PROCESSES="2")
    up = services("up-apart", ["up", "--no-simulator", "--data-dir", str(tmp_path / "data"),
                               "--http-port", env["DTI_HTTP_PORT"], "--grpc-port", env["DTI_GRPC_PORT"]], env)
    poll(lambda: "dti-pulse is up" in up.output() or up.process.poll() is not None, timeout_s=120,
         what="dti-pulse up")
    assert "2 fold processes, writing through" in up.output(), up.output()
    children = subprocess.run(["pgrep", "-P", str(up.process.pid)], capture_output=True, text=True).stdout.split()
    commands = {pid: open(f"/proc/{pid}/cmdline").read().split("\0") for pid in children}
    folds = [pid for pid, argv in commands.items() if argv[argv.index("serve") + 1:][:1] == ["aggregator"]
             if "serve" in argv]
    assert len(folds) == 2, commands
    # The state store's secret is in a private file, in no child's environment or arguments.
    secret = (tmp_path / "data" / "state-store.secret").read_text()
    for pid in children:
        assert secret not in open(f"/proc/{pid}/environ").read() and secret not in " ".join(commands[pid])

    with httpx.Client(base_url=f"http://127.0.0.1:{env['DTI_HTTP_PORT']}",
                      headers={"Authorization": "Bearer test-token"}, timeout=30) as client:
        response = client.post("/v1/events", json={"events": scenario.EVENTS})
    assert response.status_code == 200 and response.json()["accepted"] == len(scenario.EVENTS), response.text
    stub = ranking_stub(int(env["DTI_GRPC_PORT"]))
    score = poll(lambda: (s := score_of(stub, scenario.AGENCY)) and s.total_points == pytest.approx(scenario.EXPECTED_TOTAL)
                 and s, timeout_s=60, what="the October scenario in the score")
    indicators = {i.code: i for i in score.indicators}
    for code, (numerator, denominator, _) in scenario.EXPECTED.items():
        assert (indicators[code].numerator, indicators[code].denominator) == (numerator, denominator), code

    # Stopped under load, with writes in flight: the fold processes stop before the store
    # they write through, or they would wait for it until killed.
    from dti_pulse.config import DEFAULT_AGENCIES
    from dti_pulse.registry import load_registry
    from dti_pulse.simulator import BusSimulator

    simulator, stopping = BusSimulator(load_registry(DEFAULT_AGENCIES), seed=3), threading.Event()

    def load():
        with httpx.Client(base_url=f"http://127.0.0.1:{env['DTI_HTTP_PORT']}",
                          headers={"Authorization": "Bearer test-token"}, timeout=5) as client:
            while not stopping.is_set():
                try:
                    client.post("/v1/events", json={"events": simulator.batch(500)})
                except httpx.HTTPError:
                    return

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    time.sleep(3)
    assert up.stop() == 0
    stopping.set()
    loader.join(10)
    assert "did not stop" not in up.output()
    assert "\x1b" not in up.output()  # no terminal escape codes in a log file (Faust's spinner)
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}")
                and open(f"/proc/{pid}/stat").read().split()[2] != "Z"]

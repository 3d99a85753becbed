"""Kafka with SASL/SCRAM, started by the script compose runs: ingest, the Faust aggregator, ranking's watch and the dead-letter
tool all log in with DTI_KAFKA_* and the pipeline scores; a client without the password is
refused by the broker."""
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from dti.ranking.v1 import ranking_pb2
from dti_pulse.kafka import KafkaSecurity, ensure_topics
from tests import scenario
from tests.conftest import ARTIFACTS, poll, ranking_stub, service_env, wait_for_port

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "start-scram.sh"


class ScramBroker:
    """deploy/kafka/start-scram.sh, as compose's kafka service runs it, on this machine's jars."""

    def __init__(self, work):
        from dti_pulse.broker import LOG4J_CONFIG, free_port, kafka_libs

        self.port = free_port()
        (work / "broker-password").write_text("broker-secret\n")
        (work / "dti-password").write_text("dti-secret\n")
        self.env = {**os.environ, "KAFKA_LIBS": str(kafka_libs()), "KAFKA_DATA": str(work / "kafka"),
                    "KAFKA_HOST": "127.0.0.1", "KAFKA_PORT": str(self.port), "KAFKA_CONTROLLER_PORT": str(free_port()),
                    "KAFKA_BROKER_PASSWORD_FILE": str(work / "broker-password"), "KAFKA_CLIENT_USER": "dti",
                    "KAFKA_CLIENT_PASSWORD_FILE": str(work / "dti-password"), "KAFKA_LOG4J_CONFIG": str(LOG4J_CONFIG)}
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.security = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "dti", "dti-secret")
        self.log = open(ARTIFACTS / "kafka-scram.log", "ab")
        self.process = subprocess.Popen(["bash", str(SCRIPT)], env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


@pytest.fixture
def scram_broker(tmp_path):
    from dti_pulse.broker import wait_until_serving

    ARTIFACTS.mkdir(exist_ok=True)
    instance = ScramBroker(tmp_path)
    try:
        wait_until_serving(instance.bootstrap, timeout_s=90, security=instance.security)
        yield instance
    finally:
        instance.stop()


def test_every_kafka_client_logs_in_with_scram(scram_broker, topic_names, services, tmp_path):
    events_topic, dlq_topic = topic_names
    login = {"DTI_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DTI_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
             "DTI_KAFKA_USERNAME": "dti", "DTI_KAFKA_PASSWORD": "dti-secret"}
    env = service_env(tmp_path, scram_broker.bootstrap, events_topic, dlq_topic, DTI_TOPIC_PARTITIONS="2", **login)
    ingest = services("scram-ingest", ["serve", "ingest"], env)
    core = services("scram-core", ["serve", "aggregator,ranking"], env)
    http = f"http://127.0.0.1:{env['DTI_HTTP_PORT']}"
    wait_for_port("127.0.0.1", int(env["DTI_HTTP_PORT"]), timeout_s=60, process=ingest.process)
    poll(lambda: httpx.get(f"{http}/readyz").status_code == 200, what="ingest ready through SCRAM")
    answer = httpx.post(f"{http}/v1/events", json={"events": scenario.EVENTS},
                        headers={"Authorization": "Bearer test-token"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["accepted"] == len(scenario.EVENTS), answer.text
    wait_for_port("127.0.0.1", int(env["DTI_GRPC_PORT"]), timeout_s=90, process=core.process)
    stub = ranking_stub(int(env["DTI_GRPC_PORT"]))
    request = ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD)
    score = poll(lambda: (s := stub.GetAgencyScore(request)) and s.total_points == pytest.approx(
        scenario.EXPECTED_TOTAL) and s, timeout_s=90, what="the scenario scored through SCRAM")
    # Not the snapshot before the monitor's first look (kafka_watched is false until it has looked).
    status = poll(lambda: (s := stub.GetPipelineStatus(ranking_pb2.GetPipelineStatusRequest())) and s.kafka_watched
                  and s.broker_reachable
                  and s.aggregator_lag == 0 and s, timeout_s=30, what="ranking's Kafka watch logged in")
    assert score.agency_code == scenario.AGENCY and status.kafka_watched and not status.problems

    from dti_pulse.dead_letters import list_dead_letters

    assert list_dead_letters(scram_broker.bootstrap, dlq_topic, scram_broker.security) == []
    intruder = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "dti", "guessed")
    with pytest.raises(RuntimeError, match="not reachable"):
        ensure_topics(scram_broker.bootstrap, {"intruder-topic": 1}, timeout_s=5, security=intruder)
    with pytest.raises(RuntimeError, match="not reachable"):  # no login at all
        ensure_topics(scram_broker.bootstrap, {"intruder-topic": 1}, timeout_s=5)
    assert ingest.process.poll() is None and core.process.poll() is None, core.output()[-3000:]

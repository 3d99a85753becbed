"""The Faust aggregator as a process against real tansu and chDB: dead letters do not
block a partition, and good events reach the score."""
import pytest
from kafka import KafkaConsumer, KafkaProducer

from dti.events.v1.events_pb2 import EventBatch
from dti.ranking.v1 import ranking_pb2
from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.kafka import ensure_topics
from dti_pulse.registry import load_registry
from services.aggregator.app import DEAD_LETTER_REASON_HEADER
from services.ingest.validation import to_event
from tests import scenario
from tests.conftest import poll, ranking_stub, service_env, wait_for_port
from tests.factories import dossier_received

pytestmark = pytest.mark.integration


def test_bad_messages_go_to_the_dead_letter_topic_and_the_rest_flows(broker, topic_names, services, tmp_path):
    events_topic, dlq_topic = topic_names
    env = service_env(tmp_path, broker.bootstrap, events_topic, dlq_topic, DTI_TOPIC_PARTITIONS="1")
    ensure_topics(broker.bootstrap, {events_topic: 1, dlq_topic: 1})
    registry = load_registry(DEFAULT_AGENCIES)
    good = EventBatch(events=[to_event(raw, registry, "lgsp", 0) for raw in scenario.EVENTS]).SerializeToString()
    # A state chDB cannot hold (an event that skipped ingest's checks: channel 300 for a UInt8).
    out_of_range = dossier_received("BAD", "2026-10-01 08:00", "2026-10-03 17:00", agency=scenario.AGENCY, channel=300)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    # Garbage first, on the only partition: if it blocked, the scenario would never score.
    producer.send(events_topic, value=b"\x08\x96\x01 definitely not an EventBatch").get(10)
    producer.send(events_topic, value=EventBatch(events=[out_of_range]).SerializeToString()).get(10)
    producer.send(events_topic, value=good).get(10)
    producer.close()

    core = services("aggregator-dlq", ["serve", "aggregator,ranking"], env)
    wait_for_port("127.0.0.1", int(env["DTI_GRPC_PORT"]), timeout_s=60, process=core.process)
    stub = ranking_stub(int(env["DTI_GRPC_PORT"]))
    request = ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD)
    score = poll(lambda: (s := stub.GetAgencyScore(request)) and s.indicators[0].denominator == 5 and s,
                 timeout_s=90, what="the scenario to be scored")
    assert score.total_points == pytest.approx(scenario.EXPECTED_TOTAL)

    consumer = KafkaConsumer(dlq_topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=20000)
    undecodable, unstorable = [message for message, _ in zip(consumer, range(2))]
    consumer.close()
    assert undecodable.value.startswith(b"\x08\x96\x01")
    assert b"undecodable EventBatch" in dict(undecodable.headers)[DEAD_LETTER_REASON_HEADER]
    assert [e.event_id for e in EventBatch.FromString(unstorable.value).events] == [out_of_range.event_id]
    assert dict(unstorable.headers)[DEAD_LETTER_REASON_HEADER].startswith(b"cannot store dossier state 'BAD'")


def test_events_that_trickle_in_do_not_wait_out_the_batch_window(broker, topic_names, services, tmp_path):
    """A 60 s window: a light batch must go at once, or neither message would score within 40 s."""
    events_topic, dlq_topic = topic_names
    env = service_env(tmp_path, broker.bootstrap, events_topic, dlq_topic, DTI_TOPIC_PARTITIONS="1",
                      DTI_AGGREGATOR_BATCH_SECONDS="60")
    ensure_topics(broker.bootstrap, {events_topic: 1, dlq_topic: 1})
    registry = load_registry(DEFAULT_AGENCIES)
    events = [to_event(raw, registry, "lgsp", 0) for raw in scenario.EVENTS]
    core = services("aggregator-trickle", ["serve", "aggregator,ranking"], env)
    wait_for_port("127.0.0.1", int(env["DTI_GRPC_PORT"]), timeout_s=60, process=core.process)
    stub = ranking_stub(int(env["DTI_GRPC_PORT"]))
    request = ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    # All but D1's receipt, then the receipt alone once the first batch has scored (D1 counts
    # from its receipt on: 4 dossiers received, then 5).
    producer.send(events_topic, value=EventBatch(events=events[1:]).SerializeToString()).get(10)
    poll(lambda: stub.GetAgencyScore(request).indicators[0].denominator == 4, timeout_s=40,
         what="the first message to be scored")
    producer.send(events_topic, value=EventBatch(events=events[:1]).SerializeToString()).get(10)
    producer.close()
    score = poll(lambda: (s := stub.GetAgencyScore(request)) and s.total_points == pytest.approx(scenario.EXPECTED_TOTAL)
                 and s, timeout_s=40, what="the last message to be scored")
    assert score.indicators[0].denominator == 5

"""The Faust aggregator as a process against real Apache Kafka and chDB: dead letters do not
block a partition, and good events reach the score."""
import pytest
from kafka import KafkaConsumer, KafkaProducer

from dti.events.v1.events_pb2 import EventBatch
from dti.ranking.v1 import ranking_pb2
from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.kafka import DEAD_LETTER_REASON_HEADER, ensure_topics
from dti_pulse.registry import load_registry
from services.ingest.validation import to_event
from tests import scenario
from tests.conftest import poll, ranking_stub, service_env, wait_for_port
from tests.factories import dossier_received

pytestmark = pytest.mark.integration


def test_bad_messages_go_to_the_dead_letter_topic_and_the_rest_flows(broker, topic_names, services, tmp_path):
    """Poison that any client of the broker can write (it never passed ingest) ahead of the
    good events on the only partition: if any of it blocked or crashed the aggregator, the
    scenario would never score."""
    events_topic, dlq_topic = topic_names
    env = service_env(tmp_path, broker.bootstrap, events_topic, dlq_topic, DTI_TOPIC_PARTITIONS="1")
    ensure_topics(broker.bootstrap, {events_topic: 1, dlq_topic: 1})
    registry = load_registry(DEFAULT_AGENCIES)
    good = EventBatch(events=[to_event(raw, registry, "lgsp", 0) for raw in scenario.EVENTS]).SerializeToString()

    def poison(**changes):
        event = dossier_received("BAD", "2026-10-01 08:00", "2026-10-03 17:00", agency=scenario.AGENCY)
        event.source = "forged"
        for name, value in changes.items():
            target = event.dossier_received if name in ("channel", "dossier_id") else event
            setattr(target, name, value)
        return EventBatch(events=[event]).SerializeToString()

    bad = [(b"\x08\x96\x01 definitely not an EventBatch", b"undecodable EventBatch"),
           (None, b"empty message"),
           (b"", b"empty message"),
           (b"\xfa\x3e\x03abc", b"no events"),
           (poison(occurred_at_ms=-(2 ** 63)), b"outside the years"),
           (poison(channel=300), b"field 'channel'"),
           (poison(dossier_id="x" * 900_000), b"longer than 512"),
           (poison(agency_code="999.99.99.H56"), b"unknown agency")]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", max_request_size=2 ** 21)
    for value, _ in bad:
        producer.send(events_topic, key=b"tombstone" if value is None else None, value=value).get(10)
    producer.send(events_topic, value=good).get(10)
    producer.close()

    core = services("aggregator-dlq", ["serve", "aggregator,ranking"], env)
    wait_for_port("127.0.0.1", int(env["DTI_GRPC_PORT"]), timeout_s=60, process=core.process)
    stub = ranking_stub(int(env["DTI_GRPC_PORT"]))
    request = ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD)
    # Every family folded: one batch writes each family's table in turn, and ranking may score
    # between two of them.
    expected_denominators = {code: denominator for code, (_, denominator, _) in scenario.EXPECTED.items()}
    score = poll(lambda: (s := stub.GetAgencyScore(request)) and
                 {i.code: i.denominator for i in s.indicators if i.code in expected_denominators}
                 == expected_denominators and s, timeout_s=90, what="the scenario to be scored")
    assert score.indicators[0].denominator == 5
    assert score.total_points == pytest.approx(scenario.EXPECTED_TOTAL)

    consumer = KafkaConsumer(dlq_topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=20000, fetch_max_bytes=2 ** 22)
    letters = [message for message, _ in zip(consumer, range(len(bad)))]
    consumer.close()
    assert len(letters) == len(bad)
    for (value, words), letter in zip(bad, letters):
        assert words in dict(letter.headers)[DEAD_LETTER_REASON_HEADER], (words, letter.headers)
        assert letter.value == (value or b"") or words not in (b"undecodable EventBatch", b"no events")
    assert core.process.poll() is None, core.output()


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

"""Ingest against a real Apache Kafka: envelopes, partitioning, HTTP contract, dead letters."""
import asyncio
import time
import uuid

import httpx
import pytest

from dti_pulse.config import DEFAULT_AGENCIES
from dti.events.v1.events_pb2 import EventBatch
from dti_pulse.events import MAX_ENVELOPE_BYTES, entity_key
from dti_pulse.kafka import ensure_topics
from dti_pulse.registry import load_registry
from services.ingest.http import create_app
from services.ingest.publisher import KafkaPublisher, NotAcknowledged
from services.ingest.service import IngestService
from services.ingest.validation import to_event
from tests import scenario
from tests.conftest import consume_all, free_port, service_env, wait_for_port

pytestmark = pytest.mark.integration


@pytest.fixture
def ingest_app(broker, topic_names):
    events_topic, dlq_topic = topic_names
    ensure_topics(broker.bootstrap, {events_topic: 4, dlq_topic: 1})
    publisher = KafkaPublisher(broker.bootstrap, events_topic, delivery_timeout_ms=5000)
    service = IngestService(load_registry(DEFAULT_AGENCIES), publisher, 1000)
    app = create_app(service, {"secret": "lgsp"}, publisher.ready, max_body_bytes=1_000_000, max_events=100)
    # One loop for the test's requests, as a worker has: the producer lives on it.
    loop = asyncio.new_event_loop()
    yield app, events_topic, loop.run_until_complete
    loop.run_until_complete(publisher.close())
    loop.close()


async def post(app, body=None, token="secret", content=None, headers=None):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        hdrs = {"Authorization": f"Bearer {token}", **(headers or {})}
        if content is not None:
            return await client.post("/v1/events", content=content, headers=hdrs)
        return await client.post("/v1/events", json=body, headers=hdrs)


def test_events_of_one_entity_share_a_partition_and_arrive_in_envelopes(broker, ingest_app):
    app, topic, run = ingest_app
    response = run(post(app, {"events": scenario.EVENTS}))
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": len(scenario.EVENTS), "duplicates": 0, "rejected": []}
    found = consume_all(broker.bootstrap, topic, len(scenario.EVENTS))
    assert sorted(e.event_id for _, e in found) == sorted(e["event_id"] for e in scenario.EVENTS)
    partitions_by_entity = {}
    for partition, event in found:
        entity = entity_key(event)  # (kind, id): a petition's, a dossier's or a document's
        partitions_by_entity.setdefault(entity, set()).add(partition)
        assert event.source == "lgsp" and event.ingested_at_ms > 0
    assert all(len(p) == 1 for p in partitions_by_entity.values()), partitions_by_entity
    assert len({p for ps in partitions_by_entity.values() for p in ps}) > 1  # spread over partitions


def test_http_contract(broker, ingest_app):
    app, topic, run = ingest_app
    valid = dict(scenario.EVENTS[0], event_id=str(uuid.uuid4()))
    unknown_type = dict(valid, event_id=str(uuid.uuid4()), type="dossier.lost")
    no_agency = {k: v for k, v in valid.items() if k != "agency_code"} | {"event_id": str(uuid.uuid4())}
    mixed = run(post(app, {"events": [unknown_type, valid, no_agency]}))
    assert mixed.status_code == 200
    body = mixed.json()
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0, 2]
    assert "unknown event type 'dossier.lost'" in body["rejected"][0]["reason"]
    assert "missing field 'agency_code'" in body["rejected"][1]["reason"]

    unauthorized = run(post(app, {"events": [valid]}, token="wrong"))
    assert unauthorized.status_code == 401
    assert unauthorized.headers["content-type"] == "application/problem+json"
    assert unauthorized.json()["status"] == 401

    for content, status in [(b"[1, 2]", 400), (b"{not json", 400), (b'{"events": {}}', 400)]:
        response = run(post(app, content=content, headers={"Content-Type": "application/json"}))
        assert response.status_code == status and response.json()["detail"]
    wrong_type = run(post(app, content=b"events", headers={"Content-Type": "text/plain"}))
    assert wrong_type.status_code == 415
    too_many = run(post(app, {"events": [valid] * 101}))
    assert too_many.status_code == 413
    too_big = run(post(app, content=b" " * 1_000_001, headers={"Content-Type": "application/json"}))
    assert too_big.status_code == 413

    found = consume_all(broker.bootstrap, topic, 1, timeout_s=5)
    assert [e.event_id for _, e in found] == [valid["event_id"]]


def test_health_readiness_and_openapi(ingest_app):
    app, _, run = ingest_app

    async def get(path):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
            return await client.get(path)

    assert run(get("/healthz")).status_code == 200
    assert run(get("/readyz")).status_code == 200
    spec = run(get("/openapi.json")).json()
    assert set(spec["paths"]["/v1/events"]["post"]["responses"]) >= {"200", "400", "401", "413", "415", "503"}


def test_two_workers_close_old_keep_alive_connections_and_lose_nothing(broker, topic_names, services, tmp_path):
    """`serve ingest` with 2 worker processes behind uvicorn: the first answer on a connection
    older than DTI_INGEST_CONNECTION_MAX_AGE_S says `Connection: close`, the client's next
    request opens a new connection, and every event sent over them arrives in Kafka."""
    events_topic, dlq_topic = topic_names
    env = service_env(tmp_path, broker.bootstrap, events_topic, dlq_topic, DTI_INGEST_WORKERS="2",
                      DTI_INGEST_CONNECTION_MAX_AGE_S="0.3")
    ingest = services("ingest", ["serve", "ingest"], env)
    port = int(env["DTI_HTTP_PORT"])
    wait_for_port("127.0.0.1", port, timeout_s=60, process=ingest.process)
    sent, closing, peers = [], 0, set()
    headers = {"Authorization": "Bearer test-token"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30,
                      limits=httpx.Limits(max_connections=1)) as client:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            event = dict(scenario.EVENTS[len(sent) % len(scenario.EVENTS)], event_id=str(uuid.uuid4()))
            response = client.post("/v1/events", json={"events": [event]})
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 1
            sent.append(event["event_id"])
            if response.headers.get("connection") == "close":
                closing += 1  # (its socket is closed by now: no address to read)
            else:
                peers.add(response.extensions["network_stream"].get_extra_info("client_addr"))
            time.sleep(0.02)
    assert closing >= 3, f"{closing} of {len(sent)} answers closed their connection"
    assert len(peers) >= closing, peers  # each close was followed by a new connection (a new client port)
    found = consume_all(broker.bootstrap, events_topic, len(sent))
    assert sorted(event.event_id for _, event in found) == sorted(sent)


def test_a_partitions_events_over_what_kafka_takes_in_a_message_go_in_several_envelopes(broker, topic_names):
    """A request's events for one partition go in one envelope unless it would be over the
    message size Apache Kafka takes by default (~1 MB): then in several, none lost."""
    events_topic, _ = topic_names
    ensure_topics(broker.bootstrap, {events_topic: 1})
    registry = load_registry(DEFAULT_AGENCIES)
    base = dict(scenario.EVENTS[0])
    raws = [dict(base, event_id=str(uuid.uuid4()), dossier_id=f"BIG-{i}", procedure_code="P" * 200)
            for i in range(5_000)]
    events = [to_event(raw, registry, "lgsp", 1) for raw in raws]
    assert 1.2 * MAX_ENVELOPE_BYTES < sum(event.ByteSize() for event in events) < 1.9 * MAX_ENVELOPE_BYTES
    publisher = KafkaPublisher(broker.bootstrap, events_topic, delivery_timeout_ms=5000)

    async def publish_and_close():
        try:
            await publisher.publish(events)
        finally:
            await publisher.close()

    asyncio.run(publish_and_close())
    sizes: list[int] = []
    found = consume_all(broker.bootstrap, events_topic, len(events), message_sizes=sizes)
    assert sorted(event.event_id for _, event in found) == sorted(raw["event_id"] for raw in raws)
    assert len(sizes) == 2 and max(sizes) <= MAX_ENVELOPE_BYTES, sizes


def test_with_kafka_away_the_publisher_is_not_ready_and_acknowledges_nothing():
    """A worker starts its producer on first use: with nothing at the address, readiness
    says no and a batch is refused within the delivery timeout; neither hangs."""
    publisher = KafkaPublisher(f"127.0.0.1:{free_port()}", "nowhere", delivery_timeout_ms=2000)
    event = to_event(dict(scenario.EVENTS[0], event_id=str(uuid.uuid4())), load_registry(DEFAULT_AGENCIES), "lgsp", 1)

    async def check():
        started = time.monotonic()
        assert await publisher.ready() is False
        with pytest.raises(NotAcknowledged):
            await publisher.publish([event])
        await publisher.close()
        return time.monotonic() - started

    assert asyncio.run(check()) < 2 * (2 + 5)


def test_dead_letters_are_listed_and_replayed_once(broker, topic_names):
    """`dti-pulse dlq list|replay` against the real broker: a dead letter's events go back to
    their entity's partition, once; what holds no readable event is counted, not sent."""
    from kafka import KafkaProducer

    from dti_pulse.dead_letters import list_dead_letters, replay
    from dti_pulse.events import partition_for
    from dti_pulse.kafka import DEAD_LETTER_REASON_HEADER

    events_topic, dlq_topic = topic_names
    ensure_topics(broker.bootstrap, {events_topic: 4, dlq_topic: 1})
    registry = load_registry(DEFAULT_AGENCIES)
    events = [to_event(raw, registry, "lgsp", 0) for raw in scenario.EVENTS[:6]]
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for value, reason in ((EventBatch(events=events[:4]).SerializeToString(), b"cannot store dossier state"),
                          (b"", b"empty message"), (b"\x08\x96\x01 garbage", b"undecodable EventBatch")):
        producer.send(dlq_topic, value=value, headers=[(DEAD_LETTER_REASON_HEADER, reason)]).get(10)
    producer.close()

    listed = list_dead_letters(broker.bootstrap, dlq_topic)
    assert [(letter.offset, letter.reason, len(letter.events())) for letter in listed] == [
        (0, "cannot store dossier state", 4), (1, "empty message", 0), (2, "undecodable EventBatch", 0)]

    assert replay(broker.bootstrap, dlq_topic, events_topic) == {"dead_letters": 3, "events": 4, "not_replayable": 2}
    found = consume_all(broker.bootstrap, events_topic, 4, timeout_s=10)
    assert sorted(e.event_id for _, e in found) == sorted(e.event_id for e in events[:4])
    assert all(partition == partition_for(entity_key(e)[1], 4) for partition, e in found)
    # Once: a second replay finds nothing new.
    assert replay(broker.bootstrap, dlq_topic, events_topic) == {"dead_letters": 0, "events": 0, "not_replayable": 0}


def test_the_watch_reads_a_groups_lag_and_the_dead_letters_from_the_broker(broker, topic_names):
    """What ranking's health reports of Kafka (dti_pulse.kafka.KafkaWatch), on the real broker."""
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

    from dti_pulse.kafka import KafkaWatch

    events_topic, dlq_topic = topic_names
    ensure_topics(broker.bootstrap, {events_topic: 2, dlq_topic: 1})
    group = f"watched-{events_topic}"
    watch = KafkaWatch(broker.bootstrap, group, events_topic, dlq_topic)
    try:
        assert (watch.read().lag, watch.read().dead_letters) == (0, 0)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        for n in range(7):
            producer.send(events_topic, value=b"x", partition=n % 2).get(10)
        producer.send(dlq_topic, value=b"bad").get(10)
        producer.close()
        seen = watch.read()
        assert (seen.lag, seen.committed, seen.dead_letters) == (7, 0, 1)
        # The group commits past 3 messages of partition 0: 4 left, and progress shows.
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
        consumer.commit({TopicPartition(events_topic, 0): OffsetAndMetadata(3, "", -1)})
        consumer.close()
        assert (watch.read().lag, watch.read().committed) == (4, 3)
    finally:
        watch.close()
    # Nothing listens: read() raises (and the next one tries afresh).
    away = KafkaWatch(f"127.0.0.1:{free_port()}", group, events_topic, dlq_topic, timeout_ms=2000)
    with pytest.raises(Exception):
        away.read()


def test_kcat_reads_what_ingest_published(broker, ingest_app):
    """Debian's kcat (librdkafka, another client lineage) talks to the broker: it lists the
    topic and reads back an envelope ingest published."""
    import shutil
    import subprocess

    from dti.events.v1.events_pb2 import EventBatch as Batch

    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is missing: `make test` installs Debian's kcat")
    app, topic, run = ingest_app
    response = run(post(app, {"events": scenario.EVENTS[:1]}))
    assert response.status_code == 200, response.text
    listed = subprocess.run([kcat, "-b", broker.bootstrap, "-L", "-t", topic, "-m", "10"], capture_output=True,
                            text=True, timeout=30)
    assert listed.returncode == 0 and f'topic "{topic}" with 4 partitions' in listed.stdout, listed.stderr
    read = subprocess.run([kcat, "-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-c", "1",
                           "-f", "%s"], capture_output=True, timeout=30)
    assert read.returncode == 0, read.stderr
    assert Batch.FromString(read.stdout).events[0].event_id == scenario.EVENTS[0]["event_id"]

from dti.events.v1.events_pb2 import EventBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from dti_pulse.events import encode_envelope, encode_envelopes, entity_key, partition_for
from tests.factories import dossier_received, dossier_status, document_signed


def test_hand_encoded_envelope_is_a_valid_event_batch():
    events = [dossier_received("D1", "2026-10-01 08:00", "2026-10-03 17:00"),
              dossier_status("D1" * 100, 9, "2026-10-02 08:00"),  # a body over 127 bytes: two-byte length
              document_signed("DOC", "2026-10-02 08:00", True, False)]
    envelope = encode_envelope([e.SerializeToString() for e in events])
    assert envelope == EventBatch(events=events).SerializeToString()
    assert list(EventBatch.FromString(envelope).events) == events
    assert encode_envelope([]) == b""


def test_partition_is_stable_per_entity():
    assert entity_key(dossier_status("D1", 2, "2026-10-02 08:00")) == ("dossier", "D1")
    assert partition_for("D1", 8) == 2215811268 % 8  # crc32, the same in every process
    assert {partition_for(f"D{i}", 8) for i in range(100)} == set(range(8))


def test_envelopes_by_partition_keep_each_entity_on_its_partition():
    from dti_pulse.events import envelopes_by_partition

    events = [dossier_status(f"D{i % 5}", 2, "2026-10-02 08:00") for i in range(20)]
    envelopes = envelopes_by_partition(events, 4)
    decoded = {p: list(EventBatch.FromString(data).events) for p, data in envelopes}
    assert len(envelopes) == len(decoded)  # one envelope a partition when they are small
    assert sorted(e.event_id for batch in decoded.values() for e in batch) == sorted(e.event_id for e in events)
    for partition, batch in decoded.items():
        assert all(partition_for(e.dossier_status.dossier_id, 4) == partition for e in batch)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3_000), min_size=1, max_size=60),
       st.integers(min_value=64, max_value=20_000))
def test_envelopes_keep_under_the_size_kafka_takes_and_lose_no_event(padding, max_bytes):
    """A partition's events over max_bytes go in several envelopes, each at most max_bytes
    (an event bigger than that alone in one of its own), in order, none lost."""
    events = [dossier_status(f"D{i}", 2, "2026-10-02 08:00") for i in range(len(padding))]
    for event, pad in zip(events, padding):
        event.dossier_status.dossier_id = "D" * (pad + 1)
    serialized = [event.SerializeToString() for event in events]
    envelopes = encode_envelopes(serialized, max_bytes)
    assert [e.SerializeToString() for data in envelopes for e in EventBatch.FromString(data).events] == serialized
    for data in envelopes:
        assert len(data) <= max_bytes or len(EventBatch.FromString(data).events) == 1
    whole = encode_envelope(serialized)
    assert len(envelopes) == 1 if len(whole) <= max_bytes or len(events) == 1 else len(envelopes) > 1
    # As few as keep each under: no two neighbours would fit in one.
    for first, second in zip(envelopes, envelopes[1:]):
        assert len(first) + len(second) > max_bytes

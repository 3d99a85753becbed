from dti.events.v1.events_pb2 import EventBatch
from dti_pulse.events import encode_envelope, entity_key, partition_for
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
    decoded = {p: list(EventBatch.FromString(data).events) for p, data in envelopes.items()}
    assert sorted(e.event_id for batch in decoded.values() for e in batch) == sorted(e.event_id for e in events)
    for partition, batch in decoded.items():
        assert all(partition_for(e.dossier_status.dossier_id, 4) == partition for e in batch)

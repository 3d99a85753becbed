import asyncio
import uuid

import pytest

from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.registry import load_registry
from services.ingest.dedup import RecentIds
from services.ingest.publisher import NotAcknowledged
from services.ingest.service import IngestService


class FakePublisher:
    def __init__(self, fail=False):
        self.published, self.fail = [], fail

    async def publish(self, events):
        if self.fail:
            raise NotAcknowledged("broker away")
        self.published.extend(events)


def apology(event_id=None):
    return {"event_id": event_id or str(uuid.uuid4()), "type": "dossier.apology",
            "occurred_at": "2026-10-01T09:00:00+07:00", "agency_code": "000.00.05.H56", "dossier_id": "D1"}


def service(publisher, capacity=100):
    return IngestService(load_registry(DEFAULT_AGENCIES), publisher, RecentIds(capacity))


def test_duplicates_are_accepted_but_published_once():
    publisher = FakePublisher()
    ingest = service(publisher)
    same = apology()
    result = asyncio.run(ingest.ingest([same, same, apology(), {"type": "nope"}], "bus"))
    assert result.accepted == 3 and result.duplicates == 1
    assert result.rejected == [{"index": 3, "reason": result.rejected[0]["reason"]}]
    assert len(publisher.published) == 2 and publisher.published[0].source == "bus"
    again = asyncio.run(ingest.ingest([same], "bus"))
    assert again.accepted == 1 and again.duplicates == 1 and len(publisher.published) == 2


def test_nothing_is_remembered_when_kafka_did_not_acknowledge():
    failing = FakePublisher(fail=True)
    ingest = service(failing)
    event = apology()
    with pytest.raises(NotAcknowledged):
        asyncio.run(ingest.ingest([event], "bus"))
    ingest.publisher = FakePublisher()
    assert asyncio.run(ingest.ingest([event], "bus")).duplicates == 0


def test_recent_ids_are_bounded_and_keep_the_newest():
    ids = RecentIds(100)
    ids.add_all(f"id{i}" for i in range(1000))
    assert len(ids) <= 100
    assert all(f"id{i}" in ids for i in range(950, 1000))  # at least the last capacity / 2
    assert "id0" not in ids and "id899" not in ids

import asyncio
import json
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
    return IngestService(load_registry(DEFAULT_AGENCIES), publisher, capacity)


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


def test_event_ids_are_deduplicated_per_source():
    publisher = FakePublisher()
    ingest = service(publisher)
    same = apology()
    assert asyncio.run(ingest.ingest([same], "other")).duplicates == 0
    # The bus's event of the id another source used first is still published.
    bus = asyncio.run(ingest.ingest([same], "bus"))
    assert (bus.accepted, bus.duplicates) == (1, 0)
    assert [e.source for e in publisher.published] == ["other", "bus"]
    assert asyncio.run(ingest.ingest([same], "bus")).duplicates == 1


def test_a_source_sends_only_for_the_agencies_it_owns():
    from dti_pulse.scopes import parse_scopes
    from services.ingest.sources import SourceScope

    scope = SourceScope(parse_scopes("portal=000.00.05.*|000.00.07.H56, bus=*"))
    assert scope.allows("portal", "000.00.05.H56") and scope.allows("portal", "000.00.07.H56")
    assert not scope.allows("portal", "000.00.19.H56") and not scope.allows("stranger", "000.00.05.H56")
    assert scope.allows("bus", "anything") and SourceScope().allows("anyone", "any")
    with pytest.raises(ValueError, match="name=CODE"):
        parse_scopes("portal=")
    with pytest.raises(ValueError, match="may only end"):
        parse_scopes("portal=000.*.05")

    publisher = FakePublisher()
    ingest = IngestService(load_registry(DEFAULT_AGENCIES), publisher, 100, sources=scope)
    own, foreign = apology(), {**apology(), "agency_code": "000.00.19.H56"}
    body = json.dumps({"events": [own, foreign]}).encode()
    assert ingest.valid_batch(body, "portal") is None  # the fast path leaves the refusal to the per-event one
    result = asyncio.run(ingest.ingest([own, foreign], "portal"))
    assert result.accepted == 1 and result.rejected == [
        {"index": 1, "reason": "source 'portal' may not send events for agency '000.00.19.H56'"}]
    assert [e.agency_code for e in publisher.published] == ["000.00.05.H56"]
    assert len(ingest.valid_batch(json.dumps({"events": [own]}).encode(), "portal")) == 1
    assert asyncio.run(ingest.ingest([own], "stranger")).rejected[0]["reason"].startswith("source 'stranger'")

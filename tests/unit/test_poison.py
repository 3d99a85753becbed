"""Poison never stops, never stalls, never sneaks in: what is read back from Kafka is held to
ingest's rules, anything else goes to the dead letters with its reason, and the rest flows.
Also the bounds ingest puts on instants and the periods ranking answers for."""
import asyncio
import time
import uuid

import pytest
from hypothesis import given, settings, strategies as st
from starlette.testclient import TestClient

from dti.events.v1.events_pb2 import Event, EventBatch
from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.registry import load_registry
from dti_pulse.simulator import BusSimulator
from services.aggregator.processor import Aggregator
from services.ingest.http import create_app
from services.ingest.service import IngestService
from services.ingest.validation import (EventRules, Invalid, check_event, latest_allowed_ms, to_event,
                                        valid_batch)
from services.ranking.periods import BadPeriod, parse_period
from tests import scenario
from tests.fakes import DeadLetters, FakeStore, envelope

REGISTRY = load_registry(DEFAULT_AGENCIES)
INT64_MIN = -(2 ** 63)


def ingested(raw_events):
    now_ms = int(time.time() * 1000)
    return [to_event(raw, REGISTRY, "lgsp", now_ms) for raw in raw_events]


def test_every_event_ingest_builds_passes_the_aggregators_check():
    events = ingested(scenario.EVENTS + BusSimulator(REGISTRY, seed=3).batch(3000))
    latest = latest_allowed_ms()
    for event in events:
        check_event(event, REGISTRY, latest)


def poisoned():
    """(name, event that skipped ingest, the words its reason holds)."""
    good = ingested([scenario.EVENTS[0]])[0]
    assert good.WhichOneof("body") == "dossier_received"

    def variant(change):
        event = Event()
        event.CopyFrom(good)
        event.event_id = str(uuid.uuid4())
        change(event)
        return event

    status = ingested([{**scenario.EVENTS[0], "type": "dossier.status", "status": 9}])[0]
    status.dossier_status.status = 99
    return [
        ("status 99", status, "field 'status'"),
        ("a 900 KB id", variant(lambda e: setattr(e.dossier_received, "dossier_id", "x" * 900_000)), "longer than 512"),
        ("an agency not in the registry", variant(lambda e: setattr(e, "agency_code", "999.99.99.H56")),
         "unknown agency"),
        ("occurred_at_ms = INT64_MIN", variant(lambda e: setattr(e, "occurred_at_ms", INT64_MIN)),
         "outside the years"),
        ("a year from now", variant(lambda e: setattr(e, "occurred_at_ms", int(time.time() * 1000) + 366 * 86_400_000)),
         "further in the future"),
        ("no body", variant(lambda e: e.ClearField("dossier_received")), "no body"),
        ("an id that is no UUID", variant(lambda e: setattr(e, "event_id", "not-a-uuid")), "event_id"),
        ("channel 300", variant(lambda e: setattr(e.dossier_received, "channel", 300)), "field 'channel'"),
        ("no source", variant(lambda e: setattr(e, "source", "")), "field 'source'"),
    ]


@pytest.mark.parametrize("name,event,reason", poisoned(), ids=[case[0] for case in poisoned()])
def test_the_check_refuses_what_ingest_would_have_refused(name, event, reason):
    with pytest.raises(Invalid, match=reason):
        check_event(event, REGISTRY, latest_allowed_ms())


def test_poison_goes_to_the_dead_letters_with_its_reason_and_the_rest_is_folded():
    store, dead = FakeStore(), DeadLetters()
    aggregator = Aggregator(store, dead, rules=EventRules(REGISTRY))
    good = ingested(scenario.EVENTS)
    unknown_fields_only = b"\xfa\x3e\x03abc"  # field 1000, length-delimited: an EventBatch of no events
    cases = poisoned()
    payloads = [None, b"", unknown_fields_only, b"\x08\x96\x01 garbage", *(envelope(e) for _, e, _ in cases),
                envelope(*good)]
    stats = asyncio.run(aggregator.process(payloads))

    reasons = [reason for _, reason in dead]
    assert len(dead) == 4 + len(cases) == stats.dead_letters
    assert "empty message" in reasons[0] and "empty message" in reasons[1]
    assert "no events" in reasons[2] and dead[2][0] == unknown_fields_only
    assert "undecodable" in reasons[3]
    for (name, event, words), (payload, reason) in zip(cases, dead[4:]):
        assert words in reason, name
        assert [e.event_id for e in EventBatch.FromString(payload).events] == [event.event_id]
    assert stats.new_events == len({e.event_id for e in good})
    assert {key[1] for key in store.rows if key[0] == "dossier"} == {f"D{n}" for n in range(1, 8)}


def test_events_from_the_future_or_outside_the_years_are_refused_by_both_ingest_paths():
    now_ms = int(time.time() * 1000)
    base = scenario.EVENTS[0]
    cases = {"2030-01-01T00:00:00+07:00": "further in the future", "9999-12-31T23:00:00+07:00": "outside the years",
             "1999-06-01T00:00:00+07:00": "outside the years"}
    for occurred_at, words in cases.items():
        raw = {**base, "occurred_at": occurred_at}
        assert valid_batch(f'{{"events": [{__import__("json").dumps(raw)}]}}'.encode(), REGISTRY, "s", now_ms,
                           now_ms + 86_400_000) is None
        with pytest.raises(Invalid, match=words):
            to_event(raw, REGISTRY, "s", now_ms, now_ms + 86_400_000)
    # Within the allowed skew: accepted.
    soon = {**base, "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now_ms / 1000 + 3600))}
    assert to_event(soon, REGISTRY, "s", now_ms, now_ms + 86_400_000).occurred_at_ms > now_ms


@pytest.mark.parametrize("label", ["9999-12-31", "0001", "9999", "0001-01-01", "9999-Q4", "last:99999d",
                                   "1999-12", "2100"])
def test_periods_outside_the_years_are_bad_periods(label):
    with pytest.raises(BadPeriod):
        parse_period(label)


class _Publisher:
    async def publish(self, events):
        pass

    async def ready(self):
        return True


def test_no_body_gets_a_server_error_from_ingest():
    service = IngestService(REGISTRY, _Publisher(), 100)
    app = create_app(service, {"t": "lgsp"}, _Publisher().ready, 32 * 1024 * 1024, 10_000)
    client = TestClient(app, raise_server_exceptions=False)
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    deep = b'{"events": [{"extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    nested_in_event = ('{"events": [' + __import__("json").dumps({**scenario.EVENTS[0], "extra": None})[:-1]
                       + ', "deep": ' + "[" * 5000 + "]" * 5000 + "}]}").encode()
    bodies = [deep, nested_in_event, b"", b"{", b"[]", b'{"events": 1}', b'{"events": [1, "x", null]}',
              b"\xff\xfe", b'{"events": [{"type": "dossier.status", "occurred_at": 5}]}']
    for body in bodies:
        answer = client.post("/v1/events", content=body, headers=headers)
        assert answer.status_code < 500, (body[:60], answer.status_code, answer.text[:200])


@settings(max_examples=400, deadline=None)
@given(label=st.one_of(st.text(max_size=20), st.from_regex(r"\A\d{1,5}(-(Q\d|\d{1,3})(-\d{1,3})?)?\Z"),
                       st.from_regex(r"\Alast:\d{1,6}d\Z")))
def test_any_period_label_is_a_period_or_a_bad_period(label):
    """No label reaches gRPC as anything but INVALID_ARGUMENT (BadPeriod) or a period within
    the years events may carry."""
    try:
        period = parse_period(label)
    except BadPeriod:
        return
    assert 2000 <= period.first_day.year and period.last_day.year <= 2099

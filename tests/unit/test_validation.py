import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.registry import load_registry
from dti_pulse.events import MAX_ENVELOPE_BYTES
from services.ingest.validation import (MAX_CODE_CHARS, MAX_RECIPIENTS, MAX_TEXT_CHARS, Invalid, parse_due_ms,
                                       parse_instant_ms, to_event, valid_batch)

REGISTRY = load_registry(DEFAULT_AGENCIES)
DEPARTMENT = "000.00.05.H56"


def event(kind, **fields):
    base = {"event_id": str(uuid.uuid4()), "type": kind, "occurred_at": "2026-10-01T09:00:00+07:00",
            "agency_code": DEPARTMENT}
    base.update(fields)
    return base


def validate(raw):
    return to_event(raw, REGISTRY, "bus", 1_000)


def test_dossier_received_maps_every_field():
    parsed = validate(event("dossier.received", dossier_id="H56.1", procedure_code="1.010708", channel=2,
                            service_level="full_online", received_at="2026-10-01T09:00:00+07:00",
                            due_at="2026-10-03T17:00:00+07:00", has_fee=True))
    body = parsed.dossier_received
    assert parsed.WhichOneof("body") == "dossier_received"
    assert parsed.source == "bus" and parsed.ingested_at_ms == 1_000
    assert parsed.occurred_at_ms == 1_790_820_000_000  # 2026-10-01T02:00:00Z
    assert (body.dossier_id, body.procedure_code, body.channel, body.service_level, body.has_fee) == \
        ("H56.1", "1.010708", 2, "full_online", True)
    assert body.due_at_ms - body.received_at_ms == (2 * 24 + 8) * 3600 * 1000


def test_digitisation_sync_and_result_map_every_field():
    received = validate(event("dossier.received", dossier_id="H56.1", procedure_code="1.0", service_level="partial",
                              received_at="2026-10-01T09:00:00+07:00", due_at="2026-10-03T17:00:00+07:00",
                              digitized_on_receipt=True, citizen_data_used=True)).dossier_received
    assert (received.digitized_on_receipt, received.reused_digitized_data, received.citizen_data_used) == \
        (True, False, True)
    assert validate(event("dossier.synced", dossier_id="H56.1")).WhichOneof("body") == "dossier_synced"
    result = validate(event("dossier.result", dossier_id="H56.1", electronic=False))
    assert result.WhichOneof("body") == "dossier_result"
    assert (result.dossier_result.electronic, result.dossier_result.shared_for_reuse) == (False, False)
    with pytest.raises(Invalid, match="missing field 'electronic'"):
        validate(event("dossier.result", dossier_id="H56.1"))
    with pytest.raises(Invalid, match="digitized_on_receipt"):
        validate(event("dossier.received", dossier_id="H56.1", procedure_code="1.0", service_level="partial",
                       received_at="2026-10-01T09:00:00+07:00", due_at="2026-10-03T17:00:00+07:00",
                       digitized_on_receipt="yes"))


def test_channel_defaults_to_in_person_and_electronic_to_true():
    parsed = validate(event("dossier.received", dossier_id="H56.1", procedure_code="1.0", service_level="partial",
                            received_at="2026-10-01T09:00:00+07:00", due_at="2026-10-03T17:00:00+07:00"))
    assert parsed.dossier_received.channel == 1
    sent = validate(event("document.sent", document_id="X,2026/10/01,1/QĐ", from_agency=DEPARTMENT, to_agencies=[]))
    assert sent.document_sent.electronic is True and sent.document_sent.classified is False


def test_signed_event_with_both_flags_false_still_has_a_body():
    parsed = validate(event("document.signed", document_id="", personal_signature=False, agency_signature=False)
                      | {"document_id": "D1"})
    assert parsed.WhichOneof("body") == "document_signed"
    assert not parsed.document_signed.personal_signature


@pytest.mark.parametrize("raw, reason", [
    (event("dossier.teleported", dossier_id="x"), "unknown event type 'dossier.teleported'"),
    (event("dossier.status", status=9), "missing field 'dossier_id'"),
    (event("dossier.status", dossier_id="x", status=11), "field 'status' must be one of"),
    (event("dossier.status", dossier_id="x", status=True), "field 'status' must be one of"),
    (event("dossier.paid", dossier_id="x", online="yes"), "field 'online' must be true or false"),
    (event("dossier.rated", dossier_id="x", satisfied=True) | {"event_id": "not-a-uuid"}, "must be a UUID"),
    (event("dossier.apology", dossier_id="x") | {"occurred_at": "2026-10-01T09:00:00"}, "UTC offset"),
    (event("dossier.apology", dossier_id="x") | {"occurred_at": "yesterday"}, "not an RFC 3339 timestamp"),
    (event("dossier.apology", dossier_id="x") | {"agency_code": "000.99.99.H56"}, "unknown agency '000.99.99.H56'"),
    # districts ended with the 2025 reform (docs/domain.md, Sources)
    (event("dossier.apology", dossier_id="x") | {"agency_code": "000.01.00.H56"}, "was not in service on 2026-10-01"),
    (event("document.status", document_id="d", status_code="07"), "field 'status_code' must be one of"),
    (event("document.status", document_id="d", status_code=["06"]), "field 'status_code' must be one of"),
    (event("document.sent", document_id="d", from_agency=DEPARTMENT, to_agencies="000.00.01.H56"),
     "'to_agencies' must be a list"),
    (event("dossier.received", dossier_id="x", procedure_code="p", service_level="level4",
           received_at="2026-10-01T09:00:00+07:00", due_at="2026-10-03T17:00:00+07:00"), "'service_level' must be one of"),
    (event("dossier.received", dossier_id="x", procedure_code="p", service_level="partial",
           received_at="2026-10-03T09:00:00+07:00", due_at="2026-10-01T17:00:00+07:00"), "'due_at' is before"),
    ("just a string", "must be a JSON object"),
])
def test_invalid_events_are_refused_with_a_readable_reason(raw, reason):
    with pytest.raises(Invalid) as refused:
        validate(raw)
    assert reason in str(refused.value)


def test_texts_and_recipients_are_bounded_so_that_any_event_fits_an_envelope():
    """The longest event validation takes, in 3-byte characters, is far under what one Kafka
    message takes; one character more anywhere is refused with its reason."""
    from datetime import date

    from dti_pulse.registry import Agency, Registry

    text, code = "ệ" * MAX_TEXT_CHARS, "ệ" * MAX_CODE_CHARS
    # An agency of the longest code, in a registry of its own: every party must be registered.
    longest_codes = Registry([*REGISTRY.all(), Agency(code, "longest", "department", "", date(2000, 1, 1), None)])
    longest = to_event(event("document.sent", document_id=text, from_agency=code, to_agencies=[code] * MAX_RECIPIENTS,
                             document_type=text, promulgated_on="2026-10-01", due_date="2026-10-31"),
                       longest_codes, "bus", 1_000)
    assert len("ệ".encode()) == 3 and longest.ByteSize() < MAX_ENVELOPE_BYTES / 4
    assert validate(event("dossier.status", dossier_id=text, status=2)).dossier_status.dossier_id == text
    for raw, reason in [
        (event("dossier.status", dossier_id=text + "x", status=2), f"field 'dossier_id' is longer than {MAX_TEXT_CHARS}"),
        (event("document.sent", document_id="D", from_agency=code + "x", to_agencies=[]),
         f"field 'from_agency' is longer than {MAX_CODE_CHARS}"),
        (event("document.sent", document_id="D", from_agency="A", to_agencies=[code + "x"]),
         f"field 'to_agencies' holds at most {MAX_RECIPIENTS} codes of at most {MAX_CODE_CHARS} characters"),
        (event("document.sent", document_id="D", from_agency="A", to_agencies=["A"] * (MAX_RECIPIENTS + 1)),
         "field 'to_agencies' holds at most"),
        (event("document.sent", document_id="D", from_agency="A", to_agencies=[], document_type=text + "x"),
         "field 'document_type' is longer than"),
    ]:
        with pytest.raises(Invalid, match=reason):
            validate(raw)
        assert valid_batch(batch_body([raw]), REGISTRY, "bus", 1_000) is None


def test_a_procedure_listing_states_every_fact_unless_it_withdraws_the_procedure():
    listed = validate(event("procedure.listed", procedure_id="1.010708", full_content=True,
                            citizen_data_connected=True, certifies_copies=False, electronic_copy=False))
    body = listed.procedure_listed
    assert (body.procedure_id, body.withdrawn, body.full_content, body.citizen_data_connected) == \
        ("1.010708", False, True, True)
    with pytest.raises(Invalid, match="missing field 'electronic_copy'"):
        validate(event("procedure.listed", procedure_id="1.010708", full_content=True,
                       citizen_data_connected=True, certifies_copies=False))
    withdrawn = validate(event("procedure.listed", procedure_id="1.010708", withdrawn=True)).procedure_listed
    assert withdrawn.withdrawn and not withdrawn.full_content
    with pytest.raises(Invalid, match="'withdrawn' must be true or false"):
        validate(event("procedure.listed", procedure_id="1.010708", withdrawn="yes"))


def test_status_code_accepts_a_number_and_pads_it():
    assert validate(event("document.status", document_id="d", status_code=6)).document_status.status_code == "06"


def test_due_date_is_the_end_of_that_local_day():
    end_of_day = parse_due_ms("2026-10-10", "due_date")
    assert end_of_day + 1 == parse_instant_ms("2026-10-11T00:00:00+07:00", "x")


@settings(max_examples=500, deadline=None)
@given(instant=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 31)),
       offset_minutes=st.integers(min_value=-16 * 60 + 1, max_value=16 * 60 - 1),
       offset_seconds=st.sampled_from([0, 0, 0, 30]),
       timespec=st.sampled_from(["seconds", "milliseconds", "microseconds"]))
def test_an_instant_is_its_exact_millisecond(instant, offset_minutes, offset_seconds, timespec):
    """Floored Unix milliseconds, by datetime's own exact arithmetic; int(timestamp() * 1000)
    gave one millisecond less for ~1 % of instants."""
    zone = timezone(timedelta(minutes=offset_minutes, seconds=offset_seconds))
    text = instant.replace(tzinfo=zone).isoformat(timespec=timespec)
    exact = (datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    assert parse_instant_ms(text, "occurred_at") == exact
    assert parse_instant_ms(text, "occurred_at") == exact  # the offset now comes from the cache


def test_instants_that_float_rounding_got_wrong():
    assert parse_instant_ms("2004-02-01T07:00:00.011+07:00", "x") == 1_075_593_600_011
    assert parse_instant_ms("2000-01-01T00:00:00.000Z", "x") == 946_684_800_000


@pytest.mark.parametrize("text", ["1969-12-31T23:59:59.999Z", "1999-12-31T23:59:59.999Z", "2100-01-01T00:00:00Z",
                                  "9999-12-31T23:59:59+07:00", "0001-01-01T00:00:00Z"])
def test_instants_outside_the_years_periods_express_are_refused(text):
    with pytest.raises(Invalid, match="outside the years 2000-2099"):
        parse_instant_ms(text, "occurred_at")


def test_a_cached_due_date_is_the_same_as_a_new_one():
    assert parse_due_ms("2027-02-28", "due_date") == parse_due_ms("2027-02-28", "due_date")
    assert parse_due_ms("2027-02-28", "due_date") + 1 == parse_instant_ms("2027-03-01T00:00:00+07:00", "x")


def test_event_id_is_canonicalised():
    raw = event("dossier.apology", dossier_id="x", event_id="0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9")
    assert validate(raw).event_id == "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


VALID = [
    event("dossier.received", dossier_id="H56.1", procedure_code="1.010708", channel=2, service_level="full_online",
          received_at="2026-10-01T09:00:00+07:00", due_at="2026-10-03T17:00:00+07:00", has_fee=True,
          digitized_on_receipt=True, reused_digitized_data=False, citizen_data_used=True),
    event("dossier.status", dossier_id="H56.1", status=9),
    event("dossier.synced", dossier_id="H56.1"),
    event("dossier.result", dossier_id="H56.1", electronic=True, shared_for_reuse=True),
    event("dossier.paid", dossier_id="H56.1", online=True),
    event("dossier.rated", dossier_id="H56.1", satisfied=False),
    event("dossier.apology", dossier_id="H56.1"),
    event("document.sent", document_id="D,2026/10/01,1/QĐ", from_agency=DEPARTMENT, to_agencies=["000.00.01.H56"],
          document_type="QĐ", promulgated_on="2026-10-01", due_date="2026-10-10", business_type=0,
          classified=False, electronic=True),
    event("document.received", document_id="D,2026/10/01,1/QĐ", from_agency=DEPARTMENT, to_agencies=[DEPARTMENT]),
    event("document.signed", document_id="D", personal_signature=True, agency_signature=False),
    event("document.status", document_id="D", status_code="06"),
    event("petition.received", petition_id="P1", received_at="2026-10-01T08:00:00+07:00",
          due_at="2026-10-11T17:00:00+07:00"),
    event("petition.answered", petition_id="P1"),
    event("petition.rated", petition_id="P1", satisfied=True),
    event("publication.due", publication_id="U1", procedure_code="1.010708", change="new",
          decided_at="2026-10-01T08:00:00+07:00", due_at="2026-10-06T17:00:00+07:00"),
    event("publication.done", publication_id="U1"),
    event("procedure.listed", procedure_id="1.010708", full_content=True, citizen_data_connected=False,
          certifies_copies=True, electronic_copy=True),
    event("procedure.listed", procedure_id="1.010709", withdrawn=True),
]
# What a JSON body can hold: no NaN nor infinity (json.dumps would write `Infinity`, which is
# not JSON; ingest answers 400 to such a body before either path sees an event).
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers()
                           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=5)


@settings(max_examples=400, deadline=None)
@given(base=st.sampled_from(VALID), data=st.data())
def test_any_json_value_in_any_field_is_accepted_or_refused_with_a_reason(base, data):
    """Never another exception: one would turn the whole batch into a 500."""
    raw = dict(base)
    for name in data.draw(st.lists(st.sampled_from(sorted(raw)), min_size=1, max_size=3, unique=True)):
        if data.draw(st.booleans()):
            raw[name] = data.draw(JSON_VALUES)
        else:
            del raw[name]
    try:
        parsed = validate(raw)
    except Invalid as refused:
        assert str(refused)
    else:
        assert parsed.WhichOneof("body") is not None and parsed.event_id


OPTIONAL_FIELDS = {"channel", "has_fee", "document_type", "promulgated_on", "due_date", "business_type",
                   "classified", "electronic"}


def per_event(raws):
    """to_event of each event: its bytes, or None where it is refused."""
    out = []
    for raw in raws:
        try:
            out.append(validate(raw).SerializeToString())
        except Invalid:
            out.append(None)
    return out


def batch_body(raws) -> bytes:
    return json.dumps({"events": raws}).encode()  # json, not orjson: it writes ints of any size


def same_answers(raws) -> bool:
    """valid_batch gives exactly what to_event gives, event by event, or gives up (None)
    where to_event refuses one of them; it never gives up on a batch accepted whole."""
    expected = per_event(raws)
    fast = valid_batch(batch_body(raws), REGISTRY, "bus", 1_000)
    if None in expected:
        return fast is None
    return fast is not None and [event.SerializeToString() for event in fast] == expected


def test_a_batch_of_valid_events_is_validated_at_once_as_event_by_event():
    fast = valid_batch(batch_body(VALID), REGISTRY, "bus", 1_000)
    assert fast is not None
    assert [event.SerializeToString() for event in fast] == per_event(VALID)


@pytest.mark.parametrize("body", [b"", b"[]", b'{"events": {}}', b'{"events": [1]}', b'{"events": [{}]}',
                                  b'{"event": []}', b"not json"])
def test_a_body_that_is_not_a_batch_of_events_is_left_to_the_per_event_path(body):
    assert valid_batch(body, REGISTRY, "bus", 1_000) is None


@settings(max_examples=600, deadline=None)
@given(bases=st.lists(st.sampled_from(VALID), min_size=1, max_size=4), data=st.data())
def test_the_batch_path_gives_what_the_per_event_path_gives_or_gives_up(bases, data):
    """valid_batch may only give up (None) or give exactly what to_event gives, event by
    event; and it must not give up on a batch that to_event accepts whole."""
    raws = []
    for base in bases:
        raw = dict(base, event_id=str(uuid.uuid4()))
        if data.draw(st.booleans()):
            names = sorted(set(raw) | OPTIONAL_FIELDS)
            for name in data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
                if data.draw(st.booleans()):
                    raw[name] = data.draw(JSON_VALUES)
                else:
                    raw.pop(name, None)
        raws.append(raw)
    assert same_answers(raws), raws


@pytest.mark.parametrize("event_id", [
    "{0}\n{0}", "{0}\n", "\n{0}", "{0} ", "{{{0}}}", "{0}".upper(), "{0}-0", "",
])
def test_odd_event_ids_in_a_batch_give_the_same_answers_both_ways(event_id):
    """The batch's ids are matched as one text of lines: an id holding a line break must not
    pass as two ids, and the others' order must hold."""
    ids = [str(uuid.uuid4()) for _ in VALID]
    raws = [dict(raw, event_id=i) for raw, i in zip(VALID, ids)]
    raws[1]["event_id"] = event_id.format(ids[1])
    assert same_answers(raws), raws
    fast = valid_batch(batch_body(raws), REGISTRY, "bus", 1_000)
    if fast is not None:
        assert [event.event_id for event in fast] == [raw["event_id"].lower() for raw in raws]


ODD_VALUES = [None, "", " ", 0, 1, 2, 4, 11, -1, True, False, 1.0, "06", 6, 7, [], ["x"], [""], {}, "2026-10-01",
              "2026-10-01T09:00:00+07:00", "2026-10-01T09:00:00", "2026-13-01", 10**30,
              "x" * 64, "x" * 65, "x" * 512, "x" * 513, ["A" * 64], ["A" * 65], ["A"] * 1000, ["A"] * 1001]


def test_each_field_left_out_nulled_or_odd_gives_the_same_answer_both_ways():
    """Every field of every valid example, and every optional one, left out or set to each
    odd value: the batch path gives what the per-event path gives, or gives up where it
    refuses (hypothesis above explores further; this makes sure of the defaults)."""
    differing = []
    for base in VALID:
        for name in sorted((set(base) | OPTIONAL_FIELDS) - {"type"}):
            variants = [{k: v for k, v in base.items() if k != name}] + [dict(base, **{name: v}) for v in ODD_VALUES]
            differing += [raw for raw in variants if not same_answers([raw])]
    assert not differing, differing[:5]


@pytest.mark.parametrize("parties, reason", [
    ({"from_agency": "999.99.99.X00", "to_agencies": [DEPARTMENT]}, "unknown agency '999.99.99.X00' in 'from_agency'"),
    ({"from_agency": DEPARTMENT, "to_agencies": ["000.00.07.H56", "made-up"]}, "unknown agency 'made-up' in 'to_agencies'"),
])
def test_every_party_of_a_document_is_a_registered_agency(parties, reason):
    from services.ingest.validation import check_event

    raw = event("document.sent", document_id="D-1", **parties)
    with pytest.raises(Invalid, match=reason):
        validate(raw)
    assert valid_batch(batch_body([raw]), REGISTRY, "bus", 1_000) is None
    # The aggregator holds what it reads from Kafka to the same rule.
    forged = validate(event("document.sent", document_id="D-1", from_agency=DEPARTMENT, to_agencies=[DEPARTMENT]))
    forged.document_sent.to_agencies.append(parties["to_agencies"][-1])
    forged.document_sent.from_agency = parties["from_agency"]
    with pytest.raises(Invalid, match=reason):
        check_event(forged, REGISTRY, 10**13)

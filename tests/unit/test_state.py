from hypothesis import given, settings, strategies as st

from dti_pulse.state import (day_pairs, placement, processing_end, state_key, summarize, summarize_document,
                             summarize_dossier)
from dti_pulse.localtime import local_day
from tests.factories import (dossier_paid, dossier_rated, dossier_received, dossier_result, dossier_status,
                             dossier_synced, document_signed, document_status, document_transfer, ms,
                             petition_answered, petition_rated, petition_received, procedure_listed,
                             publication_done, publication_due)

HOUR = 3600 * 1000


def test_resolved_time_ends_processing_even_if_result_returned_first():
    end = processing_end([(1, 2), (5, 10), (7, 9)])
    assert end.end_at_ms == 7


def test_result_returned_then_stopped_or_not_accepted():
    assert processing_end([(1, 2), (5, 10), (9, 8)]).end_at_ms == 5
    assert processing_end([(1, 1), (4, 3)]).end_at_ms == 4


def test_withdrawal_ends_processing_only_after_acceptance():
    assert processing_end([(1, 1), (3, 7)]).end_at_ms is None
    assert processing_end([(1, 2), (3, 7)]).end_at_ms == 3


def test_single_trailing_supplement_request_is_the_end():
    end = processing_end([(1, 2), (4, 5)])
    assert end.end_at_ms == 4 and end.supplement_count == 1 and end.paused_ms == 0


def test_waiting_for_the_citizen_is_paused_until_the_next_status():
    end = processing_end([(0, 2), (10, 5), (25, 4), (40, 9)])
    assert end.end_at_ms == 40 and end.paused_ms == 15


def test_dossier_summary_pushes_the_due_time_back_by_the_pause():
    events = [dossier_received("D3", "2026-10-10 08:00", "2026-10-12 17:00", fee=True),
              dossier_status("D3", 2, "2026-10-10 09:00"), dossier_status("D3", 5, "2026-10-11 09:00"),
              dossier_status("D3", 4, "2026-10-14 09:00"), dossier_status("D3", 9, "2026-10-14 15:00"),
              dossier_paid("D3", False, "2026-10-14 15:00"), dossier_rated("D3", False, "2026-10-15 08:00")]
    summary = summarize_dossier("D3", events)
    assert summary.has_end and summary.end_at_ms == ms("2026-10-14 15:00")
    assert summary.paused_ms == 72 * HOUR
    assert summary.due_effective_ms == ms("2026-10-15 17:00")
    assert (summary.paid, summary.paid_online, summary.rated, summary.satisfied) == (1, 0, 1, 0)
    assert summary.late_forced == 0 and summary.event_count == 7


def test_two_supplement_requests_force_late():
    events = [dossier_received("D5", "2026-10-25 08:00", "2026-10-27 17:00"),
              dossier_status("D5", 5, "2026-10-26 08:00"), dossier_status("D5", 4, "2026-10-26 10:00"),
              dossier_status("D5", 5, "2026-10-27 08:00"), dossier_status("D5", 9, "2026-10-27 09:00")]
    assert summarize_dossier("D5", events).late_forced == 1


def test_statuses_without_a_received_event_are_kept_but_not_tied_to_a_period():
    summary = summarize_dossier("D6", [dossier_status("D6", 9, "2026-10-02 08:00")])
    assert summary.has_received == 0 and summary.has_end == 1


def test_document_summary_for_sender_and_recipient():
    sent = summarize_document("DOC1", "000.00.05.H56", [
        document_transfer("document_sent", "DOC1", "2026-10-02 08:00"),
        document_signed("DOC1", "2026-10-02 08:01", True, False)])
    assert (sent.sent, sent.received, sent.electronic, sent.personal_signature, sent.agency_signature) == (1, 0, 1, 1, 0)
    received = summarize_document("DOC6", "000.00.05.H56", [
        document_status("DOC6", "06", "2026-10-12 08:00"),
        document_transfer("document_received", "DOC6", "2026-10-07 08:00", due_at="2026-10-08 23:59")])
    assert received.received and received.has_due and received.completed
    assert received.completed_at_ms == ms("2026-10-12 08:00")


def test_state_key_separates_the_two_sides_of_a_document():
    out = document_transfer("document_sent", "DOC1", "2026-10-02 08:00", agency="000.00.01.H56")
    into = document_transfer("document_received", "DOC1", "2026-10-02 08:00", agency="000.00.02.H56")
    assert state_key(out) != state_key(into)
    assert state_key(dossier_status("D1", 2, "2026-10-02 08:00")) == ("dossier", "D1")


LIFE = [dossier_received("P1", "2026-10-01 08:00", "2026-10-03 17:00", fee=True),
        dossier_status("P1", 2, "2026-10-01 09:00"), dossier_status("P1", 5, "2026-10-01 10:00"),
        dossier_status("P1", 4, "2026-10-02 10:00"), dossier_status("P1", 9, "2026-10-04 10:00"),
        dossier_status("P1", 10, "2026-10-04 11:00"), dossier_paid("P1", True, "2026-10-04 10:30"),
        dossier_rated("P1", True, "2026-10-05 08:00")]


@settings(max_examples=200, deadline=None)
@given(st.permutations(LIFE), st.lists(st.sampled_from(LIFE), max_size=10))
def test_any_order_and_any_duplicates_give_the_same_state(order, duplicates):
    # Events are deduplicated by id before folding, exactly as the aggregator does.
    delivered = {e.event_id: e for e in list(order) + duplicates}
    assert summarize_dossier("P1", delivered.values()) == summarize_dossier("P1", LIFE)


def test_local_days_are_asia_ho_chi_minh_days():
    from datetime import datetime, timedelta

    from dti_pulse.localtime import LOCAL_TZ, local_day

    for local in ("2022-01-01 00:00:00", "2022-12-31 23:59:59.999", "2025-06-30 23:59:59.999", "2026-11-29 07:00"):
        instant = datetime.fromisoformat(local).replace(tzinfo=LOCAL_TZ)
        ms = round(instant.timestamp() * 1000)
        assert local_day(ms) == (instant.date() - datetime(1970, 1, 1).date()).days
        assert local_day(ms + 1) == local_day(ms) or local.endswith(".999")
    assert local_day(round((datetime(2026, 1, 1, tzinfo=LOCAL_TZ) - timedelta(milliseconds=1)).timestamp() * 1000)) \
        == local_day(round(datetime(2026, 1, 1, tzinfo=LOCAL_TZ).timestamp() * 1000)) - 1


def _processing_end_as_written(statuses):
    """docs/domain.md, Indicators spelled out rule by rule, slowly: processing_end is its fast form."""
    first = {}
    for at, status in statuses:
        first.setdefault(status, at)
    end = None
    for candidates in ((9,), (10,), (8, 3)):
        times = [first[s] for s in candidates if s in first]
        if times:
            end = min(times)
            break
    accepted_at = min((at for at, status in statuses if status in (2, 4, 5, 6)), default=None)
    if end is None and accepted_at is not None:
        end = next((at for index, (at, status) in enumerate(statuses) if status == 7
                    and any(s in (2, 4, 5, 6) for _, s in statuses[:index])), None)
    supplements = sum(1 for _, status in statuses if status == 5)
    if end is None and supplements == 1 and statuses[-1][1] == 5:
        end = statuses[-1][0]
    paused = sum(
        (min(statuses[i + 1][0], end) if end is not None else statuses[i + 1][0]) - at
        for i, (at, status) in enumerate(statuses[:-1]) if status == 5 and (end is None or at < end))
    return end, paused, supplements


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 10)), min_size=1, max_size=8))
def test_processing_end_follows_the_rules_as_written(statuses):
    statuses.sort()
    assert tuple(processing_end(statuses)) == _processing_end_as_written(statuses)


def test_every_summary_field_sits_under_its_name():
    # The summaries are built positionally for speed: each value must land in its own field.
    dossier = summarize_dossier("D9", [
        dossier_received("D9", "2026-10-10 08:00", "2026-10-12 17:00", fee=True, channel=3, reused=True),
        dossier_status("D9", 2, "2026-10-10 09:00"), dossier_status("D9", 5, "2026-10-10 10:00"),
        dossier_status("D9", 4, "2026-10-10 12:00"), dossier_status("D9", 9, "2026-10-11 08:00"),
        dossier_paid("D9", True, "2026-10-11 08:30"), dossier_rated("D9", True, "2026-10-11 09:00"),
        dossier_synced("D9", "2026-10-10 08:05"), dossier_result("D9", False, True, "2026-10-11 08:00")])
    assert dossier._asdict() == {
        "dossier_id": "D9", "agency_code": "000.00.05.H56", "procedure_code": "1.010708",
        "channel": 3, "service_level": "full_online", "has_received": 1,
        "received_at_ms": ms("2026-10-10 08:00"), "due_at_ms": ms("2026-10-12 17:00"),
        "due_effective_ms": ms("2026-10-12 19:00"), "has_fee": 1, "has_end": 1, "end_at_ms": ms("2026-10-11 08:00"),
        "paused_ms": 2 * HOUR, "supplement_count": 1, "late_forced": 0, "last_status": 9, "paid": 1,
        "paid_online": 1, "rated": 1, "satisfied": 1, "apology_count": 0, "digitized_on_receipt": 0,
        "reused_digitized_data": 1, "citizen_data_used": 0, "synced": 1, "result_issued": 1, "result_electronic": 0,
        "result_shared": 1, "event_count": 9}
    document = summarize_document("DOC9", "000.00.05.H56", [
        document_transfer("document_received", "DOC9", "2026-10-07 08:00", due_at="2026-10-08 23:59",
                          classified=True, business_type=2),
        document_signed("DOC9", "2026-10-07 09:00", False, True),
        document_status("DOC9", "06", "2026-10-09 08:00"), document_status("DOC9", "15", "2026-10-10 08:00")])
    assert document._asdict() == {
        "document_id": "DOC9", "agency_code": "000.00.05.H56", "sent": 0, "sent_at_ms": 0, "received": 1,
        "received_at_ms": ms("2026-10-07 08:00"), "classified": 1, "electronic": 1,
        "business_type": 2, "has_due": 1, "due_at_ms": ms("2026-10-08 23:59"), "signed": 1,
        "personal_signature": 0, "agency_signature": 1, "completed": 1, "completed_at_ms": ms("2026-10-09 08:00"),
        "last_status": "15", "recalled": 1, "event_count": 4}


def test_a_result_is_issued_by_status_9_or_10_or_its_event_and_the_latest_result_stands():
    received = dossier_received("R1", "2026-10-10 08:00", "2026-10-12 17:00", digitized=True)
    assert summarize_dossier("R1", [received]).result_issued == 0
    returned = summarize_dossier("R1", [received, dossier_status("R1", 10, "2026-10-11 08:00")])
    assert (returned.result_issued, returned.result_electronic) == (1, 0)
    corrected = summarize_dossier("R1", [dossier_result("R1", True, True, "2026-10-11 09:00"), received,
                                         dossier_result("R1", False, False, "2026-10-11 08:00")])
    assert (corrected.result_issued, corrected.result_electronic, corrected.result_shared) == (1, 1, 1)
    assert summarize_dossier("R1", [dossier_synced("R1", "2026-10-10 08:01")]).synced == 1


def test_a_petition_is_answered_at_its_first_answer_and_its_latest_rating_stands():
    events = [petition_received("P1", "2026-10-05 08:00", "2026-10-15 17:00", agency="000.00.13.H56"),
              petition_answered("P1", "2026-10-16 09:00", agency="000.00.13.H56"),
              petition_answered("P1", "2026-10-12 09:00", agency="000.00.13.H56"),  # delivered late, happened first
              petition_rated("P1", False, "2026-10-17 09:00", agency="000.00.13.H56"),
              petition_rated("P1", True, "2026-10-18 09:00", agency="000.00.13.H56")]
    key = state_key(events[0])
    assert key == ("petition", "P1") and all(state_key(e) == key for e in events)
    petition = summarize(key, reversed(events))
    assert petition._asdict() == {
        "petition_id": "P1", "agency_code": "000.00.13.H56", "has_received": 1,
        "received_at_ms": ms("2026-10-05 08:00"), "due_at_ms": ms("2026-10-15 17:00"), "answered": 1,
        "answered_at_ms": ms("2026-10-12 09:00"), "rated": 1, "satisfied": 1, "event_count": 5}
    day = local_day(ms("2026-10-05 08:00"))
    assert day_pairs(petition) == [("000.00.13.H56", day)] and placement(petition) == ("000.00.13.H56", day)
    unplaced = summarize(key, [petition_answered("P1", "2026-10-12 09:00")])
    assert unplaced.has_received == 0 and day_pairs(unplaced) == [] and placement(unplaced)[1] < 0


def test_a_publication_counts_on_the_day_it_was_decided_and_is_published_at_its_first_publication():
    events = [publication_done("U1", "2026-10-12 09:00"), publication_done("U1", "2026-10-09 09:00"),
              publication_due("U1", "update", "2026-10-05 08:00", "2026-10-10 17:00", procedure="2.000123")]
    key = state_key(events[0])
    assert key == ("publication", "U1") and all(state_key(e) == key for e in events)
    publication = summarize(key, events)
    assert publication._asdict() == {
        "publication_id": "U1", "agency_code": "000.00.05.H56", "procedure_code": "2.000123", "change": "update",
        "has_decided": 1, "decided_at_ms": ms("2026-10-05 08:00"), "due_at_ms": ms("2026-10-10 17:00"),
        "published": 1, "published_at_ms": ms("2026-10-09 09:00"), "event_count": 3}
    day = local_day(ms("2026-10-05 08:00"))
    assert day_pairs(publication) == [("000.00.05.H56", day)] and placement(publication)[1] == day
    assert day_pairs(summarize(key, events[:1])) == []  # published, but no decision known: no day


def test_a_procedure_listing_keeps_each_version_and_counts_on_no_day():
    agency = "000.00.05.H56"
    events = [procedure_listed("1.001", "2026-10-20 08:00", withdrawn=True, full_content=False, citizen_data=False),
              procedure_listed("1.001", "2026-09-01 08:00", full_content=False),
              procedure_listed("1.001", "2026-10-01 08:00", certifies=True, electronic_copy=True)]
    key = state_key(events[0])
    assert key == ("procedure", "1.001", agency) and all(state_key(e) == key for e in events)
    listing = summarize(key, events)
    # Bits, from 0: withdrawn, full_content, citizen_data_connected, certifies_copies, electronic_copy.
    assert listing._asdict() == {
        "procedure_id": "1.001", "agency_code": agency,
        "versions_from_ms": [ms("2026-09-01 08:00"), ms("2026-10-01 08:00"), ms("2026-10-20 08:00")],
        "versions_flags": [0b00100, 0b11110, 0b00001], "event_count": 3}
    assert day_pairs(listing) == [] and placement(listing)[1] < 0
    # Another agency offering the same procedure has a listing of its own.
    assert state_key(procedure_listed("1.001", "2026-09-01 08:00", agency="000.00.07.H56"))[2] == "000.00.07.H56"
    # Two listings of one instant: one version, the later event's.
    twice = summarize(key, [procedure_listed("1.001", "2026-09-01 08:00", full_content=False),
                            procedure_listed("1.001", "2026-09-01 08:00")])
    assert twice.versions_from_ms == [ms("2026-09-01 08:00")] and twice.versions_flags == [0b00110]

"""Per-entity state (dossier, document, petition, publication, procedure listing): pure functions of the set of an entity's events.

Because a summary depends only on the *set* of events (sorted by event time, then id),
redelivered, duplicated, late and out-of-order events all give the same state
(docs/domain.md: "a later status supersedes the earlier one", and the processing-end rule of Indicators).
"""
from __future__ import annotations

from operator import attrgetter
from typing import Iterable, NamedTuple

from dti.events.v1.events_pb2 import Event
from dti_pulse.events import ENTITY_OF_BODY, RESOLVED_STATUS as RESOLVED
from dti_pulse.localtime import local_day
from dti_pulse.schema import TWO_DAYS, UNPLACED

# Dossier statuses (national portal codes, docs/domain.md, Events).
ACCEPTED, NOT_ACCEPTED, IN_PROCESS, SUPPLEMENT_REQUESTED = 2, 3, 4, 5
FINANCIAL_OBLIGATION, WITHDRAWN, STOPPED, RESULT_RETURNED = 6, 7, 8, 10
_SHOWS_ACCEPTANCE = frozenset({ACCEPTED, IN_PROCESS, SUPPLEMENT_REQUESTED, FINANCIAL_OBLIGATION})
_ISSUES_RESULT = frozenset({RESOLVED, RESULT_RETURNED})

DOCUMENT_COMPLETED = "06"
DOCUMENT_RECALL_AGREED = "15"


class DossierSummary(NamedTuple):
    dossier_id: str
    agency_code: str
    procedure_code: str
    channel: int
    service_level: str
    has_received: int
    received_at_ms: int
    due_at_ms: int
    due_effective_ms: int  # due date pushed back by the time spent waiting for the citizen
    has_fee: int
    has_end: int
    end_at_ms: int
    paused_ms: int
    supplement_count: int
    late_forced: int  # more than one supplement request: late whatever the dates
    last_status: int
    paid: int
    paid_online: int
    rated: int
    satisfied: int
    apology_count: int
    # Decision-766 transparency and digitisation groups (docs/domain.md, Indicators)
    digitized_on_receipt: int
    reused_digitized_data: int
    citizen_data_used: int
    synced: int  # reached the national portal
    result_issued: int  # resolved (status 9 or 10) or a dossier.result
    result_electronic: int
    result_shared: int  # its digitised data went to the citizen's store
    event_count: int


class DocumentSummary(NamedTuple):
    document_id: str
    agency_code: str
    sent: int
    sent_at_ms: int
    received: int
    received_at_ms: int
    classified: int
    electronic: int
    business_type: int
    has_due: int
    due_at_ms: int
    signed: int
    personal_signature: int
    agency_signature: int
    completed: int
    completed_at_ms: int
    last_status: str
    recalled: int
    event_count: int


class PetitionSummary(NamedTuple):
    petition_id: str
    agency_code: str
    has_received: int
    received_at_ms: int
    due_at_ms: int
    answered: int
    answered_at_ms: int  # the first answer: a petition is handled once answered
    rated: int
    satisfied: int
    event_count: int


class PublicationSummary(NamedTuple):
    publication_id: str
    agency_code: str
    procedure_code: str
    change: str  # "new" or "update"
    has_decided: int
    decided_at_ms: int
    due_at_ms: int
    published: int
    published_at_ms: int  # the first publication
    event_count: int


# What a procedure's listing says of it (docs/domain.md, Events), and its flags: one bit each
# of a version's flags, in this order (bit 0 first); services/ranking/measures.py reads them by name.
PROCEDURE_FACTS = ("full_content", "citizen_data_connected", "certifies_copies", "electronic_copy")
PROCEDURE_FLAGS = ("withdrawn", *PROCEDURE_FACTS)


class ProcedureSummary(NamedTuple):
    """How one agency offers one procedure over time: each listing is a version holding
    from its instant until the next (the catalogue as of any instant, for past periods too)."""
    procedure_id: str
    agency_code: str
    versions_from_ms: list  # ascending
    versions_flags: list  # PROCEDURE_FLAGS as bits, one value per version
    event_count: int


_EVENT_ORDER = attrgetter("occurred_at_ms", "event_id")


def chronological(events: Iterable[Event]) -> list[Event]:
    if isinstance(events, list) and len(events) == 1:
        return events  # most states folded in a batch are one new event
    return sorted(events, key=_EVENT_ORDER)


# The summaries are built positionally (a keyword call cost ~0.4 µs a state, in the fold that
# bounds the aggregator's events/s): the order is the NamedTuple's, checked by the unit tests.
_new_summary = tuple.__new__


class ProcessingEnd(NamedTuple):
    end_at_ms: int | None
    paused_ms: int
    supplement_count: int


def processing_end(statuses: list[tuple[int, int]]) -> ProcessingEnd:
    """statuses: chronological (occurred_at_ms, status). Applies docs/domain.md, Indicators."""
    first: dict[int, int] = {}
    accepted = False
    withdrawn_after_acceptance = None
    supplements = 0
    paused = 0
    for index, (at, status) in enumerate(statuses):
        first.setdefault(status, at)
        if status == WITHDRAWN and accepted and withdrawn_after_acceptance is None:
            withdrawn_after_acceptance = at
        if status in _SHOWS_ACCEPTANCE:
            accepted = True
        if status == SUPPLEMENT_REQUESTED:
            supplements += 1
            if index + 1 < len(statuses):
                paused += statuses[index + 1][0] - at
    end = first.get(RESOLVED)
    if end is None:
        end = first.get(RESULT_RETURNED)
    if end is None:
        stopped, refused = first.get(STOPPED), first.get(NOT_ACCEPTED)
        end = refused if stopped is None else stopped if refused is None else min(stopped, refused)
    if end is None and withdrawn_after_acceptance is not None:
        end = withdrawn_after_acceptance
    if end is None and supplements == 1 and statuses[-1][1] == SUPPLEMENT_REQUESTED:
        end = statuses[-1][0]
    if end is not None and supplements:
        # Waiting for the citizen only counts while processing was still open.
        paused = sum(
            min(statuses[i + 1][0], end) - at
            for i, (at, status) in enumerate(statuses[:-1])
            if status == SUPPLEMENT_REQUESTED and at < end
        )
    return ProcessingEnd(end, paused, supplements)


def summarize_dossier(dossier_id: str, events: Iterable[Event]) -> DossierSummary:
    received = None
    statuses: list[tuple[int, int]] = []
    paid = paid_online = 0
    rated = satisfied = 0
    apologies = 0
    synced = result_issued = result_electronic = result_shared = 0
    ordered = chronological(events)
    for event in ordered:
        kind = event.WhichOneof("body")
        if kind == "dossier_received":
            received = event
        elif kind == "dossier_status":
            status = event.dossier_status.status
            statuses.append((event.occurred_at_ms, status))
            if status in _ISSUES_RESULT:
                result_issued = 1
        elif kind == "dossier_paid":
            paid = 1
            paid_online = paid_online or int(event.dossier_paid.online)
        elif kind == "dossier_rated":
            rated, satisfied = 1, int(event.dossier_rated.satisfied)
        elif kind == "dossier_apology":
            apologies += 1
        elif kind == "dossier_synced":
            synced = 1
        elif kind == "dossier_result":
            # The latest result stands (a corrected result replaces the first).
            result_issued, result_electronic = 1, int(event.dossier_result.electronic)
            result_shared = int(event.dossier_result.shared_for_reuse)
        else:
            raise ValueError(f"event {event.event_id} of type {kind} does not belong to a dossier")
    end_at, paused, supplements = processing_end(statuses) if statuses else (None, 0, 0)
    if received is not None:
        body = received.dossier_received
        agency_code, procedure_code, channel, service_level = (received.agency_code, body.procedure_code,
                                                              body.channel, body.service_level)
        received_at, due_at, has_fee = body.received_at_ms, body.due_at_ms, int(body.has_fee)
        due_effective = due_at + paused
        digitized, reused, citizen_data = (int(body.digitized_on_receipt), int(body.reused_digitized_data),
                                           int(body.citizen_data_used))
    else:
        agency_code, procedure_code, channel, service_level = ordered[-1].agency_code, "", 0, ""
        received_at = due_at = due_effective = has_fee = 0
        digitized = reused = citizen_data = 0
    return _new_summary(DossierSummary, (
        dossier_id, agency_code, procedure_code, channel, service_level,
        int(received is not None), received_at, due_at, due_effective, has_fee,
        int(end_at is not None), end_at or 0, paused, supplements, int(supplements > 1),
        statuses[-1][1] if statuses else 0, paid, paid_online, rated, satisfied, apologies,
        digitized, reused, citizen_data, synced, result_issued, result_electronic, result_shared, len(ordered),
    ))


def summarize_document(document_id: str, agency_code: str, events: Iterable[Event]) -> DocumentSummary:
    sent = received = signed = None
    completed_at = None
    last_status = ""
    recalled = 0
    ordered = chronological(events)
    for event in ordered:
        kind = event.WhichOneof("body")
        if kind == "document_sent":
            sent = event
        elif kind == "document_received":
            received = event
        elif kind == "document_signed":
            signed = event.document_signed
        elif kind == "document_status":
            code = event.document_status.status_code
            last_status = code
            if code == DOCUMENT_COMPLETED and completed_at is None:
                completed_at = event.occurred_at_ms
            if code == DOCUMENT_RECALL_AGREED:
                recalled = 1
        else:
            raise ValueError(f"event {event.event_id} of type {kind} does not belong to a document")
    transfer = sent if sent is not None else received
    if transfer is not None:
        body = transfer.document_sent if transfer is sent else transfer.document_received
        classified, electronic, business_type = int(body.classified), int(body.electronic), body.business_type
    else:
        classified = electronic = business_type = 0
    has_due = due_at = 0
    if received is not None:
        incoming = received.document_received
        if incoming.HasField("due_at_ms"):
            has_due, due_at = 1, incoming.due_at_ms
    return _new_summary(DocumentSummary, (
        document_id, agency_code,
        int(sent is not None), sent.occurred_at_ms if sent is not None else 0,
        int(received is not None), received.occurred_at_ms if received is not None else 0,
        classified, electronic, business_type, has_due, due_at,
        int(signed is not None), int(signed.personal_signature) if signed is not None else 0,
        int(signed.agency_signature) if signed is not None else 0,
        int(completed_at is not None), completed_at or 0, last_status, recalled, len(ordered),
    ))


def summarize_petition(petition_id: str, events: Iterable[Event]) -> PetitionSummary:
    received = None
    answered_at = None
    rated = satisfied = 0
    ordered = chronological(events)
    for event in ordered:
        kind = event.WhichOneof("body")
        if kind == "petition_received":
            received = event
        elif kind == "petition_answered":
            if answered_at is None:
                answered_at = event.occurred_at_ms
        elif kind == "petition_rated":
            rated, satisfied = 1, int(event.petition_rated.satisfied)  # the latest word stands
        else:
            raise ValueError(f"event {event.event_id} of type {kind} does not belong to a petition")
    if received is not None:
        agency_code, received_at, due_at = (received.agency_code, received.petition_received.received_at_ms,
                                            received.petition_received.due_at_ms)
    else:
        agency_code, received_at, due_at = ordered[-1].agency_code, 0, 0
    return _new_summary(PetitionSummary, (
        petition_id, agency_code, int(received is not None), received_at, due_at,
        int(answered_at is not None), answered_at or 0, rated, satisfied, len(ordered),
    ))


def summarize_publication(publication_id: str, events: Iterable[Event]) -> PublicationSummary:
    due = None
    published_at = None
    ordered = chronological(events)
    for event in ordered:
        kind = event.WhichOneof("body")
        if kind == "publication_due":
            due = event
        elif kind == "publication_done":
            if published_at is None:
                published_at = event.occurred_at_ms
        else:
            raise ValueError(f"event {event.event_id} of type {kind} does not belong to a publication")
    if due is not None:
        body = due.publication_due
        fields = (due.agency_code, body.procedure_code, body.change, 1, body.decided_at_ms, body.due_at_ms)
    else:
        fields = (ordered[-1].agency_code, "", "", 0, 0, 0)
    return _new_summary(PublicationSummary, (
        publication_id, *fields, int(published_at is not None), published_at or 0, len(ordered)))


def summarize_procedure(procedure_id: str, agency_code: str, events: Iterable[Event]) -> ProcedureSummary:
    versions_from, versions_flags = [], []
    ordered = chronological(events)
    for event in ordered:
        if event.WhichOneof("body") != "procedure_listed":
            raise ValueError(f"event {event.event_id} of type {event.WhichOneof('body')} "
                             "does not belong to a procedure listing")
        body = event.procedure_listed
        flags = sum(1 << bit for bit, name in enumerate(PROCEDURE_FLAGS) if getattr(body, name))
        if versions_from and versions_from[-1] == event.occurred_at_ms:
            versions_flags[-1] = flags  # two listings of one instant: the later (by event id) stands
        else:
            versions_from.append(event.occurred_at_ms)
            versions_flags.append(flags)
    return _new_summary(ProcedureSummary, (procedure_id, agency_code, versions_from, versions_flags, len(ordered)))


# Families whose state is one agency's: a document's side, a procedure's listing; their key
# is (family, id, agency_code).
PER_AGENCY = frozenset({"document", "procedure"})
# Families that count on no day: read whole, as of the period's end (services/ranking/measures.py).
UNDATED = frozenset({"procedure"})

# The body field -> a getter of its entity's id (one C call where two getattr cost more).
_ENTITY_ID_OF_BODY = {field: attrgetter(f"{field}.{entity}_id") for field, entity in ENTITY_OF_BODY.items()}


def state_key(event: Event) -> tuple:
    """Which state an event belongs to: a dossier, a petition, a publication, or one agency's
    side of a document or listing of a procedure."""
    kind = event.WhichOneof("body")
    entity_id_of = _ENTITY_ID_OF_BODY.get(kind)
    if entity_id_of is None:
        raise ValueError("event has no body")
    entity_id, entity = entity_id_of(event), ENTITY_OF_BODY[kind]
    if not entity_id:
        raise ValueError(f"event has an empty {entity}_id")
    if entity in PER_AGENCY:
        return (entity, entity_id, event.agency_code)
    return (entity, entity_id)


def summarize(key: tuple, events: Iterable[Event]):
    if key[0] == "dossier":
        return summarize_dossier(key[1], events)
    if key[0] == "petition":
        return summarize_petition(key[1], events)
    if key[0] == "publication":
        return summarize_publication(key[1], events)
    if key[0] == "procedure":
        return summarize_procedure(key[1], key[2], events)
    return summarize_document(key[1], key[2], events)


# Events that can move a state to other days or another agency (see day_pairs).
PLACING_EVENTS = frozenset({"dossier_received", "document_sent", "document_received", "petition_received",
                            "publication_due"})


def day_pairs(summary) -> list[tuple[str, int]]:
    """The (agency, local day) pairs whose measures count this state: a dossier or a petition
    on the day it was received, a publication on the day it was decided, a document side on
    the days it was sent and received; a procedure listing on none."""
    if isinstance(summary, ProcedureSummary):
        return []
    if isinstance(summary, (DossierSummary, PetitionSummary)):
        return [(summary.agency_code, local_day(summary.received_at_ms))] if summary.has_received else []
    if isinstance(summary, PublicationSummary):
        return [(summary.agency_code, local_day(summary.decided_at_ms))] if summary.has_decided else []
    pairs = []
    if summary.sent:
        pairs.append((summary.agency_code, local_day(summary.sent_at_ms)))
    if summary.received:
        pairs.append((summary.agency_code, local_day(summary.received_at_ms)))
    return pairs


def placement(summary) -> tuple[str, int]:
    """Where the state's row sits in its table (dti_pulse.schema.PLACE_DAY_SQL): its agency and
    the day it counts on, UNPLACED for none, TWO_DAYS for two."""
    days = {day for _, day in day_pairs(summary)}
    return summary.agency_code, (days.pop() if len(days) == 1 else TWO_DAYS if days else UNPLACED)

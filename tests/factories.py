"""Builders of protobuf events for tests (times as local Asia/Ho_Chi_Minh strings)."""
from __future__ import annotations

import itertools
import uuid
from datetime import datetime

from dti.events.v1.events_pb2 import Event
from dti_pulse.localtime import LOCAL_TZ

_ids = itertools.count(1)


def ms(local: str) -> int:
    """'2026-10-01 09:00' (local time) -> Unix ms."""
    return int(datetime.fromisoformat(local).replace(tzinfo=LOCAL_TZ).timestamp() * 1000)


def _event(at: str, agency: str, event_id: str | None) -> Event:
    return Event(event_id=event_id or str(uuid.UUID(int=next(_ids))), occurred_at_ms=ms(at), agency_code=agency)


def dossier_received(dossier_id, received, due, agency="000.00.05.H56", procedure="1.010708", channel=2,
                     level="full_online", fee=False, event_id=None, digitized=False, reused=False,
                     citizen_data=False) -> Event:
    event = _event(received, agency, event_id)
    event.dossier_received.SetInParent()
    body = event.dossier_received
    body.dossier_id, body.procedure_code, body.channel, body.service_level = dossier_id, procedure, channel, level
    body.received_at_ms, body.due_at_ms, body.has_fee = ms(received), ms(due), fee
    body.digitized_on_receipt, body.reused_digitized_data, body.citizen_data_used = digitized, reused, citizen_data
    return event


def dossier_synced(dossier_id, at, agency="000.00.05.H56") -> Event:
    event = _event(at, agency, None)
    event.dossier_synced.dossier_id = dossier_id
    return event


def dossier_result(dossier_id, electronic, shared, at, agency="000.00.05.H56") -> Event:
    event = _event(at, agency, None)
    event.dossier_result.dossier_id = dossier_id
    event.dossier_result.electronic, event.dossier_result.shared_for_reuse = electronic, shared
    return event


def petition_received(petition_id, received, due, agency="000.00.05.H56") -> Event:
    event = _event(received, agency, None)
    body = event.petition_received
    body.petition_id, body.received_at_ms, body.due_at_ms = petition_id, ms(received), ms(due)
    return event


def petition_answered(petition_id, at, agency="000.00.05.H56") -> Event:
    event = _event(at, agency, None)
    event.petition_answered.petition_id = petition_id
    return event


def petition_rated(petition_id, satisfied, at, agency="000.00.05.H56") -> Event:
    event = _event(at, agency, None)
    event.petition_rated.petition_id, event.petition_rated.satisfied = petition_id, satisfied
    return event


def publication_due(publication_id, change, decided, due, agency="000.00.05.H56", procedure="1.010708") -> Event:
    event = _event(decided, agency, None)
    body = event.publication_due
    body.publication_id, body.procedure_code, body.change = publication_id, procedure, change
    body.decided_at_ms, body.due_at_ms = ms(decided), ms(due)
    return event


def publication_done(publication_id, at, agency="000.00.05.H56") -> Event:
    event = _event(at, agency, None)
    event.publication_done.publication_id = publication_id
    return event


def procedure_listed(procedure_id, at, agency="000.00.05.H56", withdrawn=False, full_content=True,
                     citizen_data=True, certifies=False, electronic_copy=False) -> Event:
    event = _event(at, agency, None)
    body = event.procedure_listed
    body.procedure_id, body.withdrawn, body.full_content = procedure_id, withdrawn, full_content
    body.citizen_data_connected, body.certifies_copies, body.electronic_copy = citizen_data, certifies, electronic_copy
    return event


def dossier_status(dossier_id, status, at, agency="000.00.05.H56", event_id=None) -> Event:
    event = _event(at, agency, event_id)
    event.dossier_status.dossier_id, event.dossier_status.status = dossier_id, status
    return event


def dossier_paid(dossier_id, online, at, agency="000.00.05.H56") -> Event:
    event = _event(at, agency, None)
    event.dossier_paid.dossier_id, event.dossier_paid.online = dossier_id, online
    event.dossier_paid.SetInParent()
    return event


def dossier_rated(dossier_id, satisfied, at, agency="000.00.05.H56") -> Event:
    event = _event(at, agency, None)
    event.dossier_rated.dossier_id, event.dossier_rated.satisfied = dossier_id, satisfied
    return event


def document_transfer(kind, document_id, at, agency="000.00.05.H56", electronic=True, classified=False,
                      due_at=None, business_type=0) -> Event:
    event = _event(at, agency, None)
    body = getattr(event, kind)
    body.document_id, body.from_agency, body.electronic, body.classified = document_id, agency, electronic, classified
    body.business_type = business_type
    if due_at:
        body.due_at_ms = ms(due_at)
    return event


def document_signed(document_id, at, personal, agency_sig, agency="000.00.05.H56") -> Event:
    event = _event(at, agency, None)
    event.document_signed.SetInParent()
    body = event.document_signed
    body.document_id, body.personal_signature, body.agency_signature = document_id, personal, agency_sig
    return event


def document_status(document_id, code, at, agency="000.00.05.H56") -> Event:
    event = _event(at, agency, None)
    event.document_status.document_id, event.document_status.status_code = document_id, code
    return event

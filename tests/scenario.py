"""A hand-computed month for one department (October 2026), used by the integration and
end-to-end tests. The expected figures below were worked out by hand from docs/domain.md, Indicators,
not by running the code."""
from __future__ import annotations

import uuid

AGENCY = "000.00.05.H56"
OTHER = "000.00.07.H56"
COMMUNE = "001.00.00.H56"
PERIOD = "2026-10"
RULES_VERSION = "dti-pulse-2026"


def _id(n: int) -> str:
    return str(uuid.UUID(int=0x5CE0A210 << 96 | n))


def _at(day_time: str) -> str:
    return f"2026-{day_time}:00+07:00"


def _event(n, kind, when, agency=AGENCY, **fields):
    return {"event_id": _id(n), "type": kind, "occurred_at": _at(when), "agency_code": agency, **fields}


def _received(n, dossier, when, due, level, channel, fee, procedure="1.010708", digitized=False, reused=False,
              citizen_data=False):
    return _event(n, "dossier.received", when, dossier_id=dossier, procedure_code=procedure, channel=channel,
                  service_level=level, received_at=_at(when), due_at=_at(due), has_fee=fee,
                  digitized_on_receipt=digitized, reused_digitized_data=reused, citizen_data_used=citizen_data)


def _synced(n, dossier, when):
    return _event(n, "dossier.synced", when, dossier_id=dossier)


def _result(n, dossier, when, electronic, shared):
    return _event(n, "dossier.result", when, dossier_id=dossier, electronic=electronic, shared_for_reuse=shared)


def _petition(n, petition, when, due):
    return _event(n, "petition.received", when, petition_id=petition, received_at=_at(when), due_at=_at(due))


def _publication(n, publication, change, when, due):
    return _event(n, "publication.due", when, publication_id=publication, procedure_code="1.010708", change=change,
                  decided_at=_at(when), due_at=_at(due))


def _listing(n, procedure, when, agency=AGENCY, withdrawn=False, full=True, citizen_data=True, certifies=False,
             electronic_copy=False):
    facts = {} if withdrawn else {"full_content": full, "citizen_data_connected": citizen_data,
                                  "certifies_copies": certifies, "electronic_copy": electronic_copy}
    return _event(n, "procedure.listed", when, agency, procedure_id=procedure, withdrawn=withdrawn, **facts)


def _status(n, dossier, status, when):
    return _event(n, "dossier.status", when, dossier_id=dossier, status=status)


def _doc(n, kind, document, when, agency=AGENCY, **fields):
    base = {"document_id": document, "from_agency": agency if kind == "document.sent" else OTHER,
            "to_agencies": [OTHER] if kind == "document.sent" else [AGENCY], "document_type": "CV",
            "promulgated_on": "2026-10-01"}
    return _event(n, kind, when, agency, **base, **fields)


EVENTS = [
    # D1: full-online via the online channel, fee paid online, resolved on time, rated satisfied;
    # digitised, reusing data, from the population database; synced; electronic result shared
    _received(1, "D1", "10-01T09:00", "10-03T17:00", "full_online", 2, True, digitized=True, reused=True,
              citizen_data=True),
    _synced(45, "D1", "10-01T09:05"),
    _result(46, "D1", "10-02T10:00", electronic=True, shared=True),
    _status(2, "D1", 2, "10-01T10:00"),
    _status(3, "D1", 9, "10-02T10:00"),
    _event(4, "dossier.paid", "10-02T10:05", dossier_id="D1", online=True),
    _event(5, "dossier.rated", "10-02T11:00", dossier_id="D1", satisfied=True),
    # D2: partial, in person, resolved two days late; the resolution arrives before the acceptance
    _status(7, "D2", 9, "10-08T10:00"),
    _status(6, "D2", 2, "10-05T10:00"),
    _received(8, "D2", "10-05T09:00", "10-06T17:00", "partial", 1, False),
    _synced(47, "D2", "10-05T09:10"),  # its result is the status 9 alone: issued, not electronic
    # D3: full-online procedure filed in person; waits 3 days for the citizen, so on time; fee paid
    # in cash; rated unsatisfied; digitised, from the population database, never synced; an
    # electronic result not shared
    _received(9, "D3", "10-10T08:00", "10-12T17:00", "full_online", 1, True, procedure="1.010709", digitized=True,
              citizen_data=True),
    _result(48, "D3", "10-14T15:00", electronic=True, shared=False),
    _status(10, "D3", 2, "10-10T09:00"),
    _status(11, "D3", 5, "10-11T09:00"),
    _status(12, "D3", 4, "10-14T09:00"),
    _status(13, "D3", 9, "10-14T15:00"),
    _event(14, "dossier.paid", "10-14T15:10", dossier_id="D3", online=False),
    _event(15, "dossier.rated", "10-15T08:00", dossier_id="D3", satisfied=False),
    # D4: still open at the end of October and not yet due: on time
    _received(16, "D4", "10-20T09:00", "11-30T17:00", "full_online", 2, True, digitized=True),
    _synced(49, "D4", "10-20T09:01"),
    _status(17, "D4", 2, "10-20T10:00"),
    # D5: two supplement requests: late whatever the dates
    _received(18, "D5", "10-25T08:00", "10-27T17:00", "partial", 1, False),
    _status(19, "D5", 2, "10-25T09:00"),
    _status(20, "D5", 5, "10-26T08:00"),
    _status(21, "D5", 4, "10-26T10:00"),
    _status(22, "D5", 5, "10-27T08:00"),
    _status(23, "D5", 9, "10-27T09:00"),
    _result(50, "D5", "10-27T09:00", electronic=False, shared=True),  # paper: nothing digitised to share
    # D6: statuses but no received event: not tied to any period
    _status(24, "D6", 9, "10-02T08:00"),
    _synced(51, "D6", "10-02T08:05"),
    # D7: received in September: another period
    _received(25, "D7", "09-30T23:30", "10-02T17:00", "partial", 1, False, digitized=True),
    _synced(52, "D7", "10-01T08:00"),
    # Petitions to the department. P1: answered on time, rated satisfied.
    _petition(53, "P1", "10-03T08:00", "10-13T17:00"),
    _event(54, "petition.answered", "10-10T09:00", petition_id="P1"),
    _event(55, "petition.rated", "10-11T09:00", petition_id="P1", satisfied=True),
    # P2: answered four days late, rated not satisfied (its rating arrives before its receipt)
    _event(57, "petition.rated", "10-21T09:00", petition_id="P2", satisfied=False),
    _petition(56, "P2", "10-06T08:00", "10-16T17:00"),
    _event(58, "petition.answered", "10-20T09:00", petition_id="P2"),
    # P3: never answered, past its due time at the end of October: late
    _petition(59, "P3", "10-15T08:00", "10-25T17:00"),
    # P4: open, not yet due at the end of October: on time; not rated
    _petition(60, "P4", "10-28T08:00", "11-07T17:00"),
    # P5: received in September (another period), answered in October
    _petition(61, "P5", "09-28T08:00", "10-08T17:00"),
    _event(62, "petition.answered", "10-02T09:00", petition_id="P5"),
    # P6: an answer and a rating, no receipt: not tied to any period
    _event(63, "petition.answered", "10-05T09:00", petition_id="P6"),
    _event(64, "petition.rated", "10-06T09:00", petition_id="P6", satisfied=True),
    # Procedures the department must publish on the national database. U1: new, published on time.
    _publication(65, "U1", "new", "10-05T08:00", "10-12T17:00"),
    _event(66, "publication.done", "10-09T09:00", publication_id="U1"),
    # U2: new, published three days late
    _publication(67, "U2", "new", "10-10T08:00", "10-17T17:00"),
    _event(68, "publication.done", "10-20T09:00", publication_id="U2"),
    # U3: a change, still unpublished past its due time at the end of October: late
    _publication(69, "U3", "update", "10-20T08:00", "10-27T17:00"),
    # U4: a change decided on 29 October, not yet due: on time
    _publication(70, "U4", "update", "10-29T08:00", "11-05T17:00"),
    # The department's procedure catalogue, as in force at the end of October. Q1: full content,
    # connected to the population database; its listing of 3 November is after the period.
    _listing(71, "1.010708", "09-01T08:00"),
    _listing(72, "1.010708", "11-03T08:00", full=False, citizen_data=False),
    # Q2: listed in October, neither, certifies copies electronically
    _listing(73, "1.010709", "10-10T08:00", full=False, citizen_data=False, certifies=True, electronic_copy=True),
    # Q3: full content, not connected; certifies copies on paper only
    _listing(74, "1.010710", "08-01T08:00", citizen_data=False, certifies=True),
    # Q4: withdrawn on 15 October: not offered at the period's end
    _listing(75, "1.010711", "07-01T08:00"),
    _listing(76, "1.010711", "10-15T08:00", withdrawn=True),
    # Q5: first listed in November
    _listing(77, "1.010712", "11-02T08:00"),
    # A commune's listing of Q1 is its own
    _listing(78, "1.010708", "09-01T08:00", agency=COMMUNE, full=False, citizen_data=False),
    # Documents sent by the department
    _doc(30, "document.sent", "H56.05,2026/10/02,1/CV", "10-02T08:00"),
    _event(31, "document.signed", "10-02T08:01", document_id="H56.05,2026/10/02,1/CV",
           personal_signature=True, agency_signature=True),
    _doc(32, "document.sent", "H56.05,2026/10/03,2/CV", "10-03T08:00"),
    _event(33, "document.signed", "10-03T08:01", document_id="H56.05,2026/10/03,2/CV",
           personal_signature=False, agency_signature=True),
    _doc(34, "document.sent", "H56.05,2026/10/04,3/CV", "10-04T08:00", electronic=False),
    _doc(35, "document.sent", "H56.05,2026/10/04,4/MAT", "10-04T09:00", classified=True),
    # Documents received by the department
    _doc(36, "document.received", "H56.07,2026/10/06,9/CV", "10-06T08:00", due_date="2026-10-10"),
    _event(37, "document.status", "10-09T15:00", document_id="H56.07,2026/10/06,9/CV", status_code="06"),
    _event(38, "document.status", "10-12T08:00", document_id="H56.07,2026/10/07,10/CV", status_code="06"),
    _doc(39, "document.received", "H56.07,2026/10/07,10/CV", "10-07T08:00", due_date="2026-10-08"),
    _doc(40, "document.received", "H56.07,2026/10/20,11/CV", "10-20T08:00", due_date="2026-11-15"),
    # A document sent, then recalled with the recipient's agreement: it counts for nobody.
    _doc(41, "document.sent", "H56.05,2026/10/21,5/CV", "10-21T08:00"),
    _event(42, "document.signed", "10-21T08:01", document_id="H56.05,2026/10/21,5/CV",
           personal_signature=False, agency_signature=False),
    _event(43, "document.status", "10-22T08:00", agency=OTHER, document_id="H56.05,2026/10/21,5/CV",
           status_code="15"),
    # A recall notice is not a document of its own.
    _doc(44, "document.sent", "H56.05,2026/10/23,6/TH", "10-23T08:00", business_type=1),
]

# The same batch again later: a bus retry. Plus a duplicate inside the batch.
DUPLICATES = [EVENTS[2], EVENTS[7]]

EXPECTED = {  # code: (numerator, denominator, points)
    "dossier_on_time_rate": (3, 5, 20 * 3 / 5),
    "dossier_full_online_rate": (2, 3, 12 * 2 / 3),
    "dossier_online_payment": (1, 3, 6 * 1 / 3 + min(2, 2.5 * 1 / 2) + 2.5 * 2 / 2),
    "dossier_satisfaction": (2, 5, min(6, 6 * (2 / 5) / 0.9)),
    "dossier_sync_rate": (3, 5, 6 * 3 / 5),  # D1, D2, D4
    "dossier_electronic_result_rate": (2, 4, 6 * 2 / 4),  # D1, D3 of D1, D2, D3, D5 (D4 open)
    "dossier_digitized_rate": (3, 5, 4 * 3 / 5),  # D1, D3, D4
    "dossier_reused_data_rate": (1, 5, min(2, 2 * (1 / 5) / 0.8)),  # D1; full at 80 %
    "dossier_shared_for_reuse_rate": (1, 3, 4 * 1 / 3),  # D1 of the digitised D1, D3, D4
    "dossier_citizen_data_rate": (2, 5, 2 * 2 / 5),  # D1, D3
    "petition_on_time_rate": (2, 4, 6 * 2 / 4),  # P1, P4 of P1-P4
    "petition_satisfaction_rate": (1, 2, 6 * 1 / 2),  # P1 of the rated P1, P2
    "publication_new_on_time_rate": (1, 2, 6 * 1 / 2),  # U1 of U1, U2
    "publication_update_on_time_rate": (1, 2, 4 * 1 / 2),  # U4 of U3, U4
    "procedure_full_content_rate": (2, 3, 2 * 2 / 3),  # Q1, Q3 of Q1-Q3
    "procedure_citizen_data_rate": (1, 3, 2 * 1 / 3),  # Q1
    "procedure_electronic_copy_rate": (1, 2, 2 * 1 / 2),  # Q2 of the certifying Q2, Q3
    "doc_electronic_rate": (5, 6, 5 * 5 / 6),
    "doc_personal_sign_rate": (1, 2, 5 * 1 / 2),
    "doc_agency_sign_rate": (2, 2, 5.0),
    "doc_on_time_rate": (1, 2, 5 * 1 / 2),
}
EXPECTED_MEASURES = {
    "dossiers_received": 5, "dossiers_on_time": 3, "dossiers_late": 2,
    "dossiers_full_online_procedures": 3, "dossiers_full_online_received_online": 2,
    "dossiers_with_fee": 3, "dossiers_paid_online": 1, "fee_procedures": 2, "fee_procedures_paid_online": 1,
    "fee_procedures_with_dossiers": 2, "dossiers_rated_unsatisfied": 1,
    "dossiers_synced": 3, "dossiers_digitized": 3, "dossiers_reusing_data": 1, "dossiers_citizen_data": 2,
    "dossiers_with_result": 4, "dossiers_result_electronic": 2, "dossiers_digitized_any": 3,
    "dossiers_shared_for_reuse": 1,
    "petitions_received": 4, "petitions_on_time": 2, "petitions_rated": 2, "petitions_satisfied": 1,
    "publications_new": 2, "publications_new_on_time": 1, "publications_update": 2, "publications_update_on_time": 1,
    "procedures_listed": 3, "procedures_full_content": 2, "procedures_citizen_data": 1,
    "procedures_certifying_copies": 2, "procedures_electronic_copy": 1,
    "documents_total": 6, "documents_electronic": 5, "documents_sent_electronic": 2,
    "documents_sent_personal_signed": 1, "documents_sent_agency_signed": 2, "documents_due": 2, "documents_on_time": 1,
}
# Explain: what costs points, per indicator (id -> reasons)
EXPECTED_COSTS = {
    "dossier_on_time_rate": {"D2", "D5"},
    "dossier_satisfaction": {"D2", "D3", "D5"},
    "dossier_online_payment": {"D3", "D4"},  # fee-bearing, not paid online
    "dossier_full_online_rate": {"D3"},  # full-online procedure filed in person
    "dossier_sync_rate": {"D3", "D5"},
    "dossier_electronic_result_rate": {"D2", "D5"},
    "dossier_digitized_rate": {"D2", "D5"},
    "dossier_reused_data_rate": {"D2", "D3", "D4", "D5"},
    "dossier_shared_for_reuse_rate": {"D3", "D4"},
    "dossier_citizen_data_rate": {"D2", "D4", "D5"},
    "petition_on_time_rate": {"P2", "P3"},
    "petition_satisfaction_rate": {"P2"},
    "publication_new_on_time_rate": {"U2"},
    "publication_update_on_time_rate": {"U3"},
    "procedure_full_content_rate": {"1.010709"},
    "procedure_citizen_data_rate": {"1.010709", "1.010710"},
    "procedure_electronic_copy_rate": {"1.010710"},
    "doc_electronic_rate": {"H56.05,2026/10/04,3/CV"},
    "doc_personal_sign_rate": {"H56.05,2026/10/03,2/CV"},
    "doc_agency_sign_rate": set(),
    "doc_on_time_rate": {"H56.07,2026/10/07,10/CV"},
}
EXPECTED_TOTAL = sum(points for _, _, points in EXPECTED.values())
EXPECTED_766_MAX = 100.0  # the 766 index's 100 points: every indicator has a value
EXPECTED_MAX = EXPECTED_766_MAX + 20  # and the DTI documents' 20
EXPECTED_766 = sum(points for code, (_, _, points) in EXPECTED.items()
                   if code.startswith(("dossier_", "petition_", "publication_", "procedure_")))

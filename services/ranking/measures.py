"""What ranking counts, defined once and free of I/O: each measure of
services/ranking/rules.MEASURES as a predicate over one entity's state row (or a distinct
count), the SQL that counts them for a period (from the states, or from the day snapshots),
and the plan Explain follows to list the rows that cost points. The scores and Explain use
the same definitions; services/ranking/store.py runs them against ClickHouse.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import NamedTuple

from dti_pulse.localtime import DAY_MS, LOCAL_OFFSET_MS, day_sql, local_day
from dti_pulse.schema import DAY_MEASURE_COLUMNS, DOSSIER_DIGITAL_COLUMNS, TWO_DAYS, column_names, place_span
from dti_pulse.state import PROCEDURE_FACTS, PROCEDURE_FLAGS

# A dossier's flags of the 766 transparency and digitisation groups, each a 0/1 column.
_DIGITAL_FLAGS = column_names(DOSSIER_DIGITAL_COLUMNS)

# Rows of a family tied to the period, with the derived flags the predicates use.
_DOSSIER_ROWS = f"""
    SELECT dossier_id AS entity_id, agency_code, service_level, channel, has_fee, paid, paid_online, procedure_code,
        rated, satisfied, {", ".join(_DIGITAL_FLAGS)}, received_at_ms, due_at_ms, due_effective_ms, has_end, end_at_ms,
        paused_ms, supplement_count, last_status,
        -- docs/domain.md, Indicators: resolved by the (pause-adjusted) due time, or still open and not yet due
        late_forced = 0 AND if(has_end = 1 AND end_at_ms <= {{judged_at:Int64}},
                               end_at_ms <= due_effective_ms,
                               {{judged_at:Int64}} <= due_effective_ms) AS on_time
    FROM __DOSSIERS__
    WHERE has_received = 1 AND received_at_ms >= {{start:Int64}} AND received_at_ms < {{end:Int64}}
        AND agency_code IN {{agencies:Array(String)}} AND __RECEIVED_LIVE__
"""

# Recall notices (business_type 1) are not documents of their own, and a document whose
# recall was agreed (status 15 on any side) no longer counts for anyone. No FINAL is needed
# for the recalls: a row with recalled = 1 stays so in every later version.
_COUNTED_DOCUMENTS = ("classified = 0 AND business_type != 1 "
                      "AND document_id NOT IN (SELECT document_id FROM __RECALLS__ WHERE recalled = 1)")

# A document is tied to the period by the time it was sent (or, for the recipient, received).
_DOCUMENT_ROWS = f"""
    SELECT document_id AS entity_id, agency_code, sent, received, electronic, personal_signature, agency_signature,
        signed, has_due, due_at_ms, completed, completed_at_ms, sent_at_ms, received_at_ms, last_status,
        sent = 1 AND sent_at_ms >= {{start:Int64}} AND sent_at_ms < {{end:Int64}} AND __SENT_LIVE__ AS sent_in_period,
        received = 1 AND received_at_ms >= {{start:Int64}} AND received_at_ms < {{end:Int64}} AND __RECEIVED_LIVE__
            AS received_in_period,
        if(sent = 1, sent_in_period, received_in_period) AS in_period,
        completed = 1 AND completed_at_ms <= {{judged_at:Int64}} AS completed_by_judgement
    FROM __DOCUMENTS__
    WHERE agency_code IN {{agencies:Array(String)}}
        AND ((sent = 1 AND sent_at_ms >= {{start:Int64}} AND sent_at_ms < {{end:Int64}})
          OR (received = 1 AND received_at_ms >= {{start:Int64}} AND received_at_ms < {{end:Int64}}))
        AND {_COUNTED_DOCUMENTS}
"""


# A citizen's petition, tied to the period by the time it was received.
_PETITION_ROWS = """
    SELECT petition_id AS entity_id, agency_code, received_at_ms, due_at_ms, answered, answered_at_ms, rated, satisfied,
        -- docs/domain.md, Indicators: answered by its due time, or still open and not yet due
        if(answered = 1 AND answered_at_ms <= {judged_at:Int64}, answered_at_ms <= due_at_ms,
           {judged_at:Int64} <= due_at_ms) AS on_time
    FROM __PETITIONS__
    WHERE has_received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64}
        AND agency_code IN {agencies:Array(String)} AND __RECEIVED_LIVE__
"""


# A procedure's publication on the national database, tied to the period by the day the
# decision announcing it (new, or changed) was made.
_PUBLICATION_ROWS = """
    SELECT publication_id AS entity_id, agency_code, procedure_code, change, decided_at_ms, due_at_ms, published,
        published_at_ms,
        -- docs/domain.md, Indicators: published by its due time, or not yet published and not yet due
        if(published = 1 AND published_at_ms <= {judged_at:Int64}, published_at_ms <= due_at_ms,
           {judged_at:Int64} <= due_at_ms) AS on_time
    FROM __PUBLICATIONS__
    WHERE has_decided = 1 AND decided_at_ms >= {start:Int64} AND decided_at_ms < {end:Int64}
        AND agency_code IN {agencies:Array(String)} AND __DECIDED_LIVE__
"""


# A procedure an agency offers at the period's end (now, while the period is open): the
# listing in force then, unless it withdrew the procedure. The catalogue is a fact at a
# moment, not a sum over days: it is read whole, never from day snapshots.
_CATALOGUE_INSTANT = "least({end:Int64} - 1, {judged_at:Int64})"
_PROCEDURE_ROWS = f"""
    SELECT procedure_id AS entity_id, agency_code, versions_from_ms[version] AS listed_at_ms,
        {", ".join(f"bitTest(versions_flags[version], {PROCEDURE_FLAGS.index(name)}) AS {name}"
                   for name in PROCEDURE_FACTS)}
    FROM (SELECT procedure_id, agency_code, versions_from_ms, versions_flags,
              arrayLastIndex(t -> t <= {_CATALOGUE_INSTANT}, versions_from_ms) AS version
          FROM __PROCEDURES__ WHERE agency_code IN {{agencies:Array(String)}})
    WHERE version > 0 AND bitTest(versions_flags[version], {PROCEDURE_FLAGS.index("withdrawn")}) = 0
"""


@dataclass(frozen=True)
class Judged:
    """A measure that depends on the instant J items are judged at, in the form a day
    snapshot can keep: rows matching `always` count whatever J is; each row matching
    `pending` counts while J <= `until`, or once J >= `since` (SQL over the row)."""
    always: str
    pending: str
    until: str = ""
    since: str = ""


@dataclass(frozen=True)
class Measure:
    family: str  # "dossier", "document", "petition", "publication" or "procedure"
    predicate: str  # SQL over one row of the family
    describes: str  # what a row in this measure is, for Explain
    distinct: str = ""  # count distinct values of this column instead of rows
    # The day a row counts on: "received" (the dossier's, petition's or document's received_at),
    # "in_period" (a document's sent_at, or received_at if it was not sent by this agency) or
    # "decided" (a publication's decided_at); a procedure counts as of the period's end.
    tie: str = "received"
    judged: Judged | None = None  # set when the predicate depends on J
    # Why a row of the ratio's denominator is not in this measure (Explain's reason when this
    # is a ratio's numerator); empty: "not " + describes.
    shortfall: str = ""


_DIGITIZED = "(digitized_on_receipt = 1 OR (result_issued = 1 AND result_electronic = 1))"
_SETTLED_ON_TIME = "late_forced = 0 AND has_end = 1 AND end_at_ms <= due_effective_ms"
_PENDING_ON_TIME = f"late_forced = 0 AND NOT ({_SETTLED_ON_TIME})"
_ANSWERED_ON_TIME = "answered = 1 AND answered_at_ms <= due_at_ms"
_PUBLISHED_ON_TIME = "published = 1 AND published_at_ms <= due_at_ms"


def _publications(change: str) -> dict[str, Measure]:
    """The publications of one kind of change due in the period, and those published on time."""
    due = f"change = '{change}'"
    return {
        f"publications_{change}": Measure("publication", due, f"a decision to publish ({change}) made in the period",
                                          tie="decided"),
        f"publications_{change}_on_time": Measure(
            "publication", f"{due} AND on_time", "published by its due time, or not yet due", tie="decided",
            judged=Judged(f"{due} AND {_PUBLISHED_ON_TIME}", f"{due} AND NOT ({_PUBLISHED_ON_TIME})",
                          until="due_at_ms")),
    }


MEASURE_DEFINITIONS: dict[str, Measure] = {
    "dossiers_received": Measure("dossier", "1", "received in the period"),
    # on_time is J-dependent; resolved by the due time means on time for every later J, and
    # otherwise J <= due_effective decides (a dossier resolved late was pending until then).
    "dossiers_on_time": Measure("dossier", "on_time", "resolved by its due time (after pauses), or open and not yet due",
                                judged=Judged(_SETTLED_ON_TIME, _PENDING_ON_TIME, until="due_effective_ms")),
    "dossiers_late": Measure("dossier", "NOT on_time", "late: resolved after its due time (after pauses), open past it, or more than one supplement request",
                             judged=Judged("late_forced = 1", _PENDING_ON_TIME, since="due_effective_ms + 1")),
    "dossiers_full_online_procedures": Measure("dossier", "service_level = 'full_online'", "of a full-online procedure"),
    "dossiers_full_online_received_online": Measure("dossier", "service_level = 'full_online' AND channel = 2", "of a full-online procedure, received online"),
    "dossiers_with_fee": Measure("dossier", "has_fee = 1", "with a fee"),
    "dossiers_paid_online": Measure("dossier", "has_fee = 1 AND paid_online = 1", "paid online"),
    "fee_procedures": Measure("dossier", "has_fee = 1", "fee-bearing procedures", distinct="procedure_code"),
    "fee_procedures_paid_online": Measure("dossier", "has_fee = 1 AND paid_online = 1",
                                          "fee-bearing procedures paid online at least once", distinct="procedure_code"),
    # No procedure catalogue: the fee-bearing procedures are those seen, so all had dossiers.
    "fee_procedures_with_dossiers": Measure("dossier", "has_fee = 1", "fee-bearing procedures with dossiers",
                                            distinct="procedure_code"),
    "dossiers_rated_unsatisfied": Measure("dossier", "rated = 1 AND satisfied = 0", "rated unsatisfied"),
    # Decision-766 transparency and digitisation (docs/domain.md, Indicators)
    "dossiers_synced": Measure("dossier", "synced = 1", "synced to the national portal"),
    "dossiers_digitized": Measure("dossier", "digitized_on_receipt = 1", "digitised when received"),
    "dossiers_reusing_data": Measure("dossier", "reused_digitized_data = 1", "reused data digitised before"),
    "dossiers_citizen_data": Measure("dossier", "citizen_data_used = 1", "used the national population database"),
    "dossiers_with_result": Measure("dossier", "result_issued = 1", "with a result issued"),
    "dossiers_result_electronic": Measure("dossier", "result_issued = 1 AND result_electronic = 1",
                                          "with an electronic result"),
    "dossiers_digitized_any": Measure("dossier", _DIGITIZED, "digitised (components or result)"),
    "dossiers_shared_for_reuse": Measure("dossier", f"{_DIGITIZED} AND result_shared = 1",
                                         "digitised and shared to the citizen's store"),
    # Citizens' petitions (Decision-766 satisfaction group)
    "petitions_received": Measure("petition", "1", "received in the period"),
    "petitions_on_time": Measure("petition", "on_time", "answered by its due time, or open and not yet due",
                                 judged=Judged(_ANSWERED_ON_TIME, f"NOT ({_ANSWERED_ON_TIME})", until="due_at_ms")),
    "petitions_rated": Measure("petition", "rated = 1", "rated by the petitioner"),
    "petitions_satisfied": Measure("petition", "rated = 1 AND satisfied = 1", "rated satisfied"),
    # Procedures published on the national database (Decision-766 transparency group)
    **_publications("new"),
    **_publications("update"),
    # The procedure catalogue at the period's end (Decision-766 transparency and digitisation)
    "procedures_listed": Measure("procedure", "1", "offered at the period's end"),
    "procedures_full_content": Measure("procedure", "full_content = 1", "published with its full content"),
    "procedures_citizen_data": Measure("procedure", "citizen_data_connected = 1",
                                       "connected to the national population database"),
    "procedures_certifying_copies": Measure("procedure", "certifies_copies = 1", "certifies copies from originals"),
    "procedures_electronic_copy": Measure("procedure", "certifies_copies = 1 AND electronic_copy = 1",
                                          "issues certified copies electronically"),
    "documents_total": Measure("document", "in_period", "sent or received in the period (not classified, not recalled)",
                               tie="in_period"),
    "documents_electronic": Measure("document", "in_period AND electronic = 1", "electronic", tie="in_period"),
    "documents_sent_electronic": Measure("document", "sent_in_period AND electronic = 1", "sent electronically",
                                         tie="in_period"),
    "documents_sent_personal_signed": Measure("document", "sent_in_period AND electronic = 1 AND personal_signature = 1",
                                              "carries a valid personal signature", tie="in_period"),
    "documents_sent_agency_signed": Measure("document", "sent_in_period AND electronic = 1 AND agency_signature = 1",
                                            "carries a valid agency signature", tie="in_period"),
    "documents_due": Measure("document", "received_in_period AND has_due = 1 "
                                         "AND (completed_by_judgement OR due_at_ms < {judged_at:Int64})",
                             "received with a due date that has passed, or completed",
                             judged=Judged("0", "has_due = 1",
                                           since="if(completed = 1, least(completed_at_ms, due_at_ms + 1), due_at_ms + 1)")),
    "documents_on_time": Measure("document", "received_in_period AND has_due = 1 AND completed_by_judgement "
                                             "AND completed_at_ms <= due_at_ms", "completed by its due date",
                                 judged=Judged("0", "has_due = 1 AND completed = 1 AND completed_at_ms <= due_at_ms",
                                               since="completed_at_ms")),
}
# Explain's reason for a row that misses a ratio's numerator, where "not " + describes
# would say something else (the console shows the same texts, translated).
_SHORTFALLS = {
    "documents_electronic": "Not an electronic document",
    "documents_on_time": "Not completed by its due date",
    "documents_sent_agency_signed": "No valid agency signature",
    "documents_sent_personal_signed": "No valid personal signature",
    "dossiers_full_online_received_online": "Full-online procedure, not received online",
    "dossiers_on_time": "Resolved after its due time (after pauses), or open past it",
    "dossiers_paid_online": "Has a fee, not paid online",
    "dossiers_synced": "Not synced to the national portal",
    "dossiers_digitized": "Components not digitised when received",
    "dossiers_reusing_data": "Did not reuse data digitised before",
    "dossiers_citizen_data": "Did not use the national population database",
    "dossiers_result_electronic": "Result not issued electronically",
    "dossiers_shared_for_reuse": "Digitised, not shared to the citizen's store",
    "petitions_on_time": "Answered after its due time, or open past it",
    "petitions_satisfied": "Rated not satisfied",
    "publications_new_on_time": "Published after its due time, or still unpublished past it",
    "publications_update_on_time": "Published after its due time, or still unpublished past it",
    "procedures_full_content": "Not published with its full content",
    "procedures_citizen_data": "Not connected to the national population database",
    "procedures_electronic_copy": "Certifies copies, not electronically",
}
MEASURE_DEFINITIONS = {name: replace(measure, shortfall=_SHORTFALLS.get(name, ""))
                       for name, measure in MEASURE_DEFINITIONS.items()}

ROWS = {"dossier": _DOSSIER_ROWS, "document": _DOCUMENT_ROWS, "petition": _PETITION_ROWS,
        "publication": _PUBLICATION_ROWS, "procedure": _PROCEDURE_ROWS}

# What Explain shows of a row, per family: (label, SQL expression).
FACTS = {
    "dossier": [("received_at", "received_at_ms"), ("due_at", "due_at_ms"),
                ("due_after_pauses", "due_effective_ms"), ("ended_at", "if(has_end = 1, end_at_ms, 0)"),
                ("paused_days", "round(paused_ms / 86400000, 2)"), ("supplement_requests", "supplement_count"),
                ("last_status", "last_status"), ("service_level", "service_level"), ("channel", "channel"),
                ("has_fee", "has_fee"), ("paid", "paid"), ("paid_online", "paid_online"),
                ("rated", "rated"), ("satisfied", "satisfied"), *((flag, flag) for flag in _DIGITAL_FLAGS)],
    "document": [("sent_at", "if(sent = 1, sent_at_ms, 0)"), ("received_at", "if(received = 1, received_at_ms, 0)"),
                 ("electronic", "electronic"), ("signed", "signed"), ("personal_signature", "personal_signature"),
                 ("agency_signature", "agency_signature"), ("due_at", "if(has_due = 1, due_at_ms, 0)"),
                 ("completed_at", "if(completed = 1, completed_at_ms, 0)"), ("last_status", "last_status")],
    "petition": [("received_at", "received_at_ms"), ("due_at", "due_at_ms"),
                 ("answered_at", "if(answered = 1, answered_at_ms, 0)"), ("rated", "rated"), ("satisfied", "satisfied")],
    "publication": [("procedure_code", "procedure_code"), ("decided_at", "decided_at_ms"), ("due_at", "due_at_ms"),
                    ("published_at", "if(published = 1, published_at_ms, 0)")],
    "procedure": [("listed_at", "listed_at_ms"), *((name, name) for name in PROCEDURE_FACTS)],
}
INSTANT_FACTS = {"received_at", "due_at", "due_after_pauses", "ended_at", "sent_at", "completed_at", "answered_at",
                 "decided_at", "published_at", "listed_at"}


def bind(sql: str, sources: dict[str, str]) -> str:
    for token, table in sources.items():
        sql = sql.replace(token, table)
    return sql


def _aggregate(name: str, measure: Measure, as_sets: bool = False) -> str:
    if measure.distinct:
        if as_sets:  # to be united with a day snapshot's sets
            return f"groupUniqArrayIf({measure.distinct}, {measure.predicate}) AS {name}"
        return f"uniqExactIf({measure.distinct}, {measure.predicate}) AS {name}"
    return f"countIf({measure.predicate}) AS {name}"


def measures_sql(family: str, as_sets: bool = False) -> str:
    columns = ",\n    ".join(_aggregate(name, m, as_sets) for name, m in MEASURE_DEFINITIONS.items()
                              if m.family == family)
    return f"SELECT agency_code,\n    {columns}\nFROM ({ROWS[family]})\nGROUP BY agency_code"


MEASURES_SQL = {family: measures_sql(family) for family in ROWS}
# Only the rows of (agency, day) pairs that no clean day snapshot covers.
_LIVE_GATES = {token: f"((agency_code, {day_sql(column)}) IN {{live:Array(Tuple(String, Int32))}} "
                      f"OR {day_sql(column)} >= {{live_from:Int32}})"
               for token, column in (("__RECEIVED_LIVE__", "received_at_ms"), ("__SENT_LIVE__", "sent_at_ms"),
                                     ("__DECIDED_LIVE__", "decided_at_ms"))}
NO_DAY = 2**31 - 1
UNGATED = {"__RECEIVED_LIVE__": "1", "__SENT_LIVE__": "1", "__DECIDED_LIVE__": "1"}
MEASURES_SQL = {family: bind(sql, UNGATED) for family, sql in MEASURES_SQL.items()}

# Only the rows placed on the days asked (dti_pulse.schema.PLACE_DAY_SQL: the day a row
# counts on), a range of each agency's span of days whatever the history kept: the days in
# place_days, those from first_day to last_day, and the document sides counting on two days.
# The spans are named as well as the days: the sorting key starts with the span, and
# ClickHouse prunes granules only by conditions on the key's own columns (a negative day is
# its own span).
PLACED = (f"(place_span = {TWO_DAYS} "
           "OR (place_span IN {place_spans:Array(Int32)} AND place_day IN {place_days:Array(Int32)}) "
           "OR (place_span >= {first_span:Int32} AND place_span <= {last_span:Int32} "
           "AND place_day >= {first_day:Int32} AND place_day <= {last_day:Int32}))")
_PLACED_TOKEN = " AND __PLACED__"

# Where the rows come from: the live state tables, or tables of states rebuilt as of an instant.
# The explicit PREWHERE on agency_code and place_day filters rows as they are read, before
# FINAL merges them: about twice as fast on a national table (bench/README.md), and safe
# because both are in the sorting key, so every version of an entity's row passes or fails
# together (a PREWHERE on any other column could keep an old version whose newest one
# fails); a state that moved left a tombstone, the newest version of where it was.
LIVE_SOURCES = {"__DOSSIERS__": f"dossier_state FINAL PREWHERE agency_code IN {{agencies:Array(String)}} AND {PLACED}",
                "__DOCUMENTS__": f"document_state FINAL PREWHERE agency_code IN {{agencies:Array(String)}} AND {PLACED}",
                "__PETITIONS__": f"petition_state FINAL PREWHERE agency_code IN {{agencies:Array(String)}} AND {PLACED}",
                "__PUBLICATIONS__": f"publication_state FINAL PREWHERE agency_code IN {{agencies:Array(String)}} AND {PLACED}",
                "__PROCEDURES__": "procedure_state FINAL",  # placed on no day: the catalogue is small
                "__RECALLS__": "document_state"}
LIVE_MEASURES_SQL = {family: bind(bind(measures_sql(family, as_sets=True), _LIVE_GATES), LIVE_SOURCES)
                      for family in ROWS}


# Day snapshots (table day_measures, one row per agency and local day): what each measure
# counts of the rows tied to that day, kept so that a period of whole days sums a few
# thousand snapshot rows instead of reading every entity state of a cohort. A J-dependent
# measure keeps its `pending` rows as a histogram of the instants where they flip; J is a
# whole minute, so the instants are kept to the minute, and to the day when they lie more
# than a day before the snapshot was made (J is then a local midnight or later than them).
# The aggregator marks a pair dirty before it writes states of that pair (see
# ClickHouseStateStore.write); a dirty pair is counted from the entity states (the exact,
# slow way) until it is recomputed.
MINUTE_MS = 60_000
DAY_MEASURE_NAMES = column_names(DAY_MEASURE_COLUMNS)
_SNAPSHOT_COUNTED_DOCUMENTS = bind(_COUNTED_DOCUMENTS, {"__RECALLS__": LIVE_SOURCES["__RECALLS__"]})
_SNAPSHOT_ROWS = {
    ("dossier", "received"): f"""
        SELECT * EXCEPT (events_blob), {day_sql('received_at_ms')} AS day FROM dossier_state FINAL PREWHERE agency_code IN {{agencies:Array(String)}}{_PLACED_TOKEN}
        WHERE has_received = 1 AND (agency_code, day) IN {{pairs:Array(Tuple(String, Int32))}}""",
    ("petition", "received"): f"""
        SELECT * EXCEPT (events_blob), {day_sql('received_at_ms')} AS day FROM petition_state FINAL PREWHERE agency_code IN {{agencies:Array(String)}}{_PLACED_TOKEN}
        WHERE has_received = 1 AND (agency_code, day) IN {{pairs:Array(Tuple(String, Int32))}}""",
    ("publication", "decided"): f"""
        SELECT * EXCEPT (events_blob), {day_sql('decided_at_ms')} AS day FROM publication_state FINAL PREWHERE agency_code IN {{agencies:Array(String)}}{_PLACED_TOKEN}
        WHERE has_decided = 1 AND (agency_code, day) IN {{pairs:Array(Tuple(String, Int32))}}""",
    ("document", "in_period"): f"""
        SELECT * EXCEPT (events_blob), {day_sql('if(sent = 1, sent_at_ms, received_at_ms)')} AS day,
            1 AS in_period, sent AS sent_in_period, 0 AS received_in_period
        FROM document_state FINAL PREWHERE agency_code IN {{agencies:Array(String)}}{_PLACED_TOKEN}
        WHERE (sent = 1 OR received = 1) AND (agency_code, day) IN {{pairs:Array(Tuple(String, Int32))}}
            AND {_SNAPSHOT_COUNTED_DOCUMENTS}""",
    ("document", "received"): f"""
        SELECT * EXCEPT (events_blob), {day_sql('received_at_ms')} AS day, 0 AS in_period, 0 AS sent_in_period, 1 AS received_in_period
        FROM document_state FINAL PREWHERE agency_code IN {{agencies:Array(String)}}{_PLACED_TOKEN}
        WHERE received = 1 AND (agency_code, day) IN {{pairs:Array(Tuple(String, Int32))}}
            AND {_SNAPSHOT_COUNTED_DOCUMENTS}""",
}


def _flip_bucket(instant: str, rounding: str) -> str:
    """The instant rounded so that comparing a whole-minute J with it gives the same answer:
    down for `J <= t`, up for `J >= t`; to the local midnight when older than {recent}."""
    if rounding == "down":
        minute, day = f"({instant}) % {MINUTE_MS}", f"(({instant}) + {LOCAL_OFFSET_MS}) % {DAY_MS}"
        return f"if(({instant}) >= {{recent:Int64}}, ({instant}) - {minute}, ({instant}) - {day})"
    minute = f"({MINUTE_MS} - ({instant}) % {MINUTE_MS}) % {MINUTE_MS}"
    day = f"({DAY_MS} - (({instant}) + {LOCAL_OFFSET_MS}) % {DAY_MS}) % {DAY_MS}"
    return f"if(({instant}) >= {{recent:Int64}}, ({instant}) + {minute}, ({instant}) + {day})"


def _snapshot_sql(family: str, tie: str) -> tuple[str, list[tuple[str, str]]]:
    """The snapshot columns of one family and tie, per (agency, day), and (name, kind) of each."""
    columns, names = [], []
    for name, m in MEASURE_DEFINITIONS.items():
        if m.family != family or m.tie != tie:
            continue
        if m.distinct:
            columns.append(f"groupUniqArrayIf({m.distinct}, {m.predicate})")
            names.append((name, "set"))
        elif m.judged:
            columns.append(f"countIf({m.judged.always})")
            names.append((name, "count"))
            instant, rounding = (m.judged.until, "down") if m.judged.until else (m.judged.since, "up")
            columns.append(f"sumMapIf([{_flip_bucket(instant, rounding)}], [toUInt64(1)], {m.judged.pending})")
            names.append((name, "steps"))
        else:
            columns.append(f"countIf({m.predicate})")
            names.append((name, "count"))
    sql = (f"SELECT agency_code, day, {', '.join(columns)} FROM ({_SNAPSHOT_ROWS[(family, tie)]}) "
           "GROUP BY agency_code, day")
    return sql, names


SNAPSHOT_SQL = {key: _snapshot_sql(*key) for key in _SNAPSHOT_ROWS}
# Which rows are read never changes what a snapshot counts: the fingerprint leaves it out,
# so that sorting the states by day (migration 4) did not mark every day for a rebuild.
SNAPSHOT_FINGERPRINT = hashlib.sha256(repr(sorted(
    (key, (bind(sql, {_PLACED_TOKEN: ""}), names)) for key, (sql, names) in SNAPSHOT_SQL.items())).encode()).hexdigest()
SNAPSHOT_SQL = {key: (bind(sql, {_PLACED_TOKEN: f" AND {PLACED}"}), names) for key, (sql, names) in SNAPSHOT_SQL.items()}


def _snapshot_read_sql() -> tuple[str, list[tuple[str, str]]]:
    """Sums a cohort's clean snapshots over whole days [first_day, end_day); lists its dirty days."""
    columns, names = ["sumMap(counts)", "groupArrayIf(day, dirty = 1)"], [("", "counts"), ("", "dirty")]
    for name, m in MEASURE_DEFINITIONS.items():
        if m.distinct:
            columns.append(f"groupUniqArrayArray(sets['{name}'])")
            names.append((name, "set"))
        elif m.judged:
            test = "t >= {judged_at:Int64}" if m.judged.until else "t <= {judged_at:Int64}"
            columns.append(f"sum(arraySum(arrayMap((t, n) -> if({test}, n, 0), steps['{name}'].1, steps['{name}'].2)))")
            names.append((name, "steps"))
    sql = (f"SELECT agency_code, {', '.join(columns)} FROM day_measures FINAL "
           "WHERE agency_code IN {agencies:Array(String)} AND day >= {first_day:Int32} AND day < {end_day:Int32} "
           "GROUP BY agency_code")
    return sql, names


SNAPSHOT_READ_SQL, SNAPSHOT_READ_NAMES = _snapshot_read_sql()


def placed_on(days: list[int], first_day: int = NO_DAY, last_day: int = NO_DAY - 1) -> dict:
    """The parameters of PLACED: these days, and those from first_day to last_day."""
    return {"place_days": days, "place_spans": sorted({place_span(day) for day in days}),
            "first_day": first_day, "last_day": last_day,
            "first_span": place_span(first_day), "last_span": place_span(last_day)}


def period_parameters(agency_codes, start_ms: int, end_ms: int, judged_at_ms: int) -> dict:
    """The query parameters of a period's measures for some agencies."""
    return {"agencies": list(agency_codes), "start": start_ms, "end": end_ms, "judged_at": judged_at_ms,
            **placed_on([], local_day(start_ms), local_day(end_ms - 1))}


class NotExplainable(ValueError):
    pass


class DataVersion(NamedTuple):
    """What the measures are computed from, and what the live activity is: each changes
    when its tables get an insert. The day snapshots are left out: a rebuild or a dirty mark
    never changes a measure (a dirty day is read from the states)."""
    measures: tuple
    activity: tuple


@dataclass(frozen=True)
class ExplainPlan:
    family: str
    predicate: str  # the rows that cost points
    reasons: list[tuple[str, str, str]]  # (code, text, predicate): which of them applies to a row


def explain_plan(numerator, denominator) -> ExplainPlan:
    """Which rows cost points on a ratio. With subtracted terms (r = 1 - late - unsatisfied)
    they are the rows of those terms; otherwise the rows of the denominator that are not
    in the numerator."""
    terms = [*numerator, *denominator]
    measures = [MEASURE_DEFINITIONS[t.measure] for t in terms]
    if any(m.distinct for m in measures):
        raise NotExplainable("this ratio counts procedures, not single dossiers or documents")
    if len({m.family for m in measures}) != 1:
        raise NotExplainable("this ratio mixes families of items (dossiers, documents, petitions, publications, procedures)")
    family = measures[0].family
    subtracted = [t.measure for t in numerator if t.sign < 0]
    if subtracted:
        reasons = [(name, MEASURE_DEFINITIONS[name].describes, MEASURE_DEFINITIONS[name].predicate)
                   for name in subtracted]
    else:
        if len(numerator) != 1 or len(denominator) != 1:
            raise NotExplainable("only single-measure ratios or subtracted terms can be explained")
        counted = MEASURE_DEFINITIONS[numerator[0].measure]
        whole = MEASURE_DEFINITIONS[denominator[0].measure]
        reasons = [(f"not:{numerator[0].measure}", counted.shortfall or f"not {counted.describes}",
                    f"({whole.predicate}) AND NOT ({counted.predicate})")]
    return ExplainPlan(family, " OR ".join(f"({p})" for _, _, p in reasons), reasons)


FAMILIES = tuple(ROWS)


def measure_names(families=FAMILIES) -> list[str]:
    """The measures counted over the states of these families."""
    return [name for name, m in MEASURE_DEFINITIONS.items() if m.family in families]


def every_measure(found: dict[str, dict[str, int]], families=FAMILIES) -> dict[str, dict[str, int]]:
    names = measure_names(families)
    return {agency: {name: counts.get(name, 0) for name in names} for agency, counts in found.items()}

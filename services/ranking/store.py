"""ClickHouse adapter of ranking.

Each measure of services/ranking/rules.MEASURES is defined once, as a predicate over one
entity's state row (or a distinct count): the scores count rows that match, and Explain
lists the rows that cost points. Both use the same definitions.
"""
from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass

from dti_pulse.schema import DOCUMENT_COLUMNS, DOSSIER_COLUMNS, column_names
from services.aggregator.state import summarize
from services.aggregator.store import decode_events

# Rows of a family tied to the period, with the derived flags the predicates use.
_DOSSIER_ROWS = """
    SELECT dossier_id AS entity_id, agency_code, service_level, channel, has_fee, paid, paid_online, procedure_code,
        rated, satisfied, received_at_ms, due_at_ms, due_effective_ms, has_end, end_at_ms, paused_ms,
        supplement_count, last_status,
        -- domain.md §4.2: resolved by the (pause-adjusted) due time, or still open and not yet due
        late_forced = 0 AND if(has_end = 1 AND end_at_ms <= {judged_at:Int64},
                               end_at_ms <= due_effective_ms,
                               {judged_at:Int64} <= due_effective_ms) AS on_time
    FROM __DOSSIERS__
    WHERE has_received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64}
        AND agency_code IN {agencies:Array(String)}
"""

# A document is tied to the period by the time it was sent (or, for the recipient, received).
# Recall notices (business_type 1) are not documents of their own, and a document whose
# recall was agreed (status 15 on any side) no longer counts for anyone.
_DOCUMENT_ROWS = """
    SELECT document_id AS entity_id, agency_code, sent, received, electronic, personal_signature, agency_signature,
        signed, has_due, due_at_ms, completed, completed_at_ms, sent_at_ms, received_at_ms, last_status,
        sent = 1 AND sent_at_ms >= {start:Int64} AND sent_at_ms < {end:Int64} AS sent_in_period,
        received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64} AS received_in_period,
        if(sent = 1, sent_in_period, received_in_period) AS in_period,
        completed = 1 AND completed_at_ms <= {judged_at:Int64} AS completed_by_judgement
    FROM __DOCUMENTS__
    WHERE classified = 0 AND business_type != 1 AND agency_code IN {agencies:Array(String)}
        AND ((sent = 1 AND sent_at_ms >= {start:Int64} AND sent_at_ms < {end:Int64})
          OR (received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64}))
        -- no FINAL needed: a row with recalled = 1 stays so in every later version
        AND document_id NOT IN (SELECT document_id FROM __RECALLS__ WHERE recalled = 1)
"""


@dataclass(frozen=True)
class Measure:
    family: str  # "dossier" or "document"
    predicate: str  # SQL over one row of the family
    describes: str  # what a row in this measure is, for Explain
    distinct: str = ""  # count distinct values of this column instead of rows


MEASURE_DEFINITIONS: dict[str, Measure] = {
    "dossiers_received": Measure("dossier", "1", "received in the period"),
    "dossiers_on_time": Measure("dossier", "on_time", "resolved by its due time (after pauses), or open and not yet due"),
    "dossiers_late": Measure("dossier", "NOT on_time", "late: resolved after its due time (after pauses), open past it, or more than one supplement request"),
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
    "documents_total": Measure("document", "in_period", "sent or received in the period (not classified, not recalled)"),
    "documents_electronic": Measure("document", "in_period AND electronic = 1", "electronic"),
    "documents_sent_electronic": Measure("document", "sent_in_period AND electronic = 1", "sent electronically"),
    "documents_sent_personal_signed": Measure("document", "sent_in_period AND electronic = 1 AND personal_signature = 1", "carries a valid personal signature"),
    "documents_sent_agency_signed": Measure("document", "sent_in_period AND electronic = 1 AND agency_signature = 1", "carries a valid agency signature"),
    "documents_due": Measure("document", "received_in_period AND has_due = 1 "
                                         "AND (completed_by_judgement OR due_at_ms < {judged_at:Int64})",
                             "received with a due date that has passed, or completed"),
    "documents_on_time": Measure("document", "received_in_period AND has_due = 1 AND completed_by_judgement "
                                             "AND completed_at_ms <= due_at_ms", "completed by its due date"),
}

_ROWS = {"dossier": _DOSSIER_ROWS, "document": _DOCUMENT_ROWS}

# What Explain shows of a row, per family: (label, SQL expression).
FACTS = {
    "dossier": [("received_at", "received_at_ms"), ("due_at", "due_at_ms"),
                ("due_after_pauses", "due_effective_ms"), ("ended_at", "if(has_end = 1, end_at_ms, 0)"),
                ("paused_days", "round(paused_ms / 86400000, 2)"), ("supplement_requests", "supplement_count"),
                ("last_status", "last_status"), ("service_level", "service_level"), ("channel", "channel"),
                ("has_fee", "has_fee"), ("paid", "paid"), ("paid_online", "paid_online"),
                ("rated", "rated"), ("satisfied", "satisfied")],
    "document": [("sent_at", "if(sent = 1, sent_at_ms, 0)"), ("received_at", "if(received = 1, received_at_ms, 0)"),
                 ("electronic", "electronic"), ("signed", "signed"), ("personal_signature", "personal_signature"),
                 ("agency_signature", "agency_signature"), ("due_at", "if(has_due = 1, due_at_ms, 0)"),
                 ("completed_at", "if(completed = 1, completed_at_ms, 0)"), ("last_status", "last_status")],
}
INSTANT_FACTS = {"received_at", "due_at", "due_after_pauses", "ended_at", "sent_at", "completed_at"}


def _aggregate(name: str, measure: Measure) -> str:
    if measure.distinct:
        return f"uniqExactIf({measure.distinct}, {measure.predicate}) AS {name}"
    return f"countIf({measure.predicate}) AS {name}"


def measures_sql(family: str) -> str:
    columns = ",\n    ".join(_aggregate(name, m) for name, m in MEASURE_DEFINITIONS.items() if m.family == family)
    return f"SELECT agency_code,\n    {columns}\nFROM ({_ROWS[family]})\nGROUP BY agency_code"


_MEASURES_SQL = {family: measures_sql(family) for family in _ROWS}

# Where the rows come from: the live state tables, or tables of states rebuilt as of an instant.
# The explicit PREWHERE on agency_code filters rows as they are read, before FINAL merges
# them: about twice as fast on a national table (bench/README.md), and safe because
# agency_code is in the sorting key, so every version of an entity passes or fails together
# (a PREWHERE on any other column could keep an old version whose newest one fails).
LIVE_SOURCES = {"__DOSSIERS__": "dossier_state FINAL PREWHERE agency_code IN {agencies:Array(String)}",
                "__DOCUMENTS__": "document_state FINAL PREWHERE agency_code IN {agencies:Array(String)}",
                "__RECALLS__": "document_state"}


def bind(sql: str, sources: dict[str, str]) -> str:
    for token, table in sources.items():
        sql = sql.replace(token, table)
    return sql


class NotExplainable(ValueError):
    pass


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
        raise NotExplainable("this ratio mixes dossiers and documents")
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
        reasons = [(f"not:{numerator[0].measure}", f"not {counted.describes}",
                    f"({whole.predicate}) AND NOT ({counted.predicate})")]
    return ExplainPlan(family, " OR ".join(f"({p})" for _, _, p in reasons), reasons)


class ClickHouseMeasures:
    def __init__(self, client):
        self.client = client

    @staticmethod
    def _parameters(agency_codes, start_ms, end_ms, judged_at_ms) -> dict:
        return {"agencies": list(agency_codes), "start": start_ms, "end": end_ms, "judged_at": judged_at_ms}

    @contextlib.contextmanager
    def _sources(self, agency_codes, start_ms: int, end_ms: int, as_of_ms: int | None):
        """The live tables, or, with as_of, the states of the agencies' entities rebuilt from
        the events ingest had accepted by then (in temporary tables, dropped after)."""
        if as_of_ms is None:
            yield LIVE_SOURCES
            return
        window = self._parameters(agency_codes, start_ms, end_ms, 0)
        dossiers = self.client.query(
            "SELECT dossier_id, argMax(events_blob, event_count) AS blob FROM dossier_state "
            "WHERE agency_code IN {agencies:Array(String)} AND has_received = 1 "
            "AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64} GROUP BY dossier_id",
            parameters=window, column_formats={"blob": "bytes"}).result_rows
        documents = self.client.query(
            "SELECT document_id, agency_code, argMax(events_blob, event_count) AS blob FROM document_state "
            "WHERE agency_code IN {agencies:Array(String)} "
            "AND ((sent = 1 AND sent_at_ms >= {start:Int64} AND sent_at_ms < {end:Int64}) "
            "  OR (received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64})) "
            "GROUP BY document_id, agency_code", parameters=window, column_formats={"blob": "bytes"}).result_rows
        recalls = self.client.query(
            "SELECT document_id, agency_code, argMax(events_blob, event_count) AS blob FROM document_state "
            "WHERE recalled = 1 GROUP BY document_id, agency_code", column_formats={"blob": "bytes"}).result_rows

        def as_of(key, blob):
            known = [e for e in decode_events(blob) if e.ingested_at_ms <= as_of_ms]
            return summarize(key, known) if known else None

        dossier_rows = [(*summary, b"") for dossier_id, blob in dossiers
                        if (summary := as_of(("dossier", dossier_id), blob)) is not None]
        document_rows = [(*summary, b"") for document_id, agency, blob in documents
                         if (summary := as_of(("document", document_id, agency), blob)) is not None]
        recalled = [(summary.document_id, 1) for document_id, agency, blob in recalls
                    if (summary := as_of(("document", document_id, agency), blob)) is not None and summary.recalled]
        suffix = uuid.uuid4().hex
        tables = {"__DOSSIERS__": f"as_of_dossiers_{suffix}", "__DOCUMENTS__": f"as_of_documents_{suffix}",
                  "__RECALLS__": f"as_of_recalls_{suffix}"}
        try:
            self.client.command(f"CREATE TABLE {tables['__DOSSIERS__']} ({DOSSIER_COLUMNS}) ENGINE = Memory")
            self.client.command(f"CREATE TABLE {tables['__DOCUMENTS__']} ({DOCUMENT_COLUMNS}) ENGINE = Memory")
            self.client.command(f"CREATE TABLE {tables['__RECALLS__']} (document_id String, recalled UInt8) ENGINE = Memory")
            for table, rows, names in ((tables["__DOSSIERS__"], dossier_rows, column_names(DOSSIER_COLUMNS)),
                                       (tables["__DOCUMENTS__"], document_rows, column_names(DOCUMENT_COLUMNS)),
                                       (tables["__RECALLS__"], recalled, ["document_id", "recalled"])):
                if rows:
                    self.client.insert(table, rows, column_names=names)
            yield tables
        finally:
            for table in tables.values():
                self.client.command(f"DROP TABLE IF EXISTS {table}")

    def measures(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
                 as_of_ms: int | None = None) -> dict[str, dict[str, int]]:
        """{agency_code: {measure: count}} for the agencies that have any data in the period."""
        parameters = self._parameters(agency_codes, start_ms, end_ms, judged_at_ms)
        found: dict[str, dict[str, int]] = defaultdict(dict)
        with self._sources(agency_codes, start_ms, end_ms, as_of_ms) as sources:
            for sql in _MEASURES_SQL.values():
                result = self.client.query(bind(sql, sources), parameters=parameters)
                names = result.column_names[1:]
                for row in result.result_rows:
                    found[row[0]].update(zip(names, (int(v) for v in row[1:])))
        return dict(found)

    def data_version(self) -> tuple:
        """Changes whenever an aggregate table gets an insert: block numbers only grow, and a
        merged part keeps the highest block number of what it merged."""
        return tuple(self.client.query(
            "SELECT maxIf(max_block_number, table = 'dossier_state'), maxIf(max_block_number, table = 'document_state'), "
            "maxIf(max_block_number, table = 'activity_minute'), "
            "countIf(table = 'schema_migrations') FROM system.parts WHERE database = currentDatabase() AND active"
        ).result_rows[0])

    def activity(self, agency_code: str | None, start_ms: int, end_ms: int) -> tuple[list, list]:
        """([(minute_ms, type, events)], [(agency_code, events, last_ingested_ms)]) in the
        window, for one agency or (None) all of them."""
        parameters = {"start": start_ms, "end": end_ms, "agency": agency_code or ""}
        where = ("minute_ms >= {start:Int64} AND minute_ms < {end:Int64}"
                 + (" AND agency_code = {agency:String}" if agency_code else ""))
        per_minute = self.client.query(
            f"SELECT minute_ms, event_type, sum(events) FROM activity_minute WHERE {where} "
            "GROUP BY minute_ms, event_type ORDER BY minute_ms", parameters=parameters).result_rows
        per_agency = self.client.query(
            f"SELECT agency_code, sum(events) AS n, max(last_ingested_ms) FROM activity_minute WHERE {where} "
            "GROUP BY agency_code ORDER BY n DESC, agency_code", parameters=parameters).result_rows
        return ([(int(m), t, int(n)) for m, t, n in per_minute],
                [(code, int(n), int(last)) for code, n, last in per_agency])

    def explain(self, plan: ExplainPlan, agency_code: str, start_ms: int, end_ms: int, judged_at_ms: int,
                offset: int, limit: int, as_of_ms: int | None = None) -> tuple[int, list[tuple[str, list[str], dict]]]:
        """(total, [(entity_id, [(reason code, reason)], facts)]) of one agency's rows that cost points, by id."""
        parameters = self._parameters([agency_code], start_ms, end_ms, judged_at_ms)
        facts = ", ".join(f"{expression} AS {label}" for label, expression in FACTS[plan.family])
        flags = ", ".join(f"({predicate}) AS reason_{i}" for i, (_, _, predicate) in enumerate(plan.reasons))
        with self._sources([agency_code], start_ms, end_ms, as_of_ms) as sources:
            rows_sql = bind(_ROWS[plan.family], sources)
            total = self.client.query(f"SELECT count() FROM ({rows_sql}) WHERE {plan.predicate}",
                                      parameters=parameters).result_rows[0][0]
            result = self.client.query(
                f"SELECT entity_id, {flags}, {facts} FROM ({rows_sql}) WHERE {plan.predicate} "
                f"ORDER BY entity_id LIMIT {int(limit)} OFFSET {int(offset)}", parameters=parameters)
        labels = result.column_names[1 + len(plan.reasons):]
        items = []
        for row in result.result_rows:
            reasons = [(code, text) for (code, text, _), flag in zip(plan.reasons, row[1:1 + len(plan.reasons)]) if flag]
            items.append((row[0], reasons, dict(zip(labels, row[1 + len(plan.reasons):]))))
        return int(total), items

"""Ranking as of an instant: the states of an agency's entities rebuilt from the events
ingest had accepted by then, so a figure can be asked again as it was shown at that time.

Each entity row keeps its events (`events_blob`); folding the ones accepted by the instant
with the kernel's fold gives the state the aggregator held then.
"""
from __future__ import annotations

import contextlib
import uuid

from dti_pulse.events import decode_events
from dti_pulse.schema import STATE_COLUMNS, column_names
from dti_pulse.state import summarize
from services.ranking.measures import LIVE_SOURCES, PLACED, period_parameters

_RECALL_COLUMNS = """
    document_id String,
    recalled UInt8
"""


@contextlib.contextmanager
def measure_sources(client, agency_codes, start_ms: int, end_ms: int, as_of_ms: int | None):
    """The tables the measures read: the live ones, or, with as_of, the agencies' states as
    of then, in temporary tables dropped on leaving."""
    if as_of_ms is None:
        yield LIVE_SOURCES
        return
    window = period_parameters(agency_codes, start_ms, end_ms, 0)
    # Dossiers and petitions count on the day they were received, publications on the day decided.
    received = {family: client.query(
        f"SELECT {family}_id, argMax(events_blob, event_count) AS blob FROM {family}_state "
        f"WHERE agency_code IN {{agencies:Array(String)}} AND {PLACED} AND is_deleted = 0 AND {flag} = 1 "
        f"AND {instant} >= {{start:Int64}} AND {instant} < {{end:Int64}} GROUP BY {family}_id",
        parameters=window, column_formats={"blob": "bytes"}).result_rows
        for family, flag, instant in (("dossier", "has_received", "received_at_ms"),
                                      ("petition", "has_received", "received_at_ms"),
                                      ("publication", "has_decided", "decided_at_ms"))}
    documents = client.query(
        "SELECT document_id, agency_code, argMax(events_blob, event_count) AS blob FROM document_state "
        f"WHERE agency_code IN {{agencies:Array(String)}} AND {PLACED} AND is_deleted = 0 "
        "AND ((sent = 1 AND sent_at_ms >= {start:Int64} AND sent_at_ms < {end:Int64}) "
        "  OR (received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64})) "
        "GROUP BY document_id, agency_code", parameters=window, column_formats={"blob": "bytes"}).result_rows
    # A procedure's listings are read whole: the catalogue at the period's end is what counts.
    procedures = client.query(
        "SELECT procedure_id, agency_code, argMax(events_blob, event_count) AS blob FROM procedure_state "
        "WHERE agency_code IN {agencies:Array(String)} AND is_deleted = 0 GROUP BY procedure_id, agency_code",
        parameters=window, column_formats={"blob": "bytes"}).result_rows
    recalls = client.query(
        "SELECT document_id, agency_code, argMax(events_blob, event_count) AS blob FROM document_state "
        "WHERE recalled = 1 AND is_deleted = 0 GROUP BY document_id, agency_code",
        column_formats={"blob": "bytes"}).result_rows

    def as_of(key, blob):
        known = [e for e in decode_events(blob) if e.ingested_at_ms <= as_of_ms]
        return summarize(key, known) if known else None

    received_rows = {family: [(*summary, b"") for entity_id, blob in found
                              if (summary := as_of((family, entity_id), blob)) is not None]
                     for family, found in received.items()}
    document_rows = [(*summary, b"") for document_id, agency, blob in documents
                     if (summary := as_of(("document", document_id, agency), blob)) is not None]
    procedure_rows = [(*summary, b"") for procedure_id, agency, blob in procedures
                      if (summary := as_of(("procedure", procedure_id, agency), blob)) is not None]
    recalled = [(summary.document_id, 1) for document_id, agency, blob in recalls
                if (summary := as_of(("document", document_id, agency), blob)) is not None and summary.recalled]
    suffix = uuid.uuid4().hex
    tables = {"__DOSSIERS__": f"as_of_dossiers_{suffix}", "__DOCUMENTS__": f"as_of_documents_{suffix}",
              "__PETITIONS__": f"as_of_petitions_{suffix}", "__PUBLICATIONS__": f"as_of_publications_{suffix}",
              "__PROCEDURES__": f"as_of_procedures_{suffix}",
              "__RECALLS__": f"as_of_recalls_{suffix}"}
    contents = ((tables["__DOSSIERS__"], STATE_COLUMNS["dossier"], received_rows["dossier"]),
                (tables["__DOCUMENTS__"], STATE_COLUMNS["document"], document_rows),
                (tables["__PETITIONS__"], STATE_COLUMNS["petition"], received_rows["petition"]),
                (tables["__PUBLICATIONS__"], STATE_COLUMNS["publication"], received_rows["publication"]),
                (tables["__PROCEDURES__"], STATE_COLUMNS["procedure"], procedure_rows),
                (tables["__RECALLS__"], _RECALL_COLUMNS, recalled))
    try:
        for table, columns, rows in contents:
            client.command(f"CREATE TABLE {table} ({columns}) ENGINE = Memory")
            if rows:
                client.insert(table, rows, column_names=column_names(columns))
        yield tables
    finally:
        for table in tables.values():
            client.command(f"DROP TABLE IF EXISTS {table}")

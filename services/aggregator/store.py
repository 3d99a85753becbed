"""ClickHouse adapter of the aggregator: loads and writes entity states (blocking calls)."""
from __future__ import annotations

from dti.events.v1.events_pb2 import Event, EventBatch
import time

from dti_pulse.localtime import day_sql, local_day
from dti_pulse.schema import ACTIVITY_COLUMNS, DOCUMENT_COLUMNS, DOSSIER_COLUMNS, column_names

# How long after a day ends ranking may build its snapshot (see write).
SNAPSHOT_DELAY_MS = 10 * 60_000
DOSSIER_NAMES = column_names(DOSSIER_COLUMNS)
DOCUMENT_NAMES = column_names(DOCUMENT_COLUMNS)
ACTIVITY_NAMES = column_names(ACTIVITY_COLUMNS)


def decode_events(blob: bytes) -> list[Event]:
    return list(EventBatch.FromString(blob).events)


class ClickHouseStateStore:
    def __init__(self, client):
        self.client = client
        self._marked_current_days: set[tuple[str, int]] = set()

    def load(self, keys) -> dict[tuple, list[Event]]:
        """The stored event sets of these state keys (absent keys are left out)."""
        dossier_ids = [k[1] for k in keys if k[0] == "dossier"]
        document_ids = list({k[1] for k in keys if k[0] == "document"})
        found: dict[tuple, list[Event]] = {}
        if dossier_ids:
            # A dossier whose agency changed has a row under each agency: the largest event set
            # is the current one.
            result = self.client.query(
                "SELECT dossier_id, argMax(events_blob, event_count) AS blob FROM dossier_state "
                "WHERE dossier_id IN {ids:Array(String)} GROUP BY dossier_id",
                parameters={"ids": dossier_ids}, column_formats={"blob": "bytes"})
            for dossier_id, blob in result.result_rows:
                found[("dossier", dossier_id)] = decode_events(blob)
        if document_ids:
            result = self.client.query(
                "SELECT document_id, agency_code, argMax(events_blob, event_count) AS blob FROM document_state "
                "WHERE document_id IN {ids:Array(String)} GROUP BY document_id, agency_code",
                parameters={"ids": document_ids}, column_formats={"blob": "bytes"})
            for document_id, agency_code, blob in result.result_rows:
                found[("document", document_id, agency_code)] = decode_events(blob)
        return found

    def stored_ids(self):
        for kind, table, column in (("dossier", "dossier_state", "dossier_id"),
                                    ("document", "document_state", "document_id")):
            with self.client.query_column_block_stream(f"SELECT DISTINCT {column} FROM {table}") as blocks:
                for block in blocks:
                    for entity_id in block[0]:
                        yield kind, entity_id

    def write_activity(self, activity_rows: list) -> None:
        self.client.insert("activity_minute", activity_rows, column_names=ACTIVITY_NAMES)

    def document_day_pairs(self, document_ids) -> set[tuple[str, int]]:
        result = self.client.query(
            f"SELECT agency_code, {day_sql('sent_at_ms')}, {day_sql('received_at_ms')}, sent, received "
            "FROM document_state WHERE document_id IN {ids:Array(String)}", parameters={"ids": list(document_ids)})
        pairs = set()
        for agency, sent_day, received_day, sent, received in result.result_rows:
            if sent:
                pairs.add((agency, int(sent_day)))
            if received:
                pairs.add((agency, int(received_day)))
        return pairs

    def _mark_dirty(self, day_pairs) -> None:
        self.client.insert("day_measures", [(agency, day, 1) for agency, day in day_pairs],
                           column_names=["agency_code", "day", "dirty"])

    def write(self, dossier_rows: list, document_rows: list, day_pairs=()) -> None:
        """Writes states; their days are marked dirty before (a reader counts them from the
        states from then on) and, for past days, again after (a snapshot rebuilt in between
        missed them). Ranking rebuilds no day before it has been over for SNAPSHOT_DELAY_MS,
        so a current day (by clocks up to SNAPSHOT_DELAY_MS / 2 apart) stays dirty once
        marked: it is marked once per process, not at every write."""
        current_day = local_day(int(time.time() * 1000) - SNAPSHOT_DELAY_MS // 2)
        past = [(agency, day) for agency, day in day_pairs if day < current_day]
        new_current = [(agency, day) for agency, day in day_pairs
                       if day >= current_day and (agency, day) not in self._marked_current_days]
        if past or new_current:
            self._mark_dirty(past + new_current)
            self._marked_current_days.update(new_current)
        if dossier_rows:
            self.client.insert("dossier_state", dossier_rows, column_names=DOSSIER_NAMES)
        if document_rows:
            self.client.insert("document_state", document_rows, column_names=DOCUMENT_NAMES)
        if past:
            self._mark_dirty(past)
        if any(day < current_day for _, day in self._marked_current_days):
            self._marked_current_days = {(a, d) for a, d in self._marked_current_days if d >= current_day}

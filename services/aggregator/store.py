"""ClickHouse adapter of the aggregator: loads and writes entity states (blocking calls)."""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from clickhouse_connect.driver.exceptions import DatabaseError, DataError

from dti_pulse.localtime import day_sql, local_day
from dti_pulse.schema import ACTIVITY_COLUMNS, SNAPSHOT_DELAY_MS, SNAPSHOT_QUIET_MS, STATE_COLUMNS, column_names
from dti_pulse.state import PER_AGENCY
from services.aggregator.processor import RowsRejected

# Each family's table, and the columns of the aggregator's rows (processor.state_row): the
# summary, the tombstone flag, the events.
STATE_TABLES = {family: (f"{family}_state", [*column_names(columns)[:-1], "is_deleted", "events_blob"])
                for family, columns in STATE_COLUMNS.items()}
# A state keyed by its id alone (a document's is its id and agency: a row per side; likewise a
# procedure's listing, a row per agency offering it).
_BY_ID = tuple(family for family in STATE_COLUMNS if family not in PER_AGENCY)
ACTIVITY_NAMES = column_names(ACTIVITY_COLUMNS)
# The server's error codes that blame the rows sent, not the server: retrying the same rows
# cannot help. Any other error (the server away, too many parts, memory, a table not yet
# migrated) is waited out. CANNOT_PARSE_TEXT, TYPE_MISMATCH, ARGUMENT_OUT_OF_BOUND,
# CANNOT_CONVERT_TYPE, CANNOT_PARSE_NUMBER, INCORRECT_DATA, TOO_LARGE_ARRAY_SIZE,
# TOO_LARGE_STRING_SIZE, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE, DECIMAL_OVERFLOW,
# VIOLATED_CONSTRAINT.
ROWS_AT_FAULT = frozenset({6, 53, 69, 70, 72, 117, 128, 131, 321, 407, 469})
MIN_DAY, MAX_DAY = -(2 ** 31), 2 ** 31 - 1  # day_measures.day is an Int32
log = logging.getLogger(__name__)


class ClickHouseStateStore:
    def __init__(self, client, on_write=lambda kind, changed=None: None, document_client=None, activity_client=None):
        """document_client, activity_client: connections of their own for the document
        states, inserted beside the dossiers', and for the live activity, written beside
        both (each insert is ~25 ms of mostly fixed cost; chDB runs them apart, mostly
        without the GIL). Without them, the inserts take turns on client."""
        self.client = client
        self.document_client = document_client or client
        self.activity_client = activity_client or client
        self._document_writer = ThreadPoolExecutor(1, thread_name_prefix="document-states")
        # Told after each write, (kind, {family: agencies} changed): ranking, in this process, reads the change at once.
        self.on_write = on_write
        self._marked_days: dict[tuple[str, int], float] = {}  # (agency, day) -> when this process marked it

    def load(self, keys) -> dict[tuple, bytes]:
        """The stored events of these state keys, as EventBatch bytes (absent keys are left out)."""
        found: dict[tuple, bytes] = {}
        for family in _BY_ID:
            ids = [k[1] for k in keys if k[0] == family]
            if not ids:
                continue
            # A state that moved (another agency or day) has a row, and a tombstone, where it
            # sat before: the largest event set not in a tombstone is the current one.
            result = self.client.query(
                f"SELECT {family}_id, argMax(events_blob, event_count) AS blob FROM {family}_state "
                f"WHERE {family}_id IN {{ids:Array(String)}} AND is_deleted = 0 GROUP BY {family}_id",
                parameters={"ids": ids}, column_formats={"blob": "bytes"})
            for entity_id, blob in result.result_rows:
                found[(family, entity_id)] = blob
        for family in PER_AGENCY:
            ids = list({k[1] for k in keys if k[0] == family})
            if not ids:
                continue
            result = self.client.query(
                f"SELECT {family}_id, agency_code, argMax(events_blob, event_count) AS blob FROM {family}_state "
                f"WHERE {family}_id IN {{ids:Array(String)}} AND is_deleted = 0 GROUP BY {family}_id, agency_code",
                parameters={"ids": ids}, column_formats={"blob": "bytes"})
            for entity_id, agency_code, blob in result.result_rows:
                found[(family, entity_id, agency_code)] = blob
        return found

    def stored_ids(self):
        for kind in STATE_TABLES:
            with self.client.query_column_block_stream(f"SELECT DISTINCT {kind}_id FROM {kind}_state") as blocks:
                for block in blocks:
                    for entity_id in block[0]:
                        yield kind, entity_id

    def write_activity(self, activity_rows: list) -> None:
        self.activity_client.insert("activity_minute", activity_rows, column_names=ACTIVITY_NAMES)
        self.on_write("activity", None)

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
        """A day outside day_measures' Int32 would make every retry of this insert fail and
        stall the partition: the aggregator's check keeps such instants out (2000-2099), and
        a mark that gets past it anyway is logged and left out, never retried forever."""
        marks = [(agency, day, 1) for agency, day in day_pairs if MIN_DAY <= day <= MAX_DAY]
        if len(marks) < len(day_pairs):
            log.error("day marks outside the days a table holds left out: %s",
                      sorted(pair for pair in day_pairs if not MIN_DAY <= pair[1] <= MAX_DAY)[:5])
        if marks:
            self.client.insert("day_measures", marks, column_names=["agency_code", "day", "dirty"])

    def write(self, rows: dict[str, list], day_pairs=(), changed=None) -> None:
        """Writes states, with their days marked dirty first: a reader counts a dirty day from
        the states. Ranking rebuilds a day only once it has been over for SNAPSHOT_DELAY_MS
        and unmarked for SNAPSHOT_QUIET_MS, so a day needs no new mark while this process's
        last mark is that recent (a current day: for as long as it is current, by clocks up to
        SNAPSHOT_DELAY_MS / 2 apart). A day whose write ends later than that is marked again,
        since a rebuild may have started in between."""
        now = time.monotonic()
        current_day = local_day(int(time.time() * 1000) - SNAPSHOT_DELAY_MS // 2)
        recent = SNAPSHOT_QUIET_MS / 2000
        marked = self._marked_days

        def needs_mark(pair, at):
            last = marked.get(pair)
            return last is None or (pair[1] < current_day and at - last >= recent)

        unmarked = [pair for pair in day_pairs if needs_mark(pair, now)]
        if unmarked:
            self._mark_dirty(unmarked)
            marked.update(dict.fromkeys(unmarked, now))

        def insert(family, client):
            table, names = STATE_TABLES[family]
            if rows.get(family):
                try:
                    client.insert(table, rows[family], column_names=names)
                except DatabaseError as exc:
                    # DataError: a value its column cannot hold, found before the rows are sent.
                    if not isinstance(exc, DataError) and exc.code not in ROWS_AT_FAULT:
                        raise
                    cause = f" ({exc.__cause__})" if exc.__cause__ else ""
                    raise RowsRejected(f"{table}: {str(exc).splitlines()[0]}{cause}") from exc
            # changed (the aggregator's {family: agencies}) lets ranking keep the other agencies'
            # counts cached, and recount a family as soon as its own insert is done.
            if changed is not None and changed.get(family):
                self.on_write("measures", {family: changed[family]})

        documents = self._document_writer.submit(insert, "document", self.document_client)
        try:
            insert("dossier", self.client)
            for family in STATE_TABLES:  # the other families are few: after the dossiers, on their connection
                if family not in ("dossier", "document"):
                    insert(family, self.client)
        finally:
            documents.result()
        written = time.monotonic()
        if changed is None:
            self.on_write("measures", None)  # anything may have changed
        late = [pair for pair in day_pairs if needs_mark(pair, written)]
        if late:
            self._mark_dirty(late)
            marked.update(dict.fromkeys(late, written))
        if len(marked) > 4 * len(day_pairs) + 1024:
            self._marked_days = {pair: at for pair, at in marked.items()
                                 if pair[1] >= current_day or written - at < recent}

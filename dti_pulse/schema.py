"""ClickHouse tables of the aggregates, created and migrated at start, idempotently.

Portable SQL only: it runs on chDB and on a ClickHouse 24+ server alike.
Each migration runs once; the applied ones are recorded in schema_migrations.
"""
from __future__ import annotations

import logging
import sys

from dti_pulse.localtime import day_sql

log = logging.getLogger(__name__)


def column_names(columns_sql: str) -> list[str]:
    return [line.strip().split()[0] for line in columns_sql.strip().splitlines()]


# Columns shared by the state tables: written by the aggregator, read by ranking. Their
# order is the order of the summary tuples in dti_pulse/state.py, then the blob.
DOSSIER_COLUMNS_V1 = """
    dossier_id String,
    agency_code LowCardinality(String),
    procedure_code String,
    channel UInt8,
    service_level LowCardinality(String),
    has_received UInt8,
    received_at_ms Int64,
    due_at_ms Int64,
    due_effective_ms Int64,
    has_fee UInt8,
    has_end UInt8,
    end_at_ms Int64,
    paused_ms Int64,
    supplement_count UInt16,
    late_forced UInt8,
    last_status UInt8,
    paid UInt8,
    paid_online UInt8,
    rated UInt8,
    satisfied UInt8,
    apology_count UInt16,
    event_count UInt32,
    events_blob String CODEC(ZSTD(1))
"""
# Added by migration 7, after apology_count (Decision-766 transparency and digitisation).
DOSSIER_DIGITAL_COLUMNS = """
    digitized_on_receipt UInt8,
    reused_digitized_data UInt8,
    citizen_data_used UInt8,
    synced UInt8,
    result_issued UInt8,
    result_electronic UInt8,
    result_shared UInt8,
"""
DOSSIER_COLUMNS = DOSSIER_COLUMNS_V1.replace("    event_count UInt32,\n",
                                             DOSSIER_DIGITAL_COLUMNS.lstrip("\n") + "    event_count UInt32,\n")

DOCUMENT_COLUMNS = """
    document_id String,
    agency_code LowCardinality(String),
    sent UInt8,
    sent_at_ms Int64,
    received UInt8,
    received_at_ms Int64,
    classified UInt8,
    electronic UInt8,
    business_type UInt8,
    has_due UInt8,
    due_at_ms Int64,
    signed UInt8,
    personal_signature UInt8,
    agency_signature UInt8,
    completed UInt8,
    completed_at_ms Int64,
    last_status LowCardinality(String),
    recalled UInt8,
    event_count UInt32,
    events_blob String CODEC(ZSTD(1))
"""

PETITION_COLUMNS = """
    petition_id String,
    agency_code LowCardinality(String),
    has_received UInt8,
    received_at_ms Int64,
    due_at_ms Int64,
    answered UInt8,
    answered_at_ms Int64,
    rated UInt8,
    satisfied UInt8,
    event_count UInt32,
    events_blob String CODEC(ZSTD(1))
"""

PUBLICATION_COLUMNS = """
    publication_id String,
    agency_code LowCardinality(String),
    procedure_code String,
    change LowCardinality(String),
    has_decided UInt8,
    decided_at_ms Int64,
    due_at_ms Int64,
    published UInt8,
    published_at_ms Int64,
    event_count UInt32,
    events_blob String CODEC(ZSTD(1))
"""

# One agency's listing of a procedure, in versions (dti_pulse/state.ProcedureSummary).
PROCEDURE_COLUMNS = """
    procedure_id String,
    agency_code LowCardinality(String),
    versions_from_ms Array(Int64),
    versions_flags Array(UInt8),
    event_count UInt32,
    events_blob String CODEC(ZSTD(1))
"""

# Each entity family's state columns (its table is `<family>_state`).
STATE_COLUMNS = {"dossier": DOSSIER_COLUMNS, "document": DOCUMENT_COLUMNS, "petition": PETITION_COLUMNS,
                 "publication": PUBLICATION_COLUMNS, "procedure": PROCEDURE_COLUMNS}

ACTIVITY_COLUMNS = """
    minute_ms Int64,
    agency_code LowCardinality(String),
    event_type LowCardinality(String),
    events Int64,
    last_ingested_ms SimpleAggregateFunction(max, Int64)
"""

# Per agency and local day, what the measures count of the entity states tied to that day
# (services/ranking/store.py keeps them); `dirty` while states of that day are being written.
DAY_MEASURE_COLUMNS = """
    agency_code LowCardinality(String),
    day Int32,
    dirty UInt8,
    counts Map(String, UInt64),
    sets Map(String, Array(String)),
    steps Map(String, Tuple(Array(Int64), Array(UInt64))),
    version Int64 DEFAULT toUnixTimestamp64Micro(now64(6))
"""

# The (agency, local day) pairs every stored state counts on: a dossier or a petition on the
# day it was received, a publication on the day it was decided, a document side on the days
# it was sent and received.
STATE_DAY_PAIRS_SQL = (
    f"SELECT agency_code, {day_sql('received_at_ms')} AS day FROM dossier_state WHERE has_received = 1 "
    f"UNION DISTINCT SELECT agency_code, {day_sql('received_at_ms')} FROM petition_state WHERE has_received = 1 "
    f"UNION DISTINCT SELECT agency_code, {day_sql('decided_at_ms')} FROM publication_state WHERE has_decided = 1 "
    f"UNION DISTINCT SELECT agency_code, {day_sql('sent_at_ms')} FROM document_state WHERE sent = 1 "
    f"UNION DISTINCT SELECT agency_code, {day_sql('received_at_ms')} FROM document_state WHERE received = 1")
MARK_ALL_DAYS_DIRTY_SQL = f"INSERT INTO day_measures (agency_code, day, dirty) SELECT agency_code, day, 1 FROM ({STATE_DAY_PAIRS_SQL})"

ALERT_STATE_COLUMNS = """
    rule String,
    agency_code String,
    firing UInt8,
    since_ms Int64,
    alert String,
    owed Array(Tuple(String, String)),
    version Int64 DEFAULT toUnixTimestamp64Micro(now64(6))
"""

ALERT_SAMPLE_COLUMNS = """
    agency_code String,
    at_ms Int64,
    fraction Float64
"""

# Ranking rebuilds a day's snapshot only once the day has been over for SNAPSHOT_DELAY_MS
# and nobody has marked it dirty for SNAPSHOT_QUIET_MS (the aggregator's store, services/aggregator/store.py). A long quiet period
# means few marks: a past day still being written is marked again every 30 s, not on
# nearly every batch (a mark is an insert of its own, ~20-30 ms under load).
SNAPSHOT_DELAY_MS = 10 * 60_000
SNAPSHOT_QUIET_MS = 60_000

# Where a state row sits in its table (migration 4): the local day it counts on, so that a
# period's states are a range of the table, whatever the history kept. A state counting on
# no day (a dossier not yet received) sits on UNPLACED; a document side counting on two days
# (sent and received by the same agency on different days) sits on TWO_DAYS, read for every
# period. dti_pulse/state.placement says the same in Python.
UNPLACED = -1
TWO_DAYS = -2
PLACE_DAY_SQL = {
    "dossier": f"if(has_received = 1, {day_sql('received_at_ms')}, {UNPLACED})",
    "petition": f"if(has_received = 1, {day_sql('received_at_ms')}, {UNPLACED})",
    "publication": f"if(has_decided = 1, {day_sql('decided_at_ms')}, {UNPLACED})",
    "procedure": f"toInt32({UNPLACED})",  # a listing counts as of each period's end, on no day
    "document": f"multiIf(sent = 1 AND received = 1 AND {day_sql('sent_at_ms')} != {day_sql('received_at_ms')}, "
                f"{TWO_DAYS}, sent = 1, {day_sql('sent_at_ms')}, received = 1, {day_sql('received_at_ms')}, {UNPLACED})",
}
# A state that moves to another place leaves a tombstone where it was: its old row again,
# with is_deleted = 1 and the new version, so FINAL drops it there.


# The 128-day span a row's place_day falls in (migration 5), ahead of the agency in the
# sorting key: a period's rows are then a range of each agency's span, so that a day and a
# year of one agency are both a few ranges. Plain arithmetic, not calendar months, so that
# Python (place_span below) and ClickHouse agree; a negative place_day is its own span. It is
# a column of its own because ClickHouse did not prune through intDiv(place_day, 32) in the
# key. 128 days rather than 32: an explain of one agency's year took 62-66 ms against 81-92
# (3 or 4 ranges against 12), the open day the same (bench/README.md).
SPAN_DAYS = 128


def place_span(day: int) -> int:
    return day if day < 0 else day // SPAN_DAYS


def span_sql(day_column: str) -> str:
    """place_span in ClickHouse SQL, of a column of days."""
    return f"if({day_column} < 0, {day_column}, intDiv({day_column}, {SPAN_DAYS}))"


PLACE_SPAN_SQL = span_sql("place_day")


def _rebuilt_state_table(table: str, family: str, columns: str, id_column: str, indexes: str,
                         placed: str, sorting_key: str) -> list[str]:
    """Rebuilds a state table with the placing columns and sorting key given, in a copy swapped
    in at once. Rerunnable after a crash at any step: the copy is made again from what `table`
    is then, through FINAL, which hides superseded rows and tombstones."""
    names = ", ".join(column_names(columns))
    copy = f"{table}_rebuilt"
    return [
        f"DROP TABLE IF EXISTS {copy}",
        f"CREATE TABLE {copy} ({columns}, is_deleted UInt8 DEFAULT 0, "
        f"place_day Int32 MATERIALIZED {PLACE_DAY_SQL[family]}, {placed}{indexes}) "
        f"ENGINE = ReplacingMergeTree(event_count, is_deleted) ORDER BY ({sorting_key.format(id=id_column)})",
        f"INSERT INTO {copy} ({names}) SELECT {names} FROM {table} FINAL",
        f"EXCHANGE TABLES {table} AND {copy}",
        f"DROP TABLE {copy}",
    ]


def _state_tables_rebuilt(placed: str, sorting_key: str) -> list[str]:
    return [
        *_rebuilt_state_table("dossier_state", "dossier", DOSSIER_COLUMNS_V1, "dossier_id",
                              "INDEX dossier_id_lookup dossier_id TYPE bloom_filter(0.01) GRANULARITY 1",
                              placed, sorting_key),
        *_rebuilt_state_table("document_state", "document", DOCUMENT_COLUMNS, "document_id",
                              "INDEX document_id_lookup document_id TYPE bloom_filter(0.01) GRANULARITY 1, "
                              "INDEX recalled_skip recalled TYPE minmax GRANULARITY 1",
                              placed, sorting_key),
    ]


def _state_table(family: str, columns: str) -> str:
    """A new family's state table, placed and sorted as the others are since migration 5."""
    return (f"CREATE TABLE IF NOT EXISTS {family}_state ({columns}, is_deleted UInt8 DEFAULT 0, "
            f"place_day Int32 MATERIALIZED {PLACE_DAY_SQL[family]}, place_span Int32 MATERIALIZED {PLACE_SPAN_SQL}, "
            f"INDEX {family}_id_lookup {family}_id TYPE bloom_filter(0.01) GRANULARITY 1) "
            f"ENGINE = ReplacingMergeTree(event_count, is_deleted) "
            f"ORDER BY (place_span, agency_code, place_day, {family}_id)")


# The version column is the size of the entity's event set, which only grows, so the
# newest state wins a merge and a redelivered event can never roll a state back.
# Rows are sorted by the span of days they count on, agency, day (migration 5): a period's
# states are a range of each agency's span, and a part of older spans is skipped whole.
# (Sorted by agency first, a cohort's open day read a granule at each of its agencies'
# boundaries in every part, history included.) The aggregator's lookups by id use the
# bloom-filter skip indexes, and the recall check skips every granule without a recalled
# document.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "entity state tables", [
        f"CREATE TABLE IF NOT EXISTS dossier_state ({DOSSIER_COLUMNS_V1}, "
        "INDEX dossier_id_lookup dossier_id TYPE bloom_filter(0.01) GRANULARITY 1) "
        "ENGINE = ReplacingMergeTree(event_count) ORDER BY (agency_code, dossier_id)",
        f"CREATE TABLE IF NOT EXISTS document_state ({DOCUMENT_COLUMNS}, "
        "INDEX document_id_lookup document_id TYPE bloom_filter(0.01) GRANULARITY 1, "
        "INDEX recalled_skip recalled TYPE minmax GRANULARITY 1) "
        "ENGINE = ReplacingMergeTree(event_count) ORDER BY (agency_code, document_id)",
    ]),
    # New events per minute of arrival, agency and activity type (dti_pulse.events), for the
    # operations centre's live view. Rows of one key are summed by merges; readers sum().
    (2, "live activity per minute", [
        f"CREATE TABLE IF NOT EXISTS activity_minute ({ACTIVITY_COLUMNS}) "
        "ENGINE = SummingMergeTree ORDER BY (minute_ms, agency_code, event_type)",
    ]),
    # Day snapshots of the measures, and the fingerprint of the definitions they were built
    # with: ranking marks every day dirty when its definitions differ (the first start included).
    (3, "day snapshots of the measures", [
        # Small granules: a cohort's agencies are scattered over the table (their codes sort
        # among other provinces'), and a year of one agency is 365 rows.
        f"CREATE TABLE IF NOT EXISTS day_measures ({DAY_MEASURE_COLUMNS}) "
        "ENGINE = ReplacingMergeTree(version) ORDER BY (agency_code, day) SETTINGS index_granularity = 256",
        "CREATE TABLE IF NOT EXISTS day_measure_definitions "
        "(fingerprint String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY applied_at",
    ]),
    # Sorted by agency alone, the open day's recount read every state of the cohort's
    # agencies: 6 x slower with a province-year kept (bench/README.md, `history`).
    (4, "state tables sorted by the day their rows count on",
     _state_tables_rebuilt("", "place_day, agency_code, {id}")),
    # Sorted by day first, one agency's year was a slice of every day: 3-10 x slower to read
    # from the states alone (an explain, as_of, the dirty days). By span, then agency, then
    # day, both a day and a year are ranges.
    (5, "state tables sorted by the span of days, agency and day their rows count on",
     _state_tables_rebuilt(f"place_span Int32 MATERIALIZED {PLACE_SPAN_SQL}, ",
                           "place_span, agency_code, place_day, {id}")),
    # Signed, so that the events of a state the store refused can be taken back out of the
    # live activity they were counted in (a row of negative counts; readers sum()).
    (6, "live activity counts that can be withdrawn", [
        "ALTER TABLE activity_minute MODIFY COLUMN events Int64",
    ]),
    # What a dossier says of its digitisation, its sync to the national portal and its
    # result (Decision-766 transparency and digitisation groups); 0 for the states before.
    (7, "dossier digitisation, portal sync and result", [
        "ALTER TABLE dossier_state " + ", ".join(
            f"ADD COLUMN IF NOT EXISTS {line.strip().rstrip(',')} DEFAULT 0 AFTER {previous}"
            for previous, line in zip(["apology_count", *column_names(DOSSIER_DIGITAL_COLUMNS)],
                                      DOSSIER_DIGITAL_COLUMNS.strip().splitlines())),
    ]),
    # The alerts firing, and the notices not yet delivered, kept across ranking's restarts
    # (services/ranking/alerting.py): a restart neither notifies again what still holds nor
    # forgets a notice it owes. A row per rule and agency, the newest version standing.
    (8, "alert states", [
        f"CREATE TABLE IF NOT EXISTS alert_state ({ALERT_STATE_COLUMNS}) "
        "ENGINE = ReplacingMergeTree(version) ORDER BY (rule, agency_code)",
    ]),
    # Citizens' petitions (Decision-766 satisfaction group).
    (9, "petition states", [_state_table("petition", PETITION_COLUMNS)]),
    # Publications of procedures on the national database (Decision-766 transparency group).
    (10, "publication states", [_state_table("publication", PUBLICATION_COLUMNS)]),
    # The procedure catalogue (Decision-766 transparency and digitisation, of the procedures
    # in force at a period's end).
    (11, "procedure listings", [_state_table("procedure", PROCEDURE_COLUMNS)]),
    # Each agency's 0-1 index as the alert loop saw it, so that a `drop` window spans a
    # restart of ranking; the loop forgets what is older than its longest window.
    (12, "alert index samples", [
        f"CREATE TABLE IF NOT EXISTS alert_index_samples ({ALERT_SAMPLE_COLUMNS}) ENGINE = MergeTree "
        "ORDER BY (at_ms, agency_code)",
    ]),
]


def pending(client, migrations=MIGRATIONS) -> list[int]:
    """The migrations not applied yet (all of them before the first), without changing anything."""
    try:
        applied = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    except Exception as exc:  # no schema_migrations table yet
        if "UNKNOWN_TABLE" not in str(exc) and "doesn't exist" not in str(exc) and "does not exist" not in str(exc):
            raise
        applied = set()
    return [version for version, _, _ in migrations if version not in applied]


def migrate(client, migrations=MIGRATIONS) -> list[int]:
    """Applies the migrations not yet applied; returns their versions."""
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version UInt32, description String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    applied = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    done = []
    for version, description, statements in migrations:
        if version in applied:
            continue
        for statement in statements:
            client.command(statement)
        client.insert("schema_migrations", [[version, description]], column_names=["version", "description"])
        log.info("applied ClickHouse migration %d: %s", version, description)
        done.append(version)
    return done


def main(dsn: str, cluster: str | None = None, wait: bool = False, timeout_s: float = 600.0) -> int:
    """`dti-pulse migrate`: apply the single-node migrations, or the cluster schema, or wait
    (apply nothing) until another process has applied them all."""
    import time

    from dti_pulse.clickhouse import close_client, get_client

    try:
        client = get_client(dsn, "migrate")
        if wait:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    missing = pending(client)
                except Exception as exc:  # ClickHouse still starting
                    missing = [f"ClickHouse not answering: {str(exc).splitlines()[0][:200]}"]
                if not missing:
                    print("dti-pulse migrate: every migration is applied")
                    return 0
                if time.monotonic() > deadline:
                    print(f"dti-pulse migrate: still missing after {timeout_s:g} s: {missing}", file=sys.stderr)
                    return 1
                time.sleep(2)
        if cluster:
            from dti_pulse import cluster_schema

            count = cluster_schema.apply(client, cluster)
            print(f"dti-pulse migrate: cluster schema applied on cluster '{cluster}' ({count} statements)")
            return 0
        applied = migrate(client)
    finally:
        close_client(dsn)
    print(f"dti-pulse migrate: applied {applied}" if applied else "dti-pulse migrate: schema up to date")
    return 0

"""Schema migrations against a real chDB, from the tables as an earlier release left them."""
import os
import random
import time

import pytest

from dti_pulse.localtime import DAY_MS
from dti_pulse.schema import (DOCUMENT_COLUMNS, DOSSIER_COLUMNS_V1, DOSSIER_DIGITAL_COLUMNS,
                              MIGRATIONS, SPAN_DAYS, column_names, migrate, place_span, span_sql)
from dti_pulse.state import DocumentSummary, DossierSummary, placement
from services.aggregator.store import ClickHouseStateStore
from tests.integration.test_day_snapshots import random_document, random_dossier, span_start_ms, store_states

pytestmark = pytest.mark.integration
SORTED_BY_DAY, SORTED_BY_SPAN = 4, 5
DIGITAL = column_names(DOSSIER_DIGITAL_COLUMNS)


def before_digitisation(summary):
    """A dossier state as a release before migration 7 kept it: no digitisation columns."""
    if not isinstance(summary, DossierSummary):
        return summary
    return summary._replace(**{name: 0 for name in DIGITAL})


def old_release_states(client, rng, now_ms):
    """States written by a release before migration 4: one row per (agency, id) and version,
    with a version of some on other days than the one before (no tombstones then)."""
    dossiers, documents = [], []
    for i in range(200):
        dossiers.append(random_dossier(rng, f"D{i}", now_ms, 1))
        if rng.random() < 0.3:
            dossiers.append(random_dossier(rng, f"D{i}", now_ms, 2)._replace(agency_code=dossiers[-1].agency_code))
        documents.append(random_document(rng, f"O{i}", "000.00.05.H56", now_ms, 1))
        if rng.random() < 0.3:
            documents.append(random_document(rng, f"O{i}", "000.00.05.H56", now_ms, 2))
    v1 = column_names(DOSSIER_COLUMNS_V1)
    client.insert("dossier_state", [(*(getattr(s, name) for name in v1[:-1]), b"e") for s in dossiers],
                  column_names=v1)
    client.insert("document_state", [(*s, b"e") for s in documents], column_names=column_names(DOCUMENT_COLUMNS))
    newest = {}
    for s in dossiers + documents:
        key = (type(s).__name__, s[0], s[1])
        if key not in newest or s.event_count > newest[key].event_count:
            newest[key] = before_digitisation(s)
    return newest


def states_before(client, rng, migration: int):
    """The newest states, written as the release before this migration wrote them."""
    now_ms = int(time.time() * 1000)
    if migration <= SORTED_BY_DAY:
        return old_release_states(client, rng, now_ms)
    # From migration 4 on, a state that moved left a tombstone where it sat. Written through
    # today's store, whose rows have the columns of migration 7 (added here as it adds them)
    # and whose petitions and publications have the tables of migrations 9 and 10 (made here,
    # left out of the answer: the rebuild is of the dossiers and documents); the rebuild keeps
    # the columns the release before it had.
    for later in (7, 9, 10):
        client.command(next(m[2] for m in MIGRATIONS if m[0] == later)[0])
    return {(type(s).__name__, s[0], s[1]): before_digitisation(s)
            for s in store_states(ClickHouseStateStore(client), rng, now_ms, 150, "m")
            if isinstance(s, (DossierSummary, DocumentSummary))}


def stored_states(client):
    found = {}
    for family, table, summary in (("DossierSummary", "dossier_state", DossierSummary),
                                   ("DocumentSummary", "document_state", DocumentSummary)):
        names = ", ".join(summary._fields)
        for row in client.query(f"SELECT {names}, place_day, place_span FROM {table} FINAL").result_rows:
            found[(family, row[0], row[1])] = (summary(*row[:-2]), row[-2], row[-1])
    return found


def test_states_are_sorted_by_span_and_day_keeping_every_newest_state_in_place(empty_chdb_database):
    client, rng = empty_chdb_database, random.Random(4)
    migrate(client, [m for m in MIGRATIONS if m[0] < SORTED_BY_DAY])
    # States around the start of a span, so that they fall in two.
    newest = old_release_states(client, rng, span_start_ms(int(time.time() * 1000)) + 10 * DAY_MS)

    assert migrate(client) == [v for v, *_ in MIGRATIONS if v >= SORTED_BY_DAY]
    stored = stored_states(client)
    assert {key: s for key, (s, *_) in stored.items()} == newest
    # ClickHouse places each row where dti_pulse/state.placement says, in the span
    # dti_pulse.schema.place_span says.
    assert all(day == placement(s)[1] and span == place_span(day) for s, day, span in stored.values())
    assert {day for s, day, _ in stored.values()} >= {-1, -2}  # unplaced and two-day rows among them
    assert len({span for *_, span in stored.values()}) == 4  # two spans of days, and the two negative
    keys = dict(client.query("SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase() "
                             "AND name IN ('dossier_state', 'document_state')").result_rows)
    assert keys == {"dossier_state": "place_span, agency_code, place_day, dossier_id",
                    "document_state": "place_span, agency_code, place_day, document_id"}
    assert migrate(client) == []


@pytest.mark.parametrize("crashed", [SORTED_BY_DAY, SORTED_BY_SPAN])
def test_the_rebuild_can_run_again_after_a_crash_at_any_step(empty_chdb_database, crashed):
    client, rng = empty_chdb_database, random.Random(5)
    migrate(client, [m for m in MIGRATIONS if m[0] < crashed])
    newest = states_before(client, rng, crashed)
    statements = next(m[2] for m in MIGRATIONS if m[0] == crashed)
    # The worst places to stop: the copy of one table swapped in and the old one not yet
    # dropped, then the other table's copy half made.
    dossier_steps = [s for s in statements if "dossier_state" in s]
    for statement in dossier_steps[:-1]:
        client.command(statement)
    client.command(next(s for s in statements if s.startswith("CREATE TABLE document_state_rebuilt")))

    assert migrate(client) == [v for v, *_ in MIGRATIONS if v >= crashed]
    assert {key: s for key, (s, *_) in stored_states(client).items()} == newest
    assert client.query("SELECT count() FROM system.tables WHERE database = currentDatabase() "
                        "AND name LIKE '%rebuilt'").result_rows == [(0,)]


def test_clickhouse_and_python_put_a_day_in_the_same_span(chdb_client):
    days = [-2, -1, 0, 1, SPAN_DAYS - 1, SPAN_DAYS, 20_000, 20_479, 20_480, 20_481]
    spans = chdb_client.query(f"SELECT {span_sql('day')} FROM (SELECT arrayJoin({{days:Array(Int32)}}) AS day)",
                              parameters={"days": days}).result_rows
    assert [span for (span,) in spans] == [place_span(day) for day in days]


def test_the_cluster_schema_is_the_single_node_one_replicated_and_distributed_and_parses(clean_chdb):
    import re

    from dti_pulse.cluster_schema import SHARDING, UNSHARDED, cluster_statements

    tables = [*SHARDING, *UNSHARDED]
    single_node = {t: clean_chdb.query(f"SHOW CREATE TABLE {t}").result_rows[0][0] for t in tables}
    statements = cluster_statements(clean_chdb, "province")
    # Every statement is ClickHouse SQL, by ClickHouse's own parser.
    for statement in statements:
        formatted = clean_chdb.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
        assert formatted.split()[:2] == statement.split()[:2]
    # Generating it changed nothing of the single-node schema.
    assert {t: clean_chdb.query(f"SHOW CREATE TABLE {t}").result_rows[0][0] for t in tables} == single_node
    by_table = {re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s)[1]: s for s in statements if s.startswith("CREATE")}
    for table in tables:
        local = by_table[f"{table}_local" if table in SHARDING else table]
        assert "ON CLUSTER 'province'" in local
        engine = re.search(r"ENGINE = Replicated(\w+)\('([^']+)', '\{replica\}'(?:, (.*))?\)", local)
        assert engine, local
        # Undo the replication: what is left is the single-node table, column for column.
        args = f"({engine[3]})" if engine[3] else ""
        undone = local.replace(engine[0], f"ENGINE = {engine[1]}{args}").split("\n", 1)[1]
        assert undone == single_node[table].split("\n", 1)[1], table
        assert ("{shard}" in engine[2]) == (table in SHARDING)
    for table, key in SHARDING.items():
        assert f"ENGINE = Distributed('province', currentDatabase(), {table}_local, {key})" in by_table[table]
    assert statements[-1].startswith("INSERT INTO schema_migrations")


def test_the_packaged_cluster_schema_is_what_the_migrations_generate(clean_chdb):
    """Regenerate with `python -m dti_pulse.cluster_schema --write` after adding a migration."""
    from dti_pulse.cluster_schema import PACKAGED, generated

    assert PACKAGED.read_text() == generated(clean_chdb)


def test_migrate_wait_applies_nothing_and_returns_once_another_has_migrated(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "DTI_DATA_DIR": str(tmp_path / "data"), "DTI_CLICKHOUSE_DSN": ""}
    command = [sys.executable, "-m", "dti_pulse.cli", "migrate"]
    waited = subprocess.run([*command, "--wait", "--timeout", "1"], env=env, capture_output=True, text=True)
    assert waited.returncode == 1 and "still missing" in waited.stderr, waited.stderr
    assert subprocess.run(command, env=env, capture_output=True, text=True).returncode == 0
    waited = subprocess.run([*command, "--wait", "--timeout", "5"], env=env, capture_output=True, text=True)
    assert waited.returncode == 0 and "every migration is applied" in waited.stdout, waited.stderr

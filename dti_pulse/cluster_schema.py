"""The schema for a ClickHouse cluster (shards and replicas), generated from the single-node
one: the migrations are applied to a ClickHouse (chDB will do), and each table ClickHouse
then reports becomes

- `<table>_local ON CLUSTER`: the same columns, indexes, key and settings, on the
  Replicated form of its engine (replicas of a shard share a Keeper path);
- `<table> ON CLUSTER`, a Distributed table over them with the name the services use,
  sharded so that every row of an entity lands on one shard: ReplacingMergeTree's FINAL,
  which merges per shard, stays correct.

The bookkeeping tables (schema_migrations, day_measure_definitions) are replicated to every
node from one Keeper path, not sharded: one copy, so a migration is recorded once per
cluster. Apply the output once (`clickhouse-client --multiquery < schema.sql`): ON CLUSTER
runs each statement on every node.
"""
from __future__ import annotations

import re

from dti_pulse.schema import MIGRATIONS

# How each table's rows are spread over the shards.
SHARDING = {
    "dossier_state": "cityHash64(dossier_id)",  # every version and tombstone of a dossier together
    "document_state": "cityHash64(document_id)",  # every side of a document together
    "day_measures": "cityHash64(agency_code)",  # an (agency, day) row and its replacements together
    "activity_minute": "rand()",  # summed by readers: any shard will do
}
UNSHARDED = ("schema_migrations", "day_measure_definitions")

_ENGINE = re.compile(r"^ENGINE = (\w+)(?:\((.*)\))?$", re.MULTILINE)


def replicated(create: str, table: str, cluster: str, keeper_path: str) -> str:
    """A single-node CREATE TABLE (as SHOW CREATE TABLE gives it) made replicated, ON CLUSTER."""
    engine = _ENGINE.search(create)
    if engine is None or not engine.group(1).endswith("MergeTree"):
        raise ValueError(f"{table}: not a MergeTree-family table")
    name, args = engine.group(1), engine.group(2)
    replication = f"'{keeper_path}', '{{replica}}'" + (f", {args}" if args else "")
    create = create[:engine.start()] + f"ENGINE = Replicated{name}({replication})" + create[engine.end():]
    header = re.match(r"^CREATE TABLE (\S+)\n", create)
    return f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER '{cluster}'\n" + create[header.end():]


def cluster_statements(client, cluster: str) -> list[str]:
    """The cluster's DDL, from the schema of `client`'s database (migrated here first)."""
    from dti_pulse.schema import migrate

    migrate(client)
    statements = []
    for table in (*SHARDING, *UNSHARDED):
        create = client.query(f"SHOW CREATE TABLE {table}").result_rows[0][0]
        if table in UNSHARDED:
            statements.append(replicated(create, table, cluster, f"/clickhouse/tables/all/{{database}}/{table}"))
            continue
        local = f"{table}_local"
        statements.append(replicated(create, local, cluster, f"/clickhouse/tables/{{shard}}/{{database}}/{local}"))
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER '{cluster}' AS {local} "
                          f"ENGINE = Distributed('{cluster}', currentDatabase(), {local}, {SHARDING[table]})")
    latest = max(version for version, _, _ in MIGRATIONS)
    statements.append("INSERT INTO schema_migrations (version, description) SELECT number + 1, 'cluster schema' "
                      f"FROM numbers({latest}) WHERE number + 1 NOT IN (SELECT version FROM schema_migrations)")
    return statements


def main(cluster: str) -> int:
    import tempfile

    from dti_pulse.clickhouse import close_client, get_client

    with tempfile.TemporaryDirectory(prefix="dti-cluster-schema-") as scratch:
        dsn = f"chdb://{scratch}/chdb"
        try:
            statements = cluster_statements(get_client(dsn, "cluster-schema"), cluster)
        finally:
            close_client(dsn)
    print(";\n\n".join(statements) + ";")
    return 0

"""The schema for a ClickHouse cluster (shards and replicas), generated from the single-node
one: the migrations are applied to a ClickHouse (chDB will do), and each table ClickHouse
then reports becomes

- `<table>_local ON CLUSTER`: the same columns, indexes, key and settings, on the
  Replicated form of its engine (replicas of a shard share a Keeper path);
- `<table> ON CLUSTER`, a Distributed table over them with the name the services use,
  sharded so that every row of an entity lands on one shard: ReplacingMergeTree's FINAL,
  which merges per shard, stays correct.

The bookkeeping tables (schema_migrations, day_measure_definitions, alert_state) are
replicated to every node from one Keeper path, not sharded: one copy, so a migration is
recorded once per cluster. Apply it once (`dti-pulse migrate --cluster NAME`, or the output of
`dti-pulse cluster-schema` with `clickhouse-client --multiquery`): ON CLUSTER runs each
statement on every node.

Generating it needs a ClickHouse to apply the migrations to (chDB); the result is kept in
the package (data/cluster-schema.sql, the cluster's name left as a placeholder), so that a
service image without chDB can apply it. `python -m dti_pulse.cluster_schema --write`
regenerates the file; a test checks it matches the migrations.
"""
from __future__ import annotations

import re
from pathlib import Path

from dti_pulse.schema import MIGRATIONS

# How each table's rows are spread over the shards.
SHARDING = {
    "dossier_state": "cityHash64(dossier_id)",  # every version and tombstone of a dossier together
    "document_state": "cityHash64(document_id)",  # every side of a document together
    "petition_state": "cityHash64(petition_id)",
    "publication_state": "cityHash64(publication_id)",
    "procedure_state": "cityHash64(procedure_id)",  # every agency's listing of a procedure together
    "day_measures": "cityHash64(agency_code)",  # an (agency, day) row and its replacements together
    "activity_minute": "rand()",  # summed by readers: any shard will do
}
UNSHARDED = ("schema_migrations", "day_measure_definitions", "alert_state", "alert_index_samples")

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


PACKAGED = Path(__file__).parent / "data" / "cluster-schema.sql"
CLUSTER_PLACEHOLDER = "__CLUSTER__"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def generated(client=None) -> str:
    """The cluster schema from the migrations, as the packaged file holds it: through
    `client` (a ClickHouse with no other schema), else a scratch chDB."""
    if client is not None:
        return ";\n\n".join(cluster_statements(client, CLUSTER_PLACEHOLDER)) + ";\n"
    import tempfile

    from dti_pulse.clickhouse import close_client, get_client

    with tempfile.TemporaryDirectory(prefix="dti-cluster-schema-") as scratch:
        dsn = f"chdb://{scratch}/chdb"
        try:
            return generated(get_client(dsn, "cluster-schema"))
        finally:
            close_client(dsn)


def packaged_statements(cluster: str) -> list[str]:
    """The packaged cluster schema for the cluster named `cluster`, statement by statement."""
    if not _NAME.match(cluster):
        raise ValueError(f"cluster name {cluster!r}: letters, digits, '_' and '-' only")
    text = PACKAGED.read_text().replace(CLUSTER_PLACEHOLDER, cluster)
    return [statement.strip() for statement in text.split(";\n\n") if statement.strip().rstrip(";")]


def apply(client, cluster: str) -> int:
    """Runs the cluster schema on `client`'s ClickHouse (any node of the cluster); every
    statement is idempotent, so a Job that runs it again changes nothing. Returns how many ran."""
    statements = packaged_statements(cluster)
    for statement in statements:
        client.command(statement.rstrip(";"))
    return len(statements)


def main(cluster: str) -> int:
    print(";\n\n".join(packaged_statements(cluster)))
    return 0


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        PACKAGED.write_text(generated())
        print(f"wrote {PACKAGED}")

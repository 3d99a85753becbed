"""ClickHouse adapter of ranking: runs the measures of services/ranking/measures.py for a
period (from the states, from the day snapshots of day_snapshots.py, or as of an instant
through as_of.py), lists what Explain shows and the activity, and reads the data version;
and keeps the alert loop's records (ClickHouseAlertRecords).
"""
from __future__ import annotations

import json
from collections import defaultdict

from dti_pulse.localtime import DAY_MS, LOCAL_OFFSET_MS
from services.ranking.alerts import Alert, AlertRecord
from services.ranking.as_of import measure_sources
from services.ranking.day_snapshots import DaySnapshotKeeper, measures_from_day_snapshots
from services.ranking.measures import (DataVersion, ExplainPlan, FACTS, FAMILIES, MEASURES_SQL, MINUTE_MS, ROWS,
                                       UNGATED, bind, every_measure, period_parameters)


class ClickHouseMeasures:
    def __init__(self, client, day_snapshots: bool = True, snapshot_interval_s: float = 1.0,
                 version_client=None, keeper_client=None):
        self.client = client  # lookups
        self.version_client = version_client or client  # data_version, polled from a thread
        self.day_snapshots = day_snapshots
        self.snapshots = DaySnapshotKeeper(keeper_client or client, snapshot_interval_s)

    def measures(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
                 as_of_ms: int | None = None, families=FAMILIES) -> dict[str, dict[str, int]]:
        """{agency_code: {measure: count}} for the agencies that have any data in the period;
        only the measures of `families` ("dossier", "document"), one query each."""
        if (self.day_snapshots and as_of_ms is None and end_ms >= judged_at_ms and judged_at_ms % MINUTE_MS == 0
                and (start_ms + LOCAL_OFFSET_MS) % DAY_MS == 0 and (end_ms + LOCAL_OFFSET_MS) % DAY_MS == 0
                and agency_codes):
            return measures_from_day_snapshots(self.client, agency_codes, start_ms, end_ms, judged_at_ms, families)
        parameters = period_parameters(agency_codes, start_ms, end_ms, judged_at_ms)
        found: dict[str, dict[str, int]] = defaultdict(dict)
        with measure_sources(self.client, agency_codes, start_ms, end_ms, as_of_ms) as sources:
            for family in families:
                result = self.client.query(bind(MEASURES_SQL[family], sources), parameters=parameters)
                names = result.column_names[1:]
                for row in result.result_rows:
                    found[row[0]].update(zip(names, (int(v) for v in row[1:])))
        return every_measure(found, families)

    def refresh_in_background(self) -> None:
        """Keeps the day snapshots clean from a thread: each round recomputes what is dirty."""
        if self.day_snapshots:
            self.snapshots.start()

    def stop_refreshing(self) -> None:
        self.snapshots.stop()

    # It keeps no answers: none is ever fresh enough to cache (services/ranking/cache.py does).
    def fresh_version(self) -> None:
        return None

    def fresh_measures_stamp(self, agency_codes) -> None:
        return None

    def cached(self, *question) -> None:
        return None

    def on_change(self, listener):
        return lambda: None

    def data_version(self) -> DataVersion:
        """Block numbers only grow, and a merged part keeps the highest block number of what
        it merged; the count of migrations changes with the schema."""
        states = ", ".join(f"maxIf(max_block_number, table = '{family}_state')" for family in FAMILIES)
        *blocks, activity, migrations = self.version_client.query(
            f"SELECT {states}, maxIf(max_block_number, table = 'activity_minute'), countIf(table = 'schema_migrations') "
            "FROM system.parts WHERE database = currentDatabase() AND active").result_rows[0]
        return DataVersion((*blocks, migrations), (activity, migrations))

    def activity(self, agency_code: str | None, start_ms: int, end_ms: int) -> tuple[list, list]:
        """([(minute_ms, type, events)], [(agency_code, events, last_ingested_ms)]) in the
        window, for one agency or (None) all of them."""
        parameters = {"start": start_ms, "end": end_ms, "agency": agency_code or ""}
        where = ("minute_ms >= {start:Int64} AND minute_ms < {end:Int64}"
                 + (" AND agency_code = {agency:String}" if agency_code else ""))
        per_minute = self.client.query(
            f"SELECT minute_ms, event_type, sum(events) FROM activity_minute WHERE {where} "
            "GROUP BY minute_ms, event_type HAVING sum(events) > 0 ORDER BY minute_ms", parameters=parameters).result_rows
        per_agency = self.client.query(
            f"SELECT agency_code, sum(events) AS n, max(last_ingested_ms) FROM activity_minute WHERE {where} "
            "GROUP BY agency_code HAVING n > 0 ORDER BY n DESC, agency_code", parameters=parameters).result_rows
        return ([(int(m), t, int(n)) for m, t, n in per_minute],
                [(code, int(n), int(last)) for code, n, last in per_agency])

    def due_dossiers(self, agency_code: str, now_ms: int, within_ms: int, limit: int = 500) -> list[tuple]:
        """One agency's open dossiers due by now + within_ms, soonest first (overdue ones
        first): (id, procedure, received_at_ms, due_ms, last status). Dossiers waiting for the
        citizen (a supplement or a financial obligation requested) are on the citizen's clock
        and left out; so is a dossier received more than 400 days ago."""
        start = now_ms - 400 * DAY_MS
        parameters = {**period_parameters([agency_code], start, now_ms + 1, now_ms), "until": now_ms + within_ms}
        with measure_sources(self.client, [agency_code], start, now_ms + 1, None) as sources:
            rows_sql = bind(bind(ROWS["dossier"], UNGATED), sources)
            rows = self.client.query(
                f"SELECT entity_id, procedure_code, received_at_ms, due_effective_ms, last_status FROM ({rows_sql}) "
                "WHERE has_end = 0 AND last_status NOT IN (5, 6, 7) AND due_effective_ms > 0 "
                f"AND due_effective_ms <= {{until:Int64}} ORDER BY due_effective_ms, entity_id LIMIT {int(limit)}",
                parameters=parameters).result_rows
        return [(i, p, int(r), int(d), int(s)) for i, p, r, d, s in rows]

    def explain(self, plan: ExplainPlan, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
                offset: int, limit: int, as_of_ms: int | None = None
                ) -> tuple[int, list[tuple[str, str, list[tuple[str, str]], dict]]]:
        """(total, [(entity_id, agency_code, [(reason code, reason)], facts)]) of these agencies'
        rows that cost points, by id (then agency: a document has a row per side)."""
        parameters = period_parameters(agency_codes, start_ms, end_ms, judged_at_ms)
        facts = ", ".join(f"{expression} AS {label}" for label, expression in FACTS[plan.family])
        flags = ", ".join(f"({predicate}) AS reason_{i}" for i, (_, _, predicate) in enumerate(plan.reasons))
        with measure_sources(self.client, agency_codes, start_ms, end_ms, as_of_ms) as sources:
            rows_sql = bind(bind(ROWS[plan.family], UNGATED), sources)
            total = self.client.query(f"SELECT count() FROM ({rows_sql}) WHERE {plan.predicate}",
                                      parameters=parameters).result_rows[0][0]
            result = self.client.query(
                f"SELECT entity_id, agency_code, {flags}, {facts} FROM ({rows_sql}) WHERE {plan.predicate} "
                f"ORDER BY entity_id, agency_code LIMIT {int(limit)} OFFSET {int(offset)}", parameters=parameters)
        first_fact = 2 + len(plan.reasons)
        labels = result.column_names[first_fact:]
        items = []
        for row in result.result_rows:
            reasons = [(code, text) for (code, text, _), flag in zip(plan.reasons, row[2:first_fact]) if flag]
            items.append((row[0], row[1], reasons, dict(zip(labels, row[first_fact:]))))
        return int(total), items


class ClickHouseAlertRecords:
    """The alert loop's records in alert_state, and its index history in alert_index_samples
    (services/ranking/alerting.AlertRecords)."""

    def __init__(self, client):
        self.client = client

    def load(self) -> list[AlertRecord]:
        rows = self.client.query("SELECT alert, firing, since_ms, owed FROM alert_state FINAL "
                                 "WHERE firing = 1 OR notEmpty(owed)").result_rows
        return [AlertRecord(Alert(**json.loads(alert)), bool(firing), int(since), tuple(tuple(o) for o in owed))
                for alert, firing, since, owed in rows]

    def save(self, records: list[AlertRecord]) -> None:
        if records:
            self.client.insert("alert_state", [
                (r.alert.rule, r.alert.agency_code, int(r.firing), r.since_ms,
                 json.dumps(r.alert.__dict__, ensure_ascii=False), list(r.owed)) for r in records],
                column_names=["rule", "agency_code", "firing", "since_ms", "alert", "owed"])

    def load_samples(self, since_ms: int) -> list[tuple[str, int, float]]:
        rows = self.client.query("SELECT agency_code, at_ms, fraction FROM alert_index_samples "
                                 "WHERE at_ms >= {since:Int64} ORDER BY at_ms, agency_code",
                                 parameters={"since": since_ms}).result_rows
        return [(code, int(at), float(fraction)) for code, at, fraction in rows]

    def save_samples(self, samples: list[tuple[str, int, float]], forget_before_ms: int | None = None) -> None:
        self.client.insert("alert_index_samples", samples, column_names=["agency_code", "at_ms", "fraction"])
        if forget_before_ms is not None:  # a lightweight delete: rows hidden at once, removed by merges
            self.client.command("DELETE FROM alert_index_samples WHERE at_ms < {before:Int64}",
                                parameters={"before": forget_before_ms})

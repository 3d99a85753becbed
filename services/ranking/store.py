"""ClickHouse adapter of ranking: runs the measures of services/ranking/measures.py for a
period (from the states, or from the day snapshots), keeps the day snapshots, rebuilds
states as of an instant, lists what Explain shows, and reads the data version.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import defaultdict

from dti_pulse.events import decode_events
from dti_pulse.localtime import DAY_MS, LOCAL_OFFSET_MS, local_day
from dti_pulse.schema import (DOCUMENT_COLUMNS, DOSSIER_COLUMNS, MARK_ALL_DAYS_DIRTY_SQL,
                              SNAPSHOT_DELAY_MS, SNAPSHOT_QUIET_MS, column_names, span_sql)
from dti_pulse.state import summarize
from services.ranking.background import BackgroundLoop
from services.ranking.measures import (DAY_MEASURE_NAMES, DataVersion, ExplainPlan, FACTS, FAMILIES,
                                       LIVE_MEASURES_SQL, LIVE_SOURCES, MEASURES_SQL, MEASURE_DEFINITIONS, MINUTE_MS,
                                       NO_DAY, PLACED, ROWS, SNAPSHOT_FINGERPRINT, SNAPSHOT_READ_NAMES,
                                       SNAPSHOT_READ_SQL, SNAPSHOT_SQL, UNGATED, bind, every_measure, placed_on)

log = logging.getLogger(__name__)


class ClickHouseMeasures:
    def __init__(self, client, day_snapshots: bool = True, snapshot_interval_s: float = 1.0,
                 snapshot_batch: int = 20_000, snapshot_quiet_ms: int = SNAPSHOT_QUIET_MS,
                 version_client=None, keeper_client=None):
        self.client = client  # lookups
        self.version_client = version_client or client  # data_version, polled from a thread
        self.keeper_client = keeper_client or client  # day-snapshot rebuilds
        self.snapshot_quiet_ms = snapshot_quiet_ms
        self.day_snapshots = day_snapshots
        self.snapshot_batch = snapshot_batch
        # A round reads the whole states of its agencies: keep it to a tenth of the time; dirty
        # days are exact meanwhile, only slower to read. ClickHouse away: the same.
        self._keeper = BackgroundLoop("day-snapshots", self.recompute_dirty_day_snapshots, snapshot_interval_s,
                                      "day snapshots not recomputed", pace=9)

    @staticmethod
    def _parameters(agency_codes, start_ms, end_ms, judged_at_ms) -> dict:
        return {"agencies": list(agency_codes), "start": start_ms, "end": end_ms, "judged_at": judged_at_ms,
                **placed_on([], local_day(start_ms), local_day(end_ms - 1))}

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
            f"WHERE agency_code IN {{agencies:Array(String)}} AND {PLACED} AND is_deleted = 0 AND has_received = 1 "
            "AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64} GROUP BY dossier_id",
            parameters=window, column_formats={"blob": "bytes"}).result_rows
        documents = self.client.query(
            "SELECT document_id, agency_code, argMax(events_blob, event_count) AS blob FROM document_state "
            f"WHERE agency_code IN {{agencies:Array(String)}} AND {PLACED} AND is_deleted = 0 "
            "AND ((sent = 1 AND sent_at_ms >= {start:Int64} AND sent_at_ms < {end:Int64}) "
            "  OR (received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64})) "
            "GROUP BY document_id, agency_code", parameters=window, column_formats={"blob": "bytes"}).result_rows
        recalls = self.client.query(
            "SELECT document_id, agency_code, argMax(events_blob, event_count) AS blob FROM document_state "
            "WHERE recalled = 1 AND is_deleted = 0 GROUP BY document_id, agency_code",
            column_formats={"blob": "bytes"}).result_rows

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
                 as_of_ms: int | None = None, families=FAMILIES) -> dict[str, dict[str, int]]:
        """{agency_code: {measure: count}} for the agencies that have any data in the period;
        only the measures of `families` ("dossier", "document"), one query each."""
        if (self.day_snapshots and as_of_ms is None and end_ms >= judged_at_ms and judged_at_ms % MINUTE_MS == 0
                and (start_ms + LOCAL_OFFSET_MS) % DAY_MS == 0 and (end_ms + LOCAL_OFFSET_MS) % DAY_MS == 0
                and agency_codes):
            return self._measures_from_day_snapshots(agency_codes, start_ms, end_ms, judged_at_ms, families)
        parameters = self._parameters(agency_codes, start_ms, end_ms, judged_at_ms)
        found: dict[str, dict[str, int]] = defaultdict(dict)
        with self._sources(agency_codes, start_ms, end_ms, as_of_ms) as sources:
            for family in families:
                result = self.client.query(bind(MEASURES_SQL[family], sources), parameters=parameters)
                names = result.column_names[1:]
                for row in result.result_rows:
                    found[row[0]].update(zip(names, (int(v) for v in row[1:])))
        return every_measure(found, families)

    def _measures_from_day_snapshots(self, agency_codes: list[str], start_ms: int, end_ms: int,
                                     judged_at_ms: int, families=FAMILIES) -> dict[str, dict[str, int]]:
        """The clean snapshots of the period's whole days before J, plus the entity states of
        its dirty days and of its days from the one J falls in (when the period is open)."""
        first_day, end_day = local_day(start_ms), local_day(judged_at_ms)
        snapshot_rows = self.client.query(SNAPSHOT_READ_SQL, parameters={
            "agencies": list(agency_codes), "first_day": first_day, "end_day": end_day,
            "judged_at": judged_at_ms}).result_rows if first_day < end_day else []
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        sets: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
        live = []
        for agency, summed, dirty_days, *values in snapshot_rows:
            found = counts[agency]
            for name, value in summed.items():
                found[name] += int(value)
            live.extend((agency, day) for day in dirty_days)
            for (name, kind), value in zip(SNAPSHOT_READ_NAMES[2:], values):
                if kind == "set":
                    sets[agency][name].update(value)
                else:
                    found[name] += int(value)
        live_from = end_day if end_ms > judged_at_ms else NO_DAY
        if live or live_from != NO_DAY:
            parameters = {"agencies": sorted({agency for agency, _ in live}) if live_from == NO_DAY else list(agency_codes),
                          "start": start_ms, "end": end_ms, "judged_at": judged_at_ms, "live": live,
                          "live_from": live_from,
                          **placed_on(sorted({day for _, day in live}), live_from, local_day(end_ms - 1))}
            for family in families:
                result = self.client.query(LIVE_MEASURES_SQL[family], parameters=parameters)
                for agency, *values in result.result_rows:
                    found = counts[agency]
                    for name, value in zip(result.column_names[1:], values):
                        if MEASURE_DEFINITIONS[name].distinct:
                            sets[agency][name].update(value)
                        else:
                            found[name] += int(value)
        for agency, found in counts.items():
            for name, values in sets[agency].items():
                found[name] = len(values)
        return every_measure(counts, families)

    def recompute_day_snapshots(self, pairs: list[tuple[str, int]]) -> int:
        """Recomputes the snapshots of these (agency, day) pairs from the entity states and
        marks them clean. Idempotent; a pair marked dirty again since the start stays dirty."""
        if not pairs:
            return 0
        version_us = self.keeper_client.query("SELECT toUnixTimestamp64Micro(now64(6))").result_rows[0][0]
        now_ms = version_us // 1000
        parameters = {"agencies": sorted({agency for agency, _ in pairs}), "pairs": list(pairs),
                      "recent": now_ms - (now_ms + LOCAL_OFFSET_MS) % DAY_MS - DAY_MS,
                      **placed_on(sorted({day for _, day in pairs}))}
        snapshots = {(agency, day): ({}, {}, {}) for agency, day in pairs}
        for sql, names in SNAPSHOT_SQL.values():
            for agency, day, *values in self.keeper_client.query(sql, parameters=parameters).result_rows:
                counts, sets, steps = snapshots.setdefault((agency, day), ({}, {}, {}))
                for (name, kind), value in zip(names, values):
                    if kind == "set":
                        sets[name] = value
                    elif kind == "steps":
                        steps[name] = value
                    else:
                        counts[name] = value
        rows = [(agency, day, 0, counts, sets, steps, version_us)
                for (agency, day), (counts, sets, steps) in snapshots.items()]
        self.keeper_client.insert("day_measures", rows, column_names=DAY_MEASURE_NAMES)
        return len(rows)

    def ensure_day_snapshot_definitions(self) -> bool:
        """Marks every day dirty when the snapshots were built with other measure definitions
        (or never built); returns whether it did. Call before serving."""
        stored = self.client.query(
            "SELECT fingerprint FROM day_measure_definitions ORDER BY applied_at DESC LIMIT 1").result_rows
        if stored and stored[0][0] == SNAPSHOT_FINGERPRINT:
            return False
        self.client.command(MARK_ALL_DAYS_DIRTY_SQL)
        self.client.insert("day_measure_definitions", [[SNAPSHOT_FINGERPRINT]], column_names=["fingerprint"])
        log.info("measure definitions changed: every day snapshot marked dirty, rebuilt in the background")
        return True

    def recompute_dirty_day_snapshots(self, now_ms: int | None = None) -> int:
        """One round: recomputes up to snapshot_batch dirty pairs of days over for
        SNAPSHOT_DELAY_MS and unmarked for snapshot_quiet_ms; returns how many. A current day
        is always read from the states (its periods end at "now"), and a day still being
        written would be rebuilt again and again: both are read from the states meanwhile."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        pairs = [(agency, int(day)) for agency, day in self.keeper_client.query(
            "SELECT agency_code, day FROM day_measures FINAL WHERE dirty = 1 AND day < {before:Int32} "
            "AND version < toUnixTimestamp64Micro(now64(6)) - {quiet_us:Int64} "
            # In the state tables' order (span of days, agency, day): a round's pairs are then a
            # few ranges of them. (A day at a time, as when the tables were sorted by day first,
            # a national round was under one day of every agency, a granule each at least: the
            # 34 provinces' rebuild took 383 s, against 250 s sorted by day first.)
            f"ORDER BY {span_sql('day')}, agency_code, day LIMIT {int(self.snapshot_batch)}",
            parameters={"before": local_day(now_ms - SNAPSHOT_DELAY_MS), "quiet_us": self.snapshot_quiet_ms * 1000}
        ).result_rows]
        return self.recompute_day_snapshots(pairs)

    def refresh_in_background(self) -> None:
        """Keeps the day snapshots clean from a thread: each round recomputes what is dirty."""
        if self.day_snapshots:
            self._keeper.start()

    def stop_refreshing(self) -> None:
        self._keeper.stop(30)

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
        dossiers, documents, activity, migrations = self.version_client.query(
            "SELECT maxIf(max_block_number, table = 'dossier_state'), maxIf(max_block_number, table = 'document_state'), "
            "maxIf(max_block_number, table = 'activity_minute'), countIf(table = 'schema_migrations') "
            "FROM system.parts WHERE database = currentDatabase() AND active").result_rows[0]
        return DataVersion((dossiers, documents, migrations), (activity, migrations))

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

    def explain(self, plan: ExplainPlan, agency_code: str, start_ms: int, end_ms: int, judged_at_ms: int,
                offset: int, limit: int, as_of_ms: int | None = None) -> tuple[int, list[tuple[str, list[str], dict]]]:
        """(total, [(entity_id, [(reason code, reason)], facts)]) of one agency's rows that cost points, by id."""
        parameters = self._parameters([agency_code], start_ms, end_ms, judged_at_ms)
        facts = ", ".join(f"{expression} AS {label}" for label, expression in FACTS[plan.family])
        flags = ", ".join(f"({predicate}) AS reason_{i}" for i, (_, _, predicate) in enumerate(plan.reasons))
        with self._sources([agency_code], start_ms, end_ms, as_of_ms) as sources:
            rows_sql = bind(bind(ROWS[plan.family], UNGATED), sources)
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

"""Day snapshots: per agency and local day, the measures of that day's entities, so a
period of whole days sums a few rows a day instead of reading every entity.

The aggregator marks an (agency, day) dirty when it writes an entity placed on it; the
keeper rebuilds dirty days in the background once they are over and quiet; a read takes
the clean snapshots and reads the dirty days, and the open day, from the states.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict

from dti_pulse.localtime import DAY_MS, LOCAL_OFFSET_MS, local_day
from dti_pulse.schema import MARK_ALL_DAYS_DIRTY_SQL, SNAPSHOT_DELAY_MS, SNAPSHOT_QUIET_MS, span_sql
from dti_pulse.state import UNDATED
from services.ranking.background import BackgroundLoop
from services.ranking.measures import (DAY_MEASURE_NAMES, FAMILIES, LIVE_MEASURES_SQL, MEASURE_DEFINITIONS, NO_DAY,
                                       SNAPSHOT_FINGERPRINT, SNAPSHOT_READ_NAMES, SNAPSHOT_READ_SQL, SNAPSHOT_SQL,
                                       every_measure, period_parameters, placed_on)

log = logging.getLogger(__name__)


def measures_from_day_snapshots(client, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
                                families=FAMILIES) -> dict[str, dict[str, int]]:
    """The clean snapshots of the period's whole days before J, plus the entity states of
    its dirty days and of its days from the one J falls in (when the period is open)."""
    first_day, end_day = local_day(start_ms), local_day(judged_at_ms)
    snapshot_rows = client.query(SNAPSHOT_READ_SQL, parameters={
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

    def add_live(result) -> None:
        for agency, *values in result.result_rows:
            found = counts[agency]
            for name, value in zip(result.column_names[1:], values):
                if MEASURE_DEFINITIONS[name].distinct:
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
            if family not in UNDATED:
                add_live(client.query(LIVE_MEASURES_SQL[family], parameters=parameters))
    for family in families:
        if family in UNDATED:  # no snapshots: always read, as of the period's end
            add_live(client.query(LIVE_MEASURES_SQL[family],
                                  parameters=period_parameters(agency_codes, start_ms, end_ms, judged_at_ms)))
    for agency, found in counts.items():
        for name, values in sets[agency].items():
            found[name] = len(values)
    return every_measure(counts, families)


class DaySnapshotKeeper:
    """Rebuilds dirty day snapshots, on a connection of its own, from a thread."""

    def __init__(self, client, interval_s: float = 1.0, batch: int = 20_000, quiet_ms: int = SNAPSHOT_QUIET_MS):
        self.client = client
        self.batch = batch
        self.quiet_ms = quiet_ms
        # A round reads the whole states of its agencies: keep it to a tenth of the time; dirty
        # days are exact meanwhile, only slower to read. ClickHouse away: the same.
        self._loop = BackgroundLoop("day-snapshots", self.recompute_dirty, interval_s,
                                    "day snapshots not recomputed", pace=9)

    def recompute(self, pairs: list[tuple[str, int]]) -> int:
        """Recomputes the snapshots of these (agency, day) pairs from the entity states and
        marks them clean. Idempotent; a pair marked dirty again since the start stays dirty."""
        if not pairs:
            return 0
        version_us = self.client.query("SELECT toUnixTimestamp64Micro(now64(6))").result_rows[0][0]
        now_ms = version_us // 1000
        parameters = {"agencies": sorted({agency for agency, _ in pairs}), "pairs": list(pairs),
                      "recent": now_ms - (now_ms + LOCAL_OFFSET_MS) % DAY_MS - DAY_MS,
                      **placed_on(sorted({day for _, day in pairs}))}
        snapshots = {(agency, day): ({}, {}, {}) for agency, day in pairs}
        for sql, names in SNAPSHOT_SQL.values():
            for agency, day, *values in self.client.query(sql, parameters=parameters).result_rows:
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
        self.client.insert("day_measures", rows, column_names=DAY_MEASURE_NAMES)
        return len(rows)

    def ensure_definitions(self) -> bool:
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

    def recompute_dirty(self, now_ms: int | None = None) -> int:
        """One round: recomputes up to `batch` dirty pairs of days over for SNAPSHOT_DELAY_MS
        and unmarked for quiet_ms; returns how many. A current day is always read from the
        states (its periods end at "now"), and a day still being written would be rebuilt
        again and again: both are read from the states meanwhile."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        pairs = [(agency, int(day)) for agency, day in self.client.query(
            "SELECT agency_code, day FROM day_measures FINAL WHERE dirty = 1 AND day < {before:Int32} "
            "AND version < toUnixTimestamp64Micro(now64(6)) - {quiet_us:Int64} "
            # In the state tables' order (span of days, agency, day): a round's pairs are then a
            # few ranges of them. (A day at a time, as when the tables were sorted by day first,
            # a national round was under one day of every agency, a granule each at least: the
            # 34 provinces' rebuild took 383 s, against 250 s sorted by day first.)
            f"ORDER BY {span_sql('day')}, agency_code, day LIMIT {int(self.batch)}",
            parameters={"before": local_day(now_ms - SNAPSHOT_DELAY_MS), "quiet_us": self.quiet_ms * 1000}
        ).result_rows]
        return self.recompute(pairs)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop(30)

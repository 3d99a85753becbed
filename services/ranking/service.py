"""Ranking use cases: score, rank, compare rules, explain. Ports: measures, registry, rules."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol

from dti_pulse.localtime import LOCAL_TZ
from dti_pulse.registry import COHORTS, Agency, Registry
from services.ranking.background import BackgroundLoop
from services.ranking.periods import MAX_TREND_POINTS, TREND_GRANULARITIES, Period, parse_period, trend_labels
from services.ranking.rules import Indicator, RulesCatalog, RuleSet
from services.ranking.scoring import IndicatorResult, Score, rank, score_agency, score_indicator
from services.ranking.store import (FAMILIES, MEASURE_DEFINITIONS, DataVersion, ExplainPlan, NotExplainable,
                                    explain_plan, measure_names)

log = logging.getLogger(__name__)


class Measures(Protocol):
    def measures(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
                 as_of_ms: int | None = None, families=FAMILIES) -> dict[str, dict[str, int]]: ...
    def explain(self, plan: ExplainPlan, agency_code: str, start_ms: int, end_ms: int, judged_at_ms: int,
                offset: int, limit: int, as_of_ms: int | None = None) -> tuple[int, list]: ...
    def activity(self, agency_code: str | None, start_ms: int, end_ms: int) -> tuple[list, list]: ...


class CachedMeasures:
    """Measures cached until the entity states change. The store's data version is read at
    most every version_ttl_s, so a lookup between changes costs no query; a change shows
    at most version_ttl_s later. With `changes` (this process's write signal) a signalled
    write changes the version at once, without a query; the poll is left to catch writers
    that do not signal.

    The version handed out is, per kind ("measures", "activity"), (epoch, writes): `writes`
    counts signalled writes, `epoch` the store versions the poll found changed with no
    signal since its last read. A store change that was signalled thus invalidates the
    cache once, not again when the poll sees it. (A writer that does not signal, in the same
    poll interval as one that does, is missed until the next change; under chDB, every
    writer of a data path is in its process, and the aggregator signals.)

    A signalled write that names, per family of states, the agencies it changed invalidates
    only those agencies' counts of that family: a batch of other agencies' events leaves a
    score, or a ranking of a cohort it did not touch, cached, and a batch of an agency's
    dossiers recounts its dossiers only (an entry remembers the write count it was computed
    after; a family of it is stale once a later write named one of its agencies for it).

    Open periods are judged at the start of the current judgement step (a minute): when it
    turns, every open question is a new entry, and every screen's lookups would miss at the
    same instant and count at once (~1 s of stalled answers each minute on this machine).
    With judge_step_ms set, a background round counts, warm_lead_ms before the turn, the
    questions asked during the step at the next step's instant; a write after the round
    leaves them stale as it would any entry."""

    _KINDS = DataVersion._fields

    def __init__(self, store, version_ttl_s: float = 0.1, capacity: int = 4096, clock=time.monotonic,
                 changes=None, judge_step_ms: int = 0, warm_lead_ms: int = 10_000,
                 wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000), warm_store=None):
        self.store = store
        self.warm_store = warm_store or store  # the same data, reached apart from the lookups
        self.judge_step_ms = judge_step_ms
        # 0 (no warming) also without a step: a positive lead implies one
        self.warm_lead_ms = max(0, min(warm_lead_ms, judge_step_ms // 2))
        self._wall_clock_ms = wall_clock_ms
        self._asked: dict[tuple, int] = {}  # open questions' keys -> the judgement instant they were last asked at
        self._warmed_for = None  # the step whose questions self._warmed are
        self._warmed: set[tuple] = set()  # questions already counted at the next step's instant
        # Several rounds within the lead: questions first asked after the first round are warmed too.
        self._warmer = BackgroundLoop("judgement-warmer", self.warm_next_judgement,
                                      max(0.05, min(1.0, self.warm_lead_ms / 4000)), "next judgement not warmed")
        self.version_ttl_s = version_ttl_s
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, tuple] = OrderedDict()  # key -> (basis, writes before, value)
        self._stored = None  # the store's version at the last read
        self._epochs = dict.fromkeys(self._KINDS, 0)
        self._writes = dict.fromkeys(self._KINDS, 0)
        self._writes_since_read = dict.fromkeys(self._KINDS, 0)
        self._unnamed_writes = 0  # signalled measures writes that named no agencies: they change every entry
        self._agency_written: dict[tuple, int] = {}  # (family, agency) -> the measures write count after its last write
        self._version = None
        self._version_read_at: float | None = None
        self._change_listeners: list = []
        # ClickHouse away: lookups fall back to the slow path
        self._behind_logged_at = float("-inf")
        self._refresher = BackgroundLoop("data-version", lambda: self._current_version(force=True),
                                         version_ttl_s / 2, "data version not readable")
        if changes is not None:
            changes.subscribe(self._written)

    def _handed_out(self) -> DataVersion:
        return DataVersion(*((self._epochs[kind], self._writes[kind]) for kind in self._KINDS))

    def on_change(self, listener) -> Callable[[], None]:
        """Calls listener(kind, {family: agencies} or None) from the writer's or the poll's thread at
        each change this cache learns of; returns the unsubscribe function."""
        self._change_listeners.append(listener)
        return lambda: self._change_listeners.remove(listener)

    def _changed(self, kind: str, changed) -> None:
        for listener in list(self._change_listeners):
            listener(kind, changed)

    def _written(self, kind: str, changed=None) -> None:
        """changed: {family: agencies} the write changed, or None (anything)."""
        with self._lock:
            self._writes[kind] += 1
            self._writes_since_read[kind] += 1
            if kind == "measures":
                if changed is None:
                    self._unnamed_writes += 1
                else:
                    for family, agencies in changed.items():
                        for agency in agencies:
                            self._agency_written[(family, agency)] = self._writes[kind]
            if self._version is not None:
                self._version = self._handed_out()
        self._changed(kind, changed)

    def _current_version(self, force: bool = False) -> DataVersion:
        now = self._clock()
        with self._lock:
            if not force and self._version_read_at is not None and now - self._version_read_at < self.version_ttl_s:
                return self._version
            if (not force and self._version_read_at is not None and self._refresher.running
                    and now - self._behind_logged_at >= 10):
                # The poll should keep it fresh: a lookup that reads it waits for a query, in
                # line with every other lookup doing the same (a suspect of a stalled turn).
                self._behind_logged_at = now
                log.warning("data version %.1f s old: lookups read it themselves (the background poll is behind)",
                            now - self._version_read_at)
        stored = self.store.data_version()
        with self._lock:
            found = []
            for kind in self._KINDS:
                if (self._stored is None or getattr(stored, kind) != getattr(self._stored, kind)) \
                        and not self._writes_since_read[kind]:
                    self._epochs[kind] += 1
                    found.append(kind)
                self._writes_since_read[kind] = 0
            first_read = self._stored is None
            self._stored = stored
            self._version, self._version_read_at = self._handed_out(), now
            version = self._version
        if not first_read:
            for kind in found:
                self._changed(kind, None)
        return version

    def _basis(self) -> tuple[tuple, int]:
        """What every entry depends on (the poll's epoch, the unnamed writes) and the count of
        measures writes so far: an entry computed now holds everything written until then."""
        self._current_version()
        with self._lock:
            return (self._epochs["measures"], self._unnamed_writes), self._writes["measures"]

    def _stale_families(self, entry, agency_codes, basis) -> tuple:
        """The families whose counts the entry no longer holds; called with the lock held."""
        if entry is None or entry[0] != basis:
            return FAMILIES
        written, since = self._agency_written, entry[1]
        return tuple(family for family in FAMILIES
                     if any(written.get((family, code), 0) > since for code in agency_codes))

    def refresh_in_background(self) -> None:
        """Keeps the data version fresh from a thread, so that no lookup waits for it, and
        (with judge_step_ms) the next judgement instant's answers counted before it comes."""
        store_refresh = getattr(self.store, "refresh_in_background", None)
        if store_refresh:
            store_refresh()
        self._refresher.start()
        if self.warm_lead_ms > 0:
            self._warmer.start()

    def stop_refreshing(self) -> None:
        """Stops the refresher; it must not query chDB while the process shuts chDB down."""
        self._refresher.stop(5)
        self._warmer.stop(30)
        store_stop = getattr(self.store, "stop_refreshing", None)
        if store_stop:
            store_stop()

    def fresh_version(self):
        """The data version if it was read within the TTL, else None (without querying)."""
        with self._lock:
            if self._version_read_at is not None and self._clock() - self._version_read_at < self.version_ttl_s:
                return self._version
        return None

    def fresh_measures_stamp(self, agency_codes):
        """What these agencies' measures depend on: it changes when a write names one of them,
        or a write names none, or the poll finds a change; None unless the data version was
        read within the TTL (without querying)."""
        with self._lock:
            if self._version_read_at is None or self._clock() - self._version_read_at >= self.version_ttl_s:
                return None
            written = self._agency_written
            return (self._epochs["measures"], self._unnamed_writes,
                    max((written.get((family, code), 0) for family in FAMILIES for code in agency_codes), default=0))

    @staticmethod
    def _entry_key(agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms) -> tuple:
        return tuple(agency_codes), start_ms, end_ms, judged_at_ms, as_of_ms

    def _note_asked(self, key: tuple) -> None:
        """Remembers an open period's question (judged before its end, not as of an
        instant) for the next warming round; called with the lock held."""
        _, _, end_ms, judged_at_ms, as_of_ms = key
        if self.warm_lead_ms > 0 and as_of_ms is None and judged_at_ms < end_ms:
            self._asked.pop(key, None)  # to the end: the first key is the longest unasked
            self._asked[key] = judged_at_ms
            if len(self._asked) > self.capacity:
                del self._asked[next(iter(self._asked))]

    def warm_next_judgement(self) -> int:
        """One round: within warm_lead_ms of the next judgement step, counts each question
        asked during the current step at the next step's instant (the key a lookup will ask
        for then), once a step, also those first asked after the step's first round; returns
        how many it counted. Questions not asked during the current step are forgotten, and
        the round's own counting is not an asking."""
        step = self.judge_step_ms
        now = self._wall_clock_ms()
        current = now - now % step
        if current + step - now > self.warm_lead_ms:
            return 0
        if self._warmed_for != current:
            self._warmed_for, self._warmed = current, set()
        with self._lock:
            self._asked = {key: judged for key, judged in self._asked.items() if judged >= current}
            # One agency's question that a wider question asked this step covers (its
            # cohort's, which a lookup looks for first) is answered from the wider count: a
            # cohort counts in about the time of one of its agencies. When the cohort is
            # counted in the same round, the agency also gets an entry of its own, so that a
            # write to another agency of the cohort after the round leaves it fresh, as it
            # would a count of its own. (First asked after the cohort's round, it gets none:
            # its lookup takes the cohort's entry, or counts alone once that is stale.)
            covered: dict[tuple, set] = {}
            for codes, start_ms, end_ms, _, _ in self._asked:
                if len(codes) > 1:
                    covered.setdefault((start_ms, end_ms), set()).update(codes)
            alone = {(key[0][0], key[1], key[2]) for key in self._asked
                     if len(key[0]) == 1 and key[0][0] in covered.get(key[1:3], ())}
            # Most recently asked first: if the round runs past the turn, the rest are
            # counted by their own lookups, as without warming.
            asked = [key for key in reversed(self._asked) if key not in self._warmed
                     and (len(key[0]) > 1 or (key[0][0], key[1], key[2]) not in alone)]
        counted, started = 0, time.perf_counter()
        for key in asked:
            if self._wall_clock_ms() >= current + step:
                break
            codes, start_ms, end_ms, _, _ = key
            # Once a step: a busy agency's count goes stale at its next write, and is
            # counted again by the lookup after it, as it is all minute.
            self._warmed.add(key)
            split = [code for code in codes if (code, start_ms, end_ms) in alone] if len(codes) > 1 else []
            if self._count(self._entry_key(codes, start_ms, end_ms, min(end_ms, current + step), None),
                           self.warm_store, split)[0]:
                counted += 1
        if counted:
            log.info("next judgement warmed: %d of %d questions counted in %.0f ms", counted, len(asked),
                     1000 * (time.perf_counter() - started))
        return counted

    def measures(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
                 as_of_ms: int | None = None) -> dict[str, dict[str, int]]:
        key = self._entry_key(agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms)
        with self._lock:
            self._note_asked(key)
        return self._count(key)[1]

    def _count(self, key: tuple, store=None, split=()) -> tuple[bool, dict[str, dict[str, int]]]:
        """(whether the store was asked, the key's measures): from the entry while it is
        fresh, else counted by `store` (the lookups' by default; only the stale families,
        when the entry has the others). A count also enters each agency of `split` under
        its own question, as of the same writes (an agency's counts do not depend on the
        others asked with it)."""
        store = store or self.store
        agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms = key
        agency_codes = list(agency_codes)
        basis, writes = self._basis()
        with self._lock:
            entry = self._entries.get(key)
            stale = self._stale_families(entry, agency_codes, basis)
            if not stale:
                self._entries.move_to_end(key)
                return False, entry[2]
        if stale == FAMILIES:
            value = store.measures(agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms)
        else:  # the other family's counts are still the entry's: one query instead of two
            value = _with_families(entry[2], stale, store.measures(agency_codes, start_ms, end_ms, judged_at_ms,
                                                                    as_of_ms, families=stale))
        with self._lock:
            for code in split:
                alone = self._entry_key([code], start_ms, end_ms, judged_at_ms, as_of_ms)
                self._entries[alone] = (basis, writes, {code: value[code]} if code in value else {})
                self._entries.move_to_end(alone)
            self._entries[key] = (basis, writes, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return True, value

    def cached(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
               as_of_ms: int | None = None) -> dict[str, dict[str, int]] | None:
        """What measures() would answer from memory now, else None (no query). Either way
        the question counts as asked: the caller would take this answer, so the next
        judgement warms it (and not the narrower questions it covers)."""
        basis, _ = self._basis()
        key = self._entry_key(agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms)
        with self._lock:
            self._note_asked(key)
            entry = self._entries.get(key)
            if self._stale_families(entry, agency_codes, basis):
                return None
            return entry[2]

    def explain(self, *args, **kwargs):
        return self.store.explain(*args, **kwargs)

    def activity(self, *args, **kwargs):
        return self.store.activity(*args, **kwargs)


def _with_families(measures: dict, families, recounted: dict) -> dict:
    """measures with the counts of `families` replaced by the recounted ones."""
    replaced = set(measure_names(families))
    merged = {}
    for agency in measures.keys() | recounted.keys():
        counts = dict.fromkeys(MEASURE_DEFINITIONS, 0)
        counts.update((name, value) for name, value in measures.get(agency, {}).items() if name not in replaced)
        counts.update(recounted.get(agency, {}))
        merged[agency] = counts
    return merged


class NotFound(LookupError):
    pass


class BadRequest(ValueError):
    pass


@dataclass
class ScoredAgency:
    agency: Agency
    cohort: str
    period: Period
    rules: RuleSet
    score: Score
    computed_at_ms: int


@dataclass
class RankingResult:
    cohort: str
    period: Period
    rules: RuleSet
    entries: list[ScoredAgency]
    computed_at_ms: int


@dataclass
class Explanation:
    agency: Agency
    period: Period
    rules: RuleSet
    indicator: IndicatorResult
    kind: str
    total: int
    items: list  # (entity_id, reasons, facts)
    next_offset: int | None


@dataclass
class ActivityResult:
    agency_code: str  # "" for the province
    minutes: int
    per_minute: list  # [(minute_ms, {type: events})] for every minute of the window
    totals: dict
    agencies: list  # [(agency_code, name, events)], busiest first
    last_event_ms: int | None
    computed_at_ms: int


MAX_PAGE = 1000
MAX_ACTIVITY_MINUTES = 1440


class RankingService:
    def __init__(self, registry: Registry, rules: RulesCatalog, default_version: str, measures: Measures,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000), judge_granularity_ms: int = 60_000):
        if default_version not in rules.rulesets():
            raise ValueError(f"default rules version {default_version!r} is not loaded "
                             f"({', '.join(rules.rulesets())}; refused: {rules.errors()})")
        self.registry = registry
        self.rules = rules
        self.default_version = default_version
        self.store = measures
        self.clock_ms = clock_ms
        self.judge_granularity_ms = max(1, judge_granularity_ms)

    def cache_stamp(self, depends_on: str = "measures", agency_code: str = ""):
        """What a cached answer depends on besides the request: the version of the data it
        is computed from ("measures" or "activity"; None when not known to be fresh: do not
        use a cache then), the judgement instant's bucket and the rules loaded. An answer
        about one agency's measures depends on that agency's writes only."""
        if agency_code and depends_on == "measures":
            stamp = getattr(self.store, "fresh_measures_stamp", None)
            version = stamp([agency_code]) if stamp else None
        else:
            fresh_version = getattr(self.store, "fresh_version", None)
            version = fresh_version() if fresh_version else None
            version = getattr(version, depends_on) if version is not None else None
        if version is None:
            return None
        return version, self.clock_ms() // self.judge_granularity_ms, id(self.rules.rulesets())

    def _rules(self, version: str) -> RuleSet:
        rulesets = self.rules.rulesets()
        rules = rulesets.get(version or self.default_version)
        if rules is None:
            raise NotFound(f"rules version {version!r} is not loaded; known: {', '.join(sorted(rulesets))}")
        return rules

    def _period(self, label: str) -> Period:
        try:
            return parse_period(label)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def _judged_at(self, period: Period, as_of_ms: int | None) -> tuple[int, int]:
        """(when computed, when judged): items are judged at the period's end, or at as_of /
        now if earlier; what was received after that instant did not exist yet, so the
        measures' window ends there too."""
        now = self.clock_ms()
        if as_of_ms is not None and as_of_ms > now:
            raise BadRequest("as_of is in the future")
        # An open period is judged at the start of the current minute (judge granularity):
        # lookups between data changes are then answered from the cache, and a dossier that
        # runs past its due time shows as late at most a minute later.
        floored = now - now % self.judge_granularity_ms
        return now, period.judged_at_ms(as_of_ms if as_of_ms is not None else floored)

    @staticmethod
    def _window_end(period: Period, judged_at: int, as_of_ms: int | None) -> int:
        """What was received by this instant counts: as_of leaves out what came after it;
        otherwise an item received in the current minute counts at once (judged, like the
        rest, at the start of the minute)."""
        return judged_at if as_of_ms is not None else period.end_ms

    def _scored_agency(self, agency_code: str) -> Agency:
        agency = self.registry.get(agency_code)
        if agency is None:
            raise NotFound(f"unknown agency {agency_code!r}")
        if agency.kind not in COHORTS:
            raise BadRequest(f"agency {agency_code!r} is a {agency.kind}; only {', '.join(COHORTS)} are scored")
        return agency

    def compare(self, agency_code: str, period_label: str, versions: list[str],
                as_of_ms: int | None = None) -> list[ScoredAgency]:
        """The same measures scored under each rules version, in the order asked."""
        agency = self._scored_agency(agency_code)
        period = self._period(period_label)
        if not versions:
            raise BadRequest("name at least one rules version")
        rulesets = [self._rules(v) for v in versions]
        now, judged_at = self._judged_at(period, as_of_ms)
        measures = self._agency_measures(agency, period, judged_at, as_of_ms)
        return [_scored(agency, period, rules, measures, now) for rules in rulesets]

    def _cohort(self, kind: str, period: Period) -> dict[str, Agency]:
        """The cohort's agencies by code, in the registry's order: a ranking's measures are
        cached under this list, and _agency_measures looks them up by it."""
        return {a.code: a for a in self.registry.cohort(kind, period.first_day, period.last_day)}

    def _agency_measures(self, agency: Agency, period: Period, judged_at: int, as_of_ms: int | None) -> dict[str, int]:
        """The agency's measures: from its cohort's, when a ranking of this period has them
        in memory at the current data version; else from the agency's own rows (its slice
        of the table: after a change, one agency costs a fraction of its cohort to count,
        and a quiet agency of a busy cohort next to nothing)."""
        end_ms = self._window_end(period, judged_at, as_of_ms)
        cached = getattr(self.store, "cached", None)
        if cached is not None:
            codes = list(self._cohort(agency.kind, period))
            cohort = cached(codes, period.start_ms, end_ms, judged_at, as_of_ms) if agency.code in codes else None
            if cohort is not None:
                return cohort.get(agency.code, {})
        return self.store.measures([agency.code], period.start_ms, end_ms, judged_at, as_of_ms).get(agency.code, {})

    def agency_score(self, agency_code: str, period_label: str, rules_version: str = "",
                     as_of_ms: int | None = None) -> ScoredAgency:
        return self.compare(agency_code, period_label, [rules_version], as_of_ms)[0]

    def ranking(self, cohort: str, period_label: str, rules_version: str = "",
                as_of_ms: int | None = None) -> RankingResult:
        if cohort not in COHORTS:
            raise BadRequest(f"cohort {cohort!r} is not one of {', '.join(COHORTS)}")
        period, rules = self._period(period_label), self._rules(rules_version)
        agencies = self._cohort(cohort, period)
        now, judged_at = self._judged_at(period, as_of_ms)
        measures = (self.store.measures(list(agencies), period.start_ms, self._window_end(period, judged_at, as_of_ms),
                                        judged_at, as_of_ms)
                    if agencies else {})
        scores = rank([score_agency(code, cohort, rules, measures.get(code, {})) for code in agencies], rules)
        entries = [ScoredAgency(agencies[s.agency_code], cohort, period, rules, s, now) for s in scores]
        return RankingResult(cohort, period, rules, entries, now)

    def explain(self, agency_code: str, indicator_code: str, period_label: str, rules_version: str = "",
                as_of_ms: int | None = None, offset: int = 0, limit: int = 50) -> Explanation:
        agency = self._scored_agency(agency_code)
        period, rules = self._period(period_label), self._rules(rules_version)
        indicator = next((i for i in rules.for_cohort(agency.kind) if i.code == indicator_code), None)
        if indicator is None:
            raise NotFound(f"indicator {indicator_code!r} is not in rules {rules.version} for {agency.kind}s; "
                           f"known: {', '.join(i.code for i in rules.for_cohort(agency.kind))}")
        if offset < 0 or not 0 < limit <= MAX_PAGE:
            raise BadRequest(f"page size must be 1..{MAX_PAGE}")
        ratio = _explained_ratio(indicator)
        try:
            plan = explain_plan(ratio.numerator, ratio.denominator)
        except NotExplainable as exc:
            raise BadRequest(f"{indicator_code}: {exc}") from None
        _, judged_at = self._judged_at(period, as_of_ms)
        measures = self._agency_measures(agency, period, judged_at, as_of_ms)
        total, items = self.store.explain(plan, agency.code, period.start_ms,
                                          self._window_end(period, judged_at, as_of_ms), judged_at, offset, limit,
                                          as_of_ms)
        next_offset = offset + len(items) if offset + len(items) < total else None
        return Explanation(agency, period, rules, score_indicator(indicator, measures), plan.family, total, items,
                           next_offset)


    def trend(self, agency_code: str, granularity: str, points: int = 0, rules_version: str = "") -> list[ScoredAgency]:
        """The agency's score for each of its last days or months, oldest first: each point
        is the same score GetAgencyScore gives for that period."""
        agency = self._scored_agency(agency_code)
        if granularity not in TREND_GRANULARITIES:
            raise BadRequest(f"granularity {granularity!r} is not one of {', '.join(TREND_GRANULARITIES)}")
        points = points or TREND_GRANULARITIES[granularity]
        if not 0 < points <= MAX_TREND_POINTS[granularity]:
            raise BadRequest(f"points must be 1..{MAX_TREND_POINTS[granularity]} for {granularity}s")
        rules = self._rules(rules_version)
        today = datetime.fromtimestamp(self.clock_ms() / 1000, LOCAL_TZ).date()
        points_scored = []
        for label in trend_labels(granularity, points, today):
            period = self._period(label)
            now, judged_at = self._judged_at(period, None)
            measures = self._agency_measures(agency, period, judged_at, None)
            points_scored.append(_scored(agency, period, rules, measures, now))
        return points_scored

    def activity(self, agency_code: str = "", minutes: int = 0) -> ActivityResult:
        """New events per minute of arrival and type over the last `minutes` (the current
        minute included), every minute listed."""
        minutes = minutes or 60
        if not 0 < minutes <= MAX_ACTIVITY_MINUTES:
            raise BadRequest(f"minutes must be 1..{MAX_ACTIVITY_MINUTES}")
        if agency_code and self.registry.get(agency_code) is None:
            raise NotFound(f"unknown agency {agency_code!r}")
        now = self.clock_ms()
        end = now - now % 60_000 + 60_000
        start = end - minutes * 60_000
        per_minute_rows, per_agency_rows = self.store.activity(agency_code or None, start, end)
        by_minute: dict[int, dict[str, int]] = {start + i * 60_000: {} for i in range(minutes)}
        totals: dict[str, int] = {}
        for minute_ms, event_type, events in per_minute_rows:
            if minute_ms in by_minute:
                by_minute[minute_ms][event_type] = events
                totals[event_type] = totals.get(event_type, 0) + events
        agencies = [(code, getattr(self.registry.get(code), "name", ""), events) for code, events, _ in per_agency_rows]
        last = max((latest for _, _, latest in per_agency_rows), default=None)
        return ActivityResult(agency_code, minutes, list(by_minute.items()), totals,
                              agencies if not agency_code else [], last, now)


def _scored(agency: Agency, period: Period, rules: RuleSet, measures: dict[str, int], now_ms: int) -> ScoredAgency:
    return ScoredAgency(agency, agency.kind, period, rules, score_agency(agency.code, agency.kind, rules, measures),
                        now_ms)


def _explained_ratio(indicator: Indicator):
    """A composite is explained by its first component (for online payment: dossiers with
    a fee not paid online)."""
    return indicator.ratio if indicator.ratio is not None else indicator.components[0]

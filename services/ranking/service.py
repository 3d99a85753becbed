"""Ranking use cases: score, rank, compare rules, explain. Ports: measures, registry, rules."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Protocol

from dti_pulse.localtime import LOCAL_TZ
from dti_pulse.registry import COHORTS, Agency, Registry
from services.ranking.periods import MAX_TREND_POINTS, TREND_GRANULARITIES, Period, parse_period, trend_labels
from services.ranking.rules import Indicator, RulesCatalog, RuleSet
from services.ranking.measures import FAMILIES, DataVersion, ExplainPlan, NotExplainable, explain_plan
from services.ranking.scoring import IndicatorResult, Score, rank, score_agency, score_indicator

log = logging.getLogger(__name__)


class Measures(Protocol):
    """What ranking counts from (services/ranking/store.ClickHouseMeasures, or the cache in
    front of it, services/ranking/cache.CachedMeasures)."""
    def measures(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
                 as_of_ms: int | None = None, families=FAMILIES) -> dict[str, dict[str, int]]: ...
    def explain(self, plan: ExplainPlan, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
                offset: int, limit: int, as_of_ms: int | None = None) -> tuple[int, list]: ...
    def activity(self, agency_code: str | None, start_ms: int, end_ms: int) -> tuple[list, list]: ...
    def due_dossiers(self, agency_code: str, now_ms: int, within_ms: int) -> list[tuple]: ...
    # Work it keeps up from threads of its own (the day snapshots, the data version): started
    # with the server, stopped before the process closes ClickHouse.
    def refresh_in_background(self) -> None: ...
    def stop_refreshing(self) -> None: ...
    # What a cache of answers needs; a source that keeps none answers None (never fresh:
    # answers are not cached), and tells of no change.
    def fresh_version(self) -> DataVersion | None: ...
    def fresh_measures_stamp(self, agency_codes) -> tuple | None: ...
    def cached(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
               as_of_ms: int | None = None) -> dict | None: ...
    def on_change(self, listener: Callable[[str, object], None]) -> Callable[[], None]: ...


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
    items: list  # (entity_id, Agency it is of, [(reason code, reason)], facts)
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
        subject = self.registry.get(agency_code) if agency_code else None
        # A total depends on all its members' writes: the whole version, below.
        if agency_code and not (subject and self._is_total(subject)) and depends_on == "measures":
            # its own writes, and those of the agencies merged into it (their history is its)
            merged = [p.code for p in self.registry.predecessors(agency_code, date.min, date.max)]
            version = self.store.fresh_measures_stamp([agency_code, *merged])
        else:
            version = self.store.fresh_version()
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
        """An agency scored on its own rows (a member of a cohort)."""
        agency = self.registry.get(agency_code)
        if agency is None:
            raise NotFound(f"unknown agency {agency_code!r}")
        if agency.kind not in COHORTS:
            if self.registry.has_members(agency_code):
                raise BadRequest(f"{agency_code!r} ({agency.kind}) is scored as the total of its agencies, which "
                                 "has no rows of its own to list: ask about one of them")
            raise BadRequest(f"agency {agency_code!r} is a {agency.kind}; only {', '.join(COHORTS)} are scored")
        return agency

    def _subject(self, agency_code: str) -> Agency:
        """An agency to score: a cohort's member, or one with agencies under it (the province,
        a subtree), scored as the total over them."""
        agency = self.registry.get(agency_code)
        if agency is not None and agency.kind not in COHORTS and self.registry.has_members(agency_code):
            return agency
        return self._scored_agency(agency_code)

    def _is_total(self, agency: Agency) -> bool:
        return agency.kind not in COHORTS

    def _subject_measures(self, agency: Agency, period: Period, judged_at: int,
                          as_of_ms: int | None) -> tuple[dict[str, int], list[Indicator] | None]:
        """(measures, indicators to score them by: None for the cohort's). A total sums its
        members' numerators and denominators (agencies valid in the period), so that its
        rates are the province's, and is scored by every indicator of its members' cohorts."""
        if not self._is_total(agency):
            return self._agency_measures(agency, period, judged_at, as_of_ms), None
        members = self.registry.members(agency.code, period.first_day, period.last_day)
        counted = (self.store.measures([m.code for m in members], period.start_ms,
                                       self._window_end(period, judged_at, as_of_ms), judged_at, as_of_ms)
                   if members else {})
        total = _summed(counted.values())
        rules_cohorts = sorted({m.kind for m in members}) or list(COHORTS)
        return total, rules_cohorts

    def compare(self, agency_code: str, period_label: str, versions: list[str],
                as_of_ms: int | None = None) -> list[ScoredAgency]:
        """The same measures scored under each rules version, in the order asked."""
        agency = self._subject(agency_code)
        period = self._period(period_label)
        if not versions:
            raise BadRequest("name at least one rules version")
        rulesets = [self._rules(v) for v in versions]
        now, judged_at = self._judged_at(period, as_of_ms)
        measures, cohorts = self._subject_measures(agency, period, judged_at, as_of_ms)
        return [_scored(agency, period, rules, measures, now, cohorts) for rules in rulesets]

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
        own = self._own_codes(agency, period)
        codes = list(self._cohort(agency.kind, period))
        cohort = self.store.cached(codes, period.start_ms, end_ms, judged_at, as_of_ms) if agency.code in codes else None
        if cohort is None:
            cohort = self.store.measures(own, period.start_ms, end_ms, judged_at, as_of_ms)
        return _summed(cohort.get(code, {}) for code in own)

    def _own_codes(self, agency: Agency, period: Period) -> list[str]:
        """The agency and those merged into it in service during the period: a merged agency's
        history is its successor's (registry `successor`)."""
        return [agency.code, *(p.code for p in self.registry.predecessors(agency.code, period.first_day,
                                                                           period.last_day))]

    def agency_score(self, agency_code: str, period_label: str, rules_version: str = "",
                     as_of_ms: int | None = None) -> ScoredAgency:
        return self.compare(agency_code, period_label, [rules_version], as_of_ms)[0]

    def ranking(self, cohort: str, period_label: str, rules_version: str = "",
                as_of_ms: int | None = None) -> RankingResult:
        if cohort in self.registry.total_kinds:
            return self._ranking_of_totals(cohort, period_label, rules_version, as_of_ms)
        if cohort not in COHORTS:
            raise BadRequest(f"cohort {cohort!r} is not one of {', '.join((*COHORTS, *self.registry.total_kinds))}")
        period, rules = self._period(period_label), self._rules(rules_version)
        agencies = self._cohort(cohort, period)
        now, judged_at = self._judged_at(period, as_of_ms)
        measures = (self.store.measures(list(agencies), period.start_ms, self._window_end(period, judged_at, as_of_ms),
                                        judged_at, as_of_ms)
                    if agencies else {})
        measures = self._merged_into_successors(agencies, measures)
        scores = rank([score_agency(code, cohort, rules, measures.get(code, {})) for code in measures], rules)
        entries = [ScoredAgency(agencies[s.agency_code], cohort, period, rules, s, now) for s in scores]
        return RankingResult(cohort, period, rules, entries, now)

    def _merged_into_successors(self, agencies: dict[str, Agency], measures: dict) -> dict[str, dict[str, int]]:
        """The cohort's measures with each merged agency's added to its successor's, and the
        merged agency left out where its successor is in the cohort too (as it is in the
        period of the merger and after)."""
        def final(code: str) -> str:
            seen = set()
            while (successor := agencies[code].successor) in agencies and successor not in seen:
                seen.add(code)
                code = successor
            return code

        folded: dict[str, list] = {}
        for code in agencies:
            folded.setdefault(final(code), []).append(measures.get(code, {}))
        return {code: _summed(parts) for code, parts in folded.items()}

    def _ranking_of_totals(self, kind: str, period_label: str, rules_version: str,
                           as_of_ms: int | None) -> RankingResult:
        """The agencies of a kind that has agencies under it (provinces), each as its total."""
        period, rules = self._period(period_label), self._rules(rules_version)
        now, judged_at = self._judged_at(period, as_of_ms)
        agencies = {a.code: a for a in self.registry.cohort(kind, period.first_day, period.last_day)
                    if self.registry.has_members(a.code)}
        scores = []
        for agency in agencies.values():
            measures, cohorts = self._subject_measures(agency, period, judged_at, as_of_ms)
            scores.append(score_agency(agency.code, kind, rules, measures, rules.for_cohorts(cohorts)))
        entries = [ScoredAgency(agencies[s.agency_code], kind, period, rules, s, now) for s in rank(scores, rules)]
        return RankingResult(kind, period, rules, entries, now)

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
        total, items = self.store.explain(plan, self._own_codes(agency, period), period.start_ms,
                                          self._window_end(period, judged_at, as_of_ms), judged_at, offset, limit,
                                          as_of_ms)
        items = [(entity_id, self.registry.get(code) or agency, reasons, facts)
                 for entity_id, code, reasons, facts in items]
        next_offset = offset + len(items) if offset + len(items) < total else None
        return Explanation(agency, period, rules, score_indicator(indicator, measures), plan.family, total, items,
                           next_offset)


    def trend(self, agency_code: str, granularity: str, points: int = 0, rules_version: str = "") -> list[ScoredAgency]:
        """The agency's score for each of its last days or months, oldest first: each point
        is the same score GetAgencyScore gives for that period."""
        agency = self._subject(agency_code)
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
            measures, cohorts = self._subject_measures(agency, period, judged_at, None)
            points_scored.append(_scored(agency, period, rules, measures, now, cohorts))
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

    def due_dossiers(self, agency_code: str, within_hours: int = 0) -> tuple[Agency, list[tuple], int]:
        """The early warning of one agency: its open dossiers already overdue or due within
        `within_hours` (default 24, at most a week), soonest first; (agency, rows, now)."""
        agency = self._scored_agency(agency_code)
        within_hours = within_hours or 24
        if not 0 < within_hours <= 168:
            raise BadRequest("within_hours must be 1..168")
        now = self.clock_ms()
        return agency, self.store.due_dossiers(agency.code, now, within_hours * 3_600_000), now

    def last_events(self, minutes: int) -> dict[str, tuple[str, str, int]]:
        """Each scored agency that sent events in the last `minutes` (at most a day): (name,
        cohort, when its newest event arrived)."""
        minutes = min(max(1, minutes), MAX_ACTIVITY_MINUTES)
        now = self.clock_ms()
        end = now - now % 60_000 + 60_000
        _, per_agency_rows = self.store.activity(None, end - minutes * 60_000, end)
        found = {}
        for code, _, latest in per_agency_rows:
            agency = self.registry.get(code)
            if agency is not None and agency.kind in COHORTS and latest is not None:
                found[code] = (agency.name, agency.kind, latest)
        return found


def _summed(counts) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for name, value in part.items():
            total[name] = total.get(name, 0) + value
    return total


def _scored(agency: Agency, period: Period, rules: RuleSet, measures: dict[str, int], now_ms: int,
            total_of: list[str] | None = None) -> ScoredAgency:
    """total_of: the cohorts of the agencies a total sums (None: the agency on its own)."""
    indicators = rules.for_cohorts(total_of) if total_of is not None else None
    return ScoredAgency(agency, agency.kind, period, rules,
                        score_agency(agency.code, agency.kind, rules, measures, indicators), now_ms)


def _explained_ratio(indicator: Indicator):
    """A composite is explained by its first component (for online payment: dossiers with
    a fee not paid online)."""
    return indicator.ratio if indicator.ratio is not None else indicator.components[0]

"""Ranking use cases: score one agency, rank a cohort. Ports: measures, registry, rules."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

from dti_pulse.registry import COHORTS, Agency, Registry
from services.ranking.periods import Period, parse_period
from services.ranking.rules import RuleSet
from services.ranking.scoring import Score, rank, score_agency


class Measures(Protocol):
    def measures(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int) -> dict[str, dict[str, int]]: ...


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


def cohort_of(agency: Agency) -> str:
    return agency.kind


class RankingService:
    def __init__(self, registry: Registry, rulesets: dict[str, RuleSet], default_version: str, measures: Measures,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        if default_version not in rulesets:
            raise ValueError(f"default rules version {default_version!r} is not loaded ({', '.join(rulesets)})")
        self.registry = registry
        self.rulesets = rulesets
        self.default_version = default_version
        self.store = measures
        self.clock_ms = clock_ms

    def _rules(self, version: str) -> RuleSet:
        rules = self.rulesets.get(version or self.default_version)
        if rules is None:
            raise NotFound(f"rules version {version!r} is not loaded; known: {', '.join(sorted(self.rulesets))}")
        return rules

    def _period(self, label: str) -> Period:
        try:
            return parse_period(label)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def agency_score(self, agency_code: str, period_label: str, rules_version: str = "") -> ScoredAgency:
        agency = self.registry.get(agency_code)
        if agency is None:
            raise NotFound(f"unknown agency {agency_code!r}")
        if agency.kind not in COHORTS:
            raise BadRequest(f"agency {agency_code!r} is a {agency.kind}; only {', '.join(COHORTS)} are scored")
        period, rules = self._period(period_label), self._rules(rules_version)
        now = self.clock_ms()
        measures = self.store.measures([agency.code], period.start_ms, period.end_ms, period.judged_at_ms(now))
        score = score_agency(agency.code, agency.kind, rules, measures.get(agency.code, {}))
        return ScoredAgency(agency, agency.kind, period, rules, score, now)

    def ranking(self, cohort: str, period_label: str, rules_version: str = "") -> RankingResult:
        if cohort not in COHORTS:
            raise BadRequest(f"cohort {cohort!r} is not one of {', '.join(COHORTS)}")
        period, rules = self._period(period_label), self._rules(rules_version)
        agencies = {a.code: a for a in self.registry.cohort(cohort, period.first_day, period.last_day)}
        now = self.clock_ms()
        measures = self.store.measures(list(agencies), period.start_ms, period.end_ms, period.judged_at_ms(now)) if agencies else {}
        scores = rank([score_agency(code, cohort, rules, measures.get(code, {})) for code in agencies], rules)
        entries = [ScoredAgency(agencies[s.agency_code], cohort, period, rules, s, now) for s in scores]
        return RankingResult(cohort, period, rules, entries, now)

"""Measures -> indicator points -> totals and ranks (docs/domain.md, Indicators, Ranking). No I/O."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from services.ranking.rules import Indicator, Ratio, RuleSet


@dataclass
class IndicatorResult:
    code: str
    group: str
    numerator: int
    denominator: int
    ratio: float | None
    points: float | None
    max_points: float
    note: str = ""
    components: list["IndicatorResult"] = field(default_factory=list)
    portal_code: str = ""


@dataclass
class IndexTotal:
    """One published index within a score (the 766 index apart from the DTI documents)."""
    index: str
    points: float
    max_points: float  # over its indicators that have a value
    index_max_points: float  # the published scale (766: 100)


@dataclass
class Score:
    agency_code: str
    indicators: list[IndicatorResult]
    total_points: float
    max_points: float
    fraction: float | None
    band: str
    group_points: dict[str, float]
    rank: int = 0
    indices: list[IndexTotal] = field(default_factory=list)


def _evaluate(terms, measures: Mapping[str, int]) -> int:
    return sum(term.sign * int(measures.get(term.measure, 0)) for term in terms)


def _ratio(ratio: Ratio, measures: Mapping[str, int]) -> tuple[int, int, float | None]:
    # A numerator that subtracts (satisfaction: received - late - unsatisfied) goes below
    # zero when a dossier is both late and unsatisfied: no rate is below 0.
    numerator = max(0, _evaluate(ratio.numerator, measures))
    denominator = _evaluate(ratio.denominator, measures)
    return numerator, denominator, (numerator / denominator if denominator > 0 else None)


def _clamp(points: float, maximum: float) -> float:
    return max(0.0, min(maximum, points))


def score_indicator(indicator: Indicator, measures: Mapping[str, int]) -> IndicatorResult:
    if indicator.shape == "sum":
        parts = []
        for component in indicator.components:
            numerator, denominator, ratio = _ratio(component, measures)
            points = None
            if ratio is not None:
                points = component.weight * ratio
                if component.cap is not None:
                    points = min(component.cap, points)
            parts.append(IndicatorResult(component.code, indicator.group, numerator, denominator, ratio, points,
                                         component.cap if component.cap is not None else component.weight,
                                         component.note))
        head = parts[0]
        if all(p.points is None for p in parts):
            points = indicator.max_points if indicator.full_points_when_empty else None
        else:
            points = _clamp(sum(p.points or 0.0 for p in parts), indicator.max_points)
        notes = "; ".join(p.note for p in parts if p.note and p.ratio is not None)
        return IndicatorResult(indicator.code, indicator.group, head.numerator, head.denominator, head.ratio,
                               points, indicator.max_points, "; ".join(filter(None, [indicator.note, notes])), parts,
                               indicator.portal_code)

    numerator, denominator, ratio = _ratio(indicator.ratio, measures)
    if ratio is None:
        points = indicator.max_points if indicator.full_points_when_empty else None
    elif indicator.shape == "capped":
        points = _clamp(indicator.max_points * ratio / indicator.threshold, indicator.max_points)
    else:
        points = _clamp(indicator.max_points * ratio, indicator.max_points)
    return IndicatorResult(indicator.code, indicator.group, numerator, denominator, ratio, points,
                           indicator.max_points, indicator.note, portal_code=indicator.portal_code)


def band_of(fraction: float | None, rules: RuleSet) -> str:
    if fraction is None:
        return ""
    if fraction < rules.critical_below:
        return "critical"
    if fraction < rules.warning_below:
        return "warning"
    return "ok"


def score_agency(agency_code: str, cohort: str, rules: RuleSet, measures: Mapping[str, int],
                 indicators: list[Indicator] | None = None) -> Score:
    """indicators: those of the cohort unless given (a total: those of its members' cohorts)."""
    chosen = rules.for_cohort(cohort) if indicators is None else indicators
    results = [score_indicator(i, measures) for i in chosen]
    if all(r.ratio is None for r in results):
        # Full points for an empty indicator (the portal's 6 when there were no petitions)
        # stand beside what was measured: with nothing measured there is no score.
        results = [replace(r, points=None) for r in results]
    valued = [r for r in results if r.points is not None]
    total = sum(r.points for r in valued)
    maximum = sum(r.max_points for r in valued)
    fraction = total / maximum if maximum > 0 else None
    groups: dict[str, float] = {}
    for r in valued:
        groups[r.group] = groups.get(r.group, 0.0) + r.points
    in_index = {name: [r for i, r in zip(chosen, results) if i.index == name and r.points is not None]
                for name in rules.indices}
    indices = [IndexTotal(name, sum(r.points for r in in_index[name]), sum(r.max_points for r in in_index[name]), scale)
               for name, scale in rules.indices.items()]
    return Score(agency_code, results, total, maximum, fraction, band_of(fraction, rules), groups, indices=indices)


def rank(scores: list[Score], rules: RuleSet) -> list[Score]:
    """By the fraction of the maximum that applies to each agency (an indicator with no value
    leaves it), descending: an agency at 38 of 38 is ahead of one at 48 of 53. Ties by
    points, then by the heavier groups' points, then agency code. Agencies with no value at
    all come last."""
    order = rules.groups_by_weight()

    def key(score: Score):
        return (score.fraction is None, -round(score.fraction or 0.0, 9), -round(score.total_points, 9),
                *(-round(score.group_points.get(g, 0.0), 9) for g in order), score.agency_code)

    ranked = sorted(scores, key=key)
    for position, score in enumerate(ranked, start=1):
        score.rank = position
    return ranked

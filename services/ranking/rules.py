"""Scoring rules as data: versioned TOML files (docs/domain.md, Indicators).

A malformed file is refused with its path, line and problem; the other files still load.
"""
from __future__ import annotations

import logging
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dti_pulse.registry import COHORTS
from services.ranking.measures import MEASURE_DEFINITIONS

log = logging.getLogger(__name__)

SHAPES = ("linear", "capped", "sum")

# What the aggregates can count: the measures services/ranking/measures.py defines.
MEASURES = frozenset(MEASURE_DEFINITIONS)


class RulesError(ValueError):
    pass


@dataclass(frozen=True)
class Term:
    measure: str
    sign: int


@dataclass(frozen=True)
class Ratio:
    code: str
    numerator: tuple[Term, ...]
    denominator: tuple[Term, ...]
    weight: float = 1.0
    cap: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Indicator:
    code: str
    group: str
    max_points: float
    shape: str
    ratio: Ratio | None  # linear / capped
    components: tuple[Ratio, ...]  # sum
    threshold: float | None
    cohorts: tuple[str, ...]
    full_points_when_empty: bool
    note: str = ""
    index: str = ""  # the published index it counts in ("766", "dti"), one of the file's [indices]
    portal_code: str = ""  # the national portal's metric code, where it publishes one (e.g. "PUBLISH_ON_TIME")


@dataclass(frozen=True)
class RuleSet:
    version: str
    title: str
    indicators: tuple[Indicator, ...]
    critical_below: float
    warning_below: float
    source: str
    group_weights: dict[str, float] = field(default_factory=dict)
    # The published scale of each index (766 is out of 100), which the indicators the events
    # can measure may not fill.
    indices: dict[str, float] = field(default_factory=dict)

    def for_cohort(self, cohort: str) -> list[Indicator]:
        return [i for i in self.indicators if cohort in i.cohorts]

    def for_cohorts(self, cohorts) -> list[Indicator]:
        """The indicators that apply to any of these cohorts (a total over several), in order."""
        wanted = set(cohorts)
        return [i for i in self.indicators if wanted & set(i.cohorts)]

    def groups_by_weight(self) -> list[str]:
        """Groups, heaviest first: the order in which ties are broken (docs/domain.md, Ranking)."""
        return sorted(self.group_weights, key=lambda g: (-self.group_weights[g], g))


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return 1


def _terms(value, where: str) -> tuple[Term, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise RulesError(f"{where}: numerator/denominator must be a measure or a list of measures")
    terms = []
    for item in value:
        if not isinstance(item, str):
            raise RulesError(f"{where}: {item!r} is not a measure name")
        sign = -1 if item.startswith("-") else 1
        name = item.lstrip("+-").strip()
        if name not in MEASURES:
            raise RulesError(f"{where}: unknown measure {name!r} (known: {', '.join(sorted(MEASURES))})")
        terms.append(Term(name, sign))
    return tuple(terms)


def _number(table: dict, key: str, where: str, required: bool = True, default=None) -> float | None:
    value = table.get(key, default)
    if value is None:
        if required:
            raise RulesError(f"{where}: '{key}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise RulesError(f"{where}: '{key}' must be a non-negative number, got {value!r}")
    return float(value)


def _ratio(table: dict, where: str) -> Ratio:
    code = table.get("code")
    if not isinstance(code, str) or not code:
        raise RulesError(f"{where}: 'code' is required")
    return Ratio(
        code=code,
        numerator=_terms(table.get("numerator"), where),
        denominator=_terms(table.get("denominator"), where),
        weight=_number(table, "weight", where, required=False, default=1.0),
        cap=_number(table, "cap", where, required=False),
        note=str(table.get("note", "")),
    )


def parse_rules(text: str, source: str) -> RuleSet:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: {exc}") from None
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise RulesError(f"{source}:1: 'version' (a string) is required")
    bands = data.get("bands", {})
    where_bands = f"{source}:{_line_of(text, '[bands]')}"
    critical = _number(bands, "critical_below", where_bands, required=False, default=0.8)
    warning = _number(bands, "warning_below", where_bands, required=False, default=0.9)
    if not critical <= warning <= 1:
        raise RulesError(f"{where_bands}: need critical_below <= warning_below <= 1")
    raw_indicators = data.get("indicators")
    if not isinstance(raw_indicators, list) or not raw_indicators:
        raise RulesError(f"{source}:1: at least one [[indicators]] table is required")
    raw_indices = data.get("indices", {})
    where_indices = f"{source}:{_line_of(text, '[indices')}"
    if not isinstance(raw_indices, dict) or not all(isinstance(v, dict) for v in raw_indices.values()):
        raise RulesError(f"{where_indices}: [indices.NAME] tables with max_points are expected")
    indices = {name: _number(table, "max_points", f"{where_indices}: index {name!r}")
               for name, table in raw_indices.items()}
    indicators, seen, weights = [], set(), {}
    for raw in raw_indicators:
        code = raw.get("code")
        line = _line_of(text, '"%s"' % code) if code else 1
        where = f"{source}:{line}: indicator {code!r}"
        if not isinstance(code, str) or not code:
            raise RulesError(f"{where}: 'code' is required")
        if code in seen:
            raise RulesError(f"{where}: duplicate indicator code")
        seen.add(code)
        shape = raw.get("shape", "linear")
        if shape not in SHAPES:
            raise RulesError(f"{where}: shape {shape!r} is not one of {', '.join(SHAPES)}")
        group = raw.get("group")
        if not isinstance(group, str) or not group:
            raise RulesError(f"{where}: 'group' is required")
        max_points = _number(raw, "max_points", where)
        threshold = _number(raw, "threshold", where, required=shape == "capped")
        if shape == "capped" and not 0 < threshold <= 1:
            raise RulesError(f"{where}: threshold must be in (0, 1]")
        cohorts = tuple(raw.get("cohorts", COHORTS))
        unknown = [c for c in cohorts if c not in COHORTS]
        if unknown:
            raise RulesError(f"{where}: unknown cohorts {unknown}; expected some of {', '.join(COHORTS)}")
        when_empty = raw.get("when_empty", "null")
        if when_empty not in ("null", "full"):
            raise RulesError(f"{where}: when_empty must be \"null\" or \"full\"")
        if shape == "sum":
            parts = raw.get("components")
            if not isinstance(parts, list) or not parts:
                raise RulesError(f"{where}: shape \"sum\" needs [[indicators.components]]")
            ratio, components = None, tuple(_ratio(p, where) for p in parts)
        else:
            ratio, components = _ratio({"code": code, **raw}, where), ()
        index = raw.get("index", "")
        if indices and index not in indices:
            raise RulesError(f"{where}: index {index!r} is not one of the file's [indices]: {', '.join(indices)}")
        portal_code = raw.get("portal_code", "")
        if not isinstance(portal_code, str):
            raise RulesError(f"{where}: portal_code must be a string")
        indicators.append(Indicator(code, group, max_points, shape, ratio, components, threshold, cohorts,
                                    when_empty == "full", str(raw.get("note", "")), index, portal_code))
        weights[group] = weights.get(group, 0.0) + max_points
    for name, maximum in indices.items():
        for cohort in COHORTS:
            counted = sum(i.max_points for i in indicators if i.index == name and cohort in i.cohorts)
            if counted > maximum + 1e-9:
                raise RulesError(f"{where_indices}: index {name!r} is out of {maximum:g} points, but its "
                                 f"indicators of cohort {cohort!r} add up to {counted:g}")
    return RuleSet(version, str(data.get("title", "")), tuple(indicators), critical, warning, source, weights,
                   indices)


class RulesCatalog:
    """The rule files of a directory, reloaded when they change. A file that turns
    malformed is refused with its path, line and problem, and its last good version keeps
    serving; a removed file stops serving."""

    def __init__(self, directory: Path | str, check_every_s: float = 2.0, clock=time.monotonic):
        self.directory = Path(directory)
        self.check_every_s = check_every_s
        self._clock = clock
        self._checked_at: float | None = None
        self._stamps: dict[Path, int] = {}
        self._good: dict[Path, RuleSet] = {}
        self._errors: dict[Path, str] = {}
        self._rulesets: dict[str, RuleSet] = {}
        self._conflicts: list[str] = []
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        now = self._clock()
        if not force and self._checked_at is not None and now - self._checked_at < self.check_every_s:
            return
        self._checked_at = now
        present = set()
        changed = False
        for path in sorted(self.directory.glob("*.toml")):
            present.add(path)
            try:
                stamp = path.stat().st_mtime_ns
            except OSError:
                continue
            if self._stamps.get(path) == stamp:
                continue
            self._stamps[path] = stamp
            changed = True
            try:
                self._good[path] = parse_rules(path.read_text(encoding="utf-8"), str(path))
                self._errors.pop(path, None)
                log.info("rules loaded: %s (version %s)", path, self._good[path].version)
            except (RulesError, OSError, UnicodeDecodeError) as exc:
                self._errors[path] = str(exc)
                log.error("rules refused, %s: %s", "keeping the last good version" if path in self._good
                          else "nothing to serve from it", exc)
        for gone in set(self._stamps) - present:
            changed = True
            self._stamps.pop(gone)
            self._good.pop(gone, None)
            self._errors.pop(gone, None)
        if changed:
            rulesets, conflicts = {}, []
            for path, rules in sorted(self._good.items()):
                if rules.version in rulesets:
                    conflicts.append(f"{path}: version {rules.version!r} is already defined by "
                                     f"{rulesets[rules.version].source}")
                    continue
                rulesets[rules.version] = rules
            self._rulesets, self._conflicts = rulesets, conflicts

    def rulesets(self) -> dict[str, RuleSet]:
        self.refresh()
        return self._rulesets

    def errors(self) -> list[str]:
        self.refresh()
        return [self._errors[p] for p in sorted(self._errors)] + self._conflicts


def load_rules_dir(directory: Path | str) -> tuple[dict[str, RuleSet], list[str]]:
    """Every *.toml rule file of a directory by version, and the errors of refused files."""
    catalog = RulesCatalog(directory)
    return catalog.rulesets(), catalog.errors()

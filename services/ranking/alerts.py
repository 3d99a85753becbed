"""Alerts: rules as data (a TOML file), judged against the scores and the activity. No I/O:
the alert loop (services/ranking/alerting.py) feeds it what ranking computed and delivers
what it says fired or recovered.

Rule kinds:
- `below`: an indicator's rate under `threshold` (with at least `min_denominator` items, so
  that one late dossier of one does not page anyone);
- `drop`: an agency's 0–1 index `points` or more under its best within the last
  `window_minutes` (as the loop saw it; with a store of records, across restarts);
- `silent`: an agency that sent events within `lookback_minutes` and none in the last
  `minutes`, on weekdays between 08:00 and 17:00 (the province's working hours).
"""
from __future__ import annotations

import tomllib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dti_pulse.localtime import LOCAL_TZ

KINDS = ("below", "drop", "silent")
SEVERITIES = ("warning", "critical")


class AlertRulesError(ValueError):
    pass


@dataclass(frozen=True)
class AlertRule:
    name: str
    kind: str
    cohorts: tuple[str, ...] = ("department", "commune", "district")
    severity: str = "warning"
    indicator: str = ""  # below
    threshold: float = 0.0  # below
    min_denominator: int = 1  # below
    points: float = 0.0  # drop: in 0–1 index units (0.05 = 5 points of 100)
    window_minutes: int = 24 * 60  # drop
    minutes: int = 60  # silent
    lookback_minutes: int = 7 * 24 * 60  # silent


@dataclass(frozen=True)
class Alert:
    rule: str
    severity: str
    agency_code: str
    agency_name: str
    message: str  # in English; the console words it from the fields
    value: float
    threshold: float

    @property
    def key(self) -> tuple[str, str]:
        return self.rule, self.agency_code


def load_alert_rules(path: Path, indicators: set[str]) -> list[AlertRule]:
    """The rules of a file; refuses the whole file with where and what is wrong."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AlertRulesError(f"{path}: {exc}") from None
    rules, names = [], set()
    for number, raw in enumerate(document.get("rules", []), start=1):
        where = f"{path}: rule {number}"
        unknown = set(raw) - set(AlertRule.__dataclass_fields__)
        if unknown:
            raise AlertRulesError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            rule = AlertRule(**{k: tuple(v) if k == "cohorts" else v for k, v in raw.items()})
        except TypeError as exc:
            raise AlertRulesError(f"{where}: {exc}") from None
        if not rule.name or rule.name in names:
            raise AlertRulesError(f"{where}: a rule needs a name of its own")
        if rule.kind not in KINDS:
            raise AlertRulesError(f"{where}: kind must be one of {', '.join(KINDS)}")
        if rule.severity not in SEVERITIES:
            raise AlertRulesError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
        if rule.kind == "below" and (rule.indicator not in indicators or not 0 < rule.threshold <= 1):
            raise AlertRulesError(f"{where}: `below` needs an indicator of the scoring rules and a threshold in (0, 1]")
        if rule.kind == "drop" and not (0 < rule.points <= 1 and rule.window_minutes > 0):
            raise AlertRulesError(f"{where}: `drop` needs points in (0, 1] and window_minutes > 0")
        if rule.kind == "silent" and not 0 < rule.minutes < rule.lookback_minutes:
            raise AlertRulesError(f"{where}: `silent` needs 0 < minutes < lookback_minutes")
        names.add(rule.name)
        rules.append(rule)
    return rules


def below(rule: AlertRule, scores) -> list[Alert]:
    """scores: (agency_code, agency_name, cohort, [indicators with code, ratio, denominator])."""
    found = []
    for code, name, cohort, indicators in scores:
        if cohort not in rule.cohorts:
            continue
        for indicator in indicators:
            if (indicator.code == rule.indicator and indicator.ratio is not None
                    and indicator.denominator >= rule.min_denominator and indicator.ratio < rule.threshold):
                found.append(Alert(rule.name, rule.severity, code, name,
                                   f"{rule.indicator} is {indicator.ratio:.1%}, under {rule.threshold:.0%} "
                                   f"({indicator.numerator} of {indicator.denominator})",
                                   indicator.ratio, rule.threshold))
    return found


@dataclass
class IndexHistory:
    """Each agency's 0–1 index as the loop saw it, long enough for the longest drop window."""
    keep_minutes: int
    seen: dict[str, deque] = field(default_factory=dict)

    def add(self, agency_code: str, at_ms: int, fraction: float) -> None:
        points = self.seen.setdefault(agency_code, deque())
        points.append((at_ms, fraction))
        while points and points[0][0] < at_ms - self.keep_minutes * 60_000:
            points.popleft()

    def restore(self, samples) -> None:
        """Samples (agency_code, at_ms, fraction) a previous process saw, oldest first."""
        for agency_code, at_ms, fraction in samples:
            self.add(agency_code, at_ms, fraction)

    def best_since(self, agency_code: str, since_ms: int) -> float | None:
        values = [f for at, f in self.seen.get(agency_code, ()) if at >= since_ms]
        return max(values) if values else None


def drop(rule: AlertRule, scores, history: IndexHistory, now_ms: int) -> list[Alert]:
    """scores: (agency_code, agency_name, cohort, fraction or None), already added to history."""
    found = []
    for code, name, cohort, fraction in scores:
        if cohort not in rule.cohorts or fraction is None:
            continue
        best = history.best_since(code, now_ms - rule.window_minutes * 60_000)
        if best is not None and best - fraction >= rule.points:
            found.append(Alert(rule.name, rule.severity, code, name,
                               f"index fell from {best:.3f} to {fraction:.3f} within {rule.window_minutes} min",
                               fraction, best - rule.points))
    return found


def working_hours(now_ms: int) -> bool:
    local = datetime.fromtimestamp(now_ms / 1000, LOCAL_TZ)
    return local.weekday() < 5 and 8 <= local.hour < 17


def silent(rule: AlertRule, last_event_ms: dict[str, tuple[str, str, int]], now_ms: int) -> list[Alert]:
    """last_event_ms: agency -> (name, cohort, newest event's arrival) within the lookback."""
    if not working_hours(now_ms):
        return []
    found = []
    for code, (name, cohort, latest) in last_event_ms.items():
        quiet_minutes = (now_ms - latest) / 60_000
        if cohort in rule.cohorts and rule.minutes <= quiet_minutes <= rule.lookback_minutes:
            found.append(Alert(rule.name, rule.severity, code, name,
                               f"no events for {quiet_minutes:.0f} min (it sent some within "
                               f"{rule.lookback_minutes} min)", quiet_minutes, rule.minutes))
    return found


@dataclass(frozen=True)
class AlertRecord:
    """What the alert loop keeps of an alert across rounds and restarts: whether it fires
    (since when; else when it recovered) and the notices still owed for it."""
    alert: Alert
    firing: bool
    since_ms: int
    owed: tuple[tuple[str, str], ...] = ()  # (notifier name, "fired" | "recovered")


@dataclass
class AlertBook:
    """The alerts firing now, each once: update() says which fired since the last look and
    which recovered (their condition no longer holds), so that a notice goes out once for
    each, never at every evaluation."""
    active: dict[tuple[str, str], tuple[Alert, int]] = field(default_factory=dict)  # key -> (alert, since)

    def update(self, found: list[Alert], now_ms: int) -> tuple[list[Alert], list[Alert]]:
        current = {alert.key: alert for alert in found}
        fired = [alert for key, alert in current.items() if key not in self.active]
        recovered = [alert for key, (alert, _) in self.active.items() if key not in current]
        for key in [key for key in self.active if key not in current]:
            del self.active[key]
        for key, alert in current.items():
            since = self.active[key][1] if key in self.active else now_ms
            self.active[key] = (alert, since)  # the newest words, the first time it fired
        return fired, recovered

    def restore(self, records: list[AlertRecord]) -> None:
        """The alerts firing as a previous process left them: still firing is not news."""
        self.active = {r.alert.key: (r.alert, r.since_ms) for r in records if r.firing}

    def firing(self) -> list[tuple[Alert, int]]:
        return sorted(self.active.values(), key=lambda pair: (pair[0].severity != "critical", -pair[1]))

"""Alert rules as data, judged without I/O: each kind, the refusals of a bad file, and the
book that notifies once when an alert fires and once when it recovers."""
from datetime import datetime
from types import SimpleNamespace

import pytest

from dti_pulse.config import DEFAULT_ALERT_RULES
from dti_pulse.localtime import LOCAL_TZ
from services.ranking.alerts import (AlertBook, AlertRule, AlertRulesError, IndexHistory, below, drop,
                                     load_alert_rules, silent)

INDICATORS = {"dossier_on_time_rate", "doc_agency_sign_rate"}
MONDAY_10 = int(datetime(2026, 11, 23, 10, tzinfo=LOCAL_TZ).timestamp() * 1000)
SUNDAY_10 = int(datetime(2026, 11, 22, 10, tzinfo=LOCAL_TZ).timestamp() * 1000)


def test_the_shipped_rules_load():
    assert [r.kind for r in load_alert_rules(DEFAULT_ALERT_RULES, INDICATORS)] == ["below", "below", "drop", "silent"]


@pytest.mark.parametrize("body, problem", [
    ('[[rules]]\nname = "x"\nkind = "above"', "kind must be"),
    ('[[rules]]\nname = "x"\nkind = "below"\nindicator = "nope"\nthreshold = 0.9', "indicator of the scoring rules"),
    ('[[rules]]\nname = "x"\nkind = "drop"\npoints = 5', "points in (0, 1]"),
    ('[[rules]]\nname = "x"\nkind = "silent"\nminutes = 60\nlookback_minutes = 30', "0 < minutes"),
    ('[[rules]]\nname = "x"\nkind = "drop"\npoints = 0.1\ncolour = "red"', "unknown field(s) colour"),
    ('[[rules]]\nname = "x"\nkind = "drop"\npoints = 0.1\n[[rules]]\nname = "x"\nkind = "drop"\npoints = 0.1',
     "a name of its own"),
    ('[[rules]\n', "Expected"),
])
def test_a_bad_rules_file_is_refused_with_where_and_what(tmp_path, body, problem):
    path = tmp_path / "alerts.toml"
    path.write_text(body)
    with pytest.raises(AlertRulesError) as refused:
        load_alert_rules(path, INDICATORS)
    assert problem in str(refused.value) and str(path) in str(refused.value)


def indicator(ratio, denominator):
    return SimpleNamespace(code="dossier_on_time_rate", ratio=ratio, numerator=round((ratio or 0) * denominator),
                           denominator=denominator)


def test_below_needs_enough_items_and_its_cohort():
    rule = AlertRule("late", "below", cohorts=("department",), indicator="dossier_on_time_rate", threshold=0.9,
                     min_denominator=10)
    scores = [("A", "a", "department", [indicator(0.5, 20)]), ("B", "b", "department", [indicator(0.5, 4)]),
              ("C", "c", "commune", [indicator(0.5, 20)]), ("D", "d", "department", [indicator(None, 0)]),
              ("E", "e", "department", [indicator(0.95, 20)])]
    assert [a.agency_code for a in below(rule, scores)] == ["A"]


def test_drop_compares_with_the_best_of_the_window():
    rule = AlertRule("drop", "drop", points=0.05, window_minutes=60)
    history = IndexHistory(keep_minutes=60)
    for minutes, fraction in ((0, 0.95), (30, 0.93), (50, 0.89)):
        history.add("A", minutes * 60_000, fraction)
    assert [a.value for a in drop(rule, [("A", "a", "department", 0.89)], history, 50 * 60_000)] == [0.89]
    history.add("A", 95 * 60_000, 0.89)  # the 0.95 has left the hour; 0.93 - 0.89 < 0.05
    assert drop(rule, [("A", "a", "department", 0.89)], history, 95 * 60_000) == []


def test_silent_in_working_hours_only():
    rule = AlertRule("quiet", "silent", minutes=120, lookback_minutes=1440)
    last = {"A": ("a", "department", MONDAY_10 - 3 * 3_600_000), "B": ("b", "department", MONDAY_10 - 600_000)}
    assert [a.agency_code for a in silent(rule, last, MONDAY_10)] == ["A"]
    assert silent(rule, {"A": ("a", "department", SUNDAY_10 - 3 * 3_600_000)}, SUNDAY_10) == []


def test_the_book_notifies_once_when_firing_and_once_when_recovered():
    rule = AlertRule("late", "below", indicator="dossier_on_time_rate", threshold=0.9)
    book = AlertBook()
    alert = below(rule, [("A", "a", "department", [indicator(0.5, 20)])])
    assert book.update(alert, 1) == (alert, [])
    assert book.update(alert, 2) == ([], [])
    assert book.firing()[0][1] == 1  # since it first fired
    assert book.update([], 3) == ([], alert)
    assert book.update([], 4) == ([], [])

from datetime import datetime, timedelta

import pytest

from dti_pulse.localtime import LOCAL_TZ
from services.ranking.periods import BadPeriod, parse_period

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=LOCAL_TZ)


@pytest.mark.parametrize("label, start, end", [
    ("2026", "2026-01-01", "2027-01-01"),
    ("2026-Q4", "2026-10-01", "2027-01-01"),
    ("2026-Q1", "2026-01-01", "2026-04-01"),
    ("2026-02", "2026-02-01", "2026-03-01"),
    ("2026-12", "2026-12-01", "2027-01-01"),
    ("2026-10-31", "2026-10-31", "2026-11-01"),
])
def test_calendar_periods_are_local_days(label, start, end):
    period = parse_period(label, NOW)
    assert period.start == datetime.fromisoformat(start).replace(tzinfo=LOCAL_TZ)
    assert period.end == datetime.fromisoformat(end).replace(tzinfo=LOCAL_TZ)
    assert period.start.utcoffset() == timedelta(hours=7)


def test_rolling_window_ends_now_and_judges_at_now():
    period = parse_period("last:7d", NOW)
    assert period.end == NOW and period.start == NOW - timedelta(days=7)
    assert parse_period("2026", NOW).judged_at_ms(int(NOW.timestamp() * 1000)) == int(NOW.timestamp() * 1000)
    assert parse_period("2025", NOW).judged_at_ms(int(NOW.timestamp() * 1000)) == parse_period("2025", NOW).end_ms


@pytest.mark.parametrize("label", ["", "26", "2026-Q5", "2026-13", "2026-02-30", "last:0d", "last:7w", "2026/10"])
def test_bad_periods_are_refused(label):
    with pytest.raises(BadPeriod):
        parse_period(label, NOW)

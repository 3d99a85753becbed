"""Reporting periods in Asia/Ho_Chi_Minh local time (docs/domain.md, Ranking)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dti_pulse.localtime import LOCAL_TZ

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_ROLLING = re.compile(r"^last:(\d{1,4})d$")


# The years ingest lets events carry (services/ingest/validation.py, EARLIEST/LATEST_INSTANT_MS).
FIRST_YEAR, LAST_YEAR = 2000, 2099


class BadPeriod(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime  # inclusive, aware
    end: datetime  # exclusive, aware

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)

    @property
    def first_day(self) -> date:
        return self.start.astimezone(LOCAL_TZ).date()

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(milliseconds=1)).astimezone(LOCAL_TZ).date()

    def judged_at_ms(self, now_ms: int) -> int:
        """Open dossiers are judged at the period's end, or now if that is earlier."""
        return min(self.end_ms, now_ms)


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)


def _month_start(year: int, month: int) -> date:
    if not 1 <= month <= 12:
        raise BadPeriod(f"month {month:02d} does not exist")
    return date(year, month, 1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def parse_period(label: str, now: datetime | None = None) -> Period:
    period = _parse_period(label, now)
    if not (FIRST_YEAR <= period.first_day.year and period.last_day.year <= LAST_YEAR):
        raise BadPeriod(f"period {label!r} is outside the years {FIRST_YEAR}-{LAST_YEAR} that events may carry")
    return period


def _parse_period(label: str, now: datetime | None = None) -> Period:
    label = (label or "").strip()
    now = now or datetime.now(LOCAL_TZ)
    try:
        if m := _YEAR.match(label):
            first = date(int(m[1]), 1, 1)
            return Period(label, _local_midnight(first), _local_midnight(date(first.year + 1, 1, 1)))
        if m := _QUARTER.match(label):
            first = date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1)
            return Period(label, _local_midnight(first), _local_midnight(_add_months(first, 3)))
        if m := _MONTH.match(label):
            first = _month_start(int(m[1]), int(m[2]))
            return Period(label, _local_midnight(first), _local_midnight(_add_months(first, 1)))
        if m := _DAY.match(label):
            first = date(int(m[1]), int(m[2]), int(m[3]))
            return Period(label, _local_midnight(first), _local_midnight(first + timedelta(days=1)))
        if m := _ROLLING.match(label):
            days = int(m[1])
            if days < 1:
                raise BadPeriod("last:Nd needs N >= 1")
            end = now.astimezone(LOCAL_TZ)
            return Period(label, end - timedelta(days=days), end)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, BadPeriod):
            raise
        raise BadPeriod(f"period {label!r}: {exc}") from None
    raise BadPeriod(f"period {label!r} is not YYYY, YYYY-Qn, YYYY-MM, YYYY-MM-DD or last:Nd")


TREND_GRANULARITIES = {"day": 30, "month": 12}  # default number of points
MAX_TREND_POINTS = {"day": 366, "month": 60}


def trend_labels(granularity: str, points: int, today: date) -> list[str]:
    """The labels of the last `points` days or months ending with today's, oldest first."""
    if granularity == "day":
        return [(today - timedelta(days=i)).isoformat() for i in range(points - 1, -1, -1)]
    if granularity == "month":
        return [_add_months(today.replace(day=1), -i).strftime("%Y-%m") for i in range(points - 1, -1, -1)]
    raise BadPeriod(f"granularity {granularity!r} is not one of {', '.join(TREND_GRANULARITIES)}")

"""Hand-computed cases, one per rule of docs/domain.md, Indicators processing and progress, through the
aggregator and the real chDB measures. Each row: the statuses of one dossier received
2026-10-05 08:00, due 2026-10-07 17:00, and whether it counts on time in October 2026."""
import itertools
import uuid

import pytest

from services.ranking.periods import parse_period
from services.ranking.store import ClickHouseMeasures
from tests.conftest import fold

pytestmark = pytest.mark.integration
AGENCY = "000.00.16.H56"
_n = itertools.count()

CASES = [
    # (name, [(status, local time)], on time?)
    ("resolved before due", [(2, "10-05T09:00"), (9, "10-07T16:00")], True),
    ("resolved after due", [(2, "10-05T09:00"), (9, "10-08T09:00")], False),
    ("result returned without a resolved status ends processing", [(2, "10-05T09:00"), (10, "10-07T10:00")], True),
    ("resolved time wins over an earlier result-returned", [(2, "10-05T09:00"), (10, "10-06T10:00"), (9, "10-09T10:00")], False),
    ("stopped ends processing", [(2, "10-05T09:00"), (8, "10-06T10:00")], True),
    ("not accepted ends processing", [(3, "10-05T10:00")], True),
    ("withdrawn after acceptance ends processing", [(2, "10-05T09:00"), (7, "10-06T09:00")], True),
    ("withdrawn before acceptance does not end it: open and overdue", [(1, "10-05T08:30"), (7, "10-06T09:00")], False),
    ("one supplement request with nothing after ends processing", [(2, "10-05T09:00"), (5, "10-06T09:00")], True),
    ("waiting for the citizen is not counted", [(2, "10-05T09:00"), (5, "10-06T09:00"), (4, "10-09T09:00"),
                                               (9, "10-10T09:00")], True),
    ("two supplement requests are late", [(2, "10-05T09:00"), (5, "10-05T10:00"), (4, "10-05T11:00"),
                                          (5, "10-05T12:00"), (9, "10-05T13:00")], False),
    ("open past due at the end of the period", [(2, "10-05T09:00"), (4, "10-05T10:00")], False),
]


def _events(dossier, statuses, due="2026-10-07T17:00:00+07:00"):
    received = {"event_id": str(uuid.uuid4()), "type": "dossier.received", "occurred_at": "2026-10-05T08:00:00+07:00",
                "agency_code": AGENCY, "dossier_id": dossier, "procedure_code": "1.0", "channel": 1,
                "service_level": "partial", "received_at": "2026-10-05T08:00:00+07:00", "due_at": due}
    return [received] + [{"event_id": str(uuid.uuid4()), "type": "dossier.status",
                          "occurred_at": f"2026-{at}:00+07:00", "agency_code": AGENCY, "dossier_id": dossier,
                          "status": status} for status, at in statuses]


@pytest.mark.parametrize("name, statuses, on_time", CASES, ids=[c[0] for c in CASES])
def test_processing_end_rule(clean_chdb, name, statuses, on_time):
    fold(clean_chdb, list(reversed(_events(f"T{next(_n)}", statuses))))  # arrival order must not matter
    period = parse_period("2026-10")
    measures = ClickHouseMeasures(clean_chdb).measures([AGENCY], period.start_ms, period.end_ms, period.end_ms)[AGENCY]
    assert (measures["dossiers_received"], measures["dossiers_on_time"]) == (1, int(on_time))


def test_open_and_not_yet_due_is_on_time_until_its_due_date(clean_chdb):
    fold(clean_chdb, _events("OPEN", [(2, "10-30T09:00")], due="2026-11-05T17:00:00+07:00"))
    october, november = parse_period("2026-10"), parse_period("2026-11")
    store = ClickHouseMeasures(clean_chdb)
    # judged at the end of October: not yet due, so on time
    assert store.measures([AGENCY], october.start_ms, october.end_ms, october.end_ms)[AGENCY]["dossiers_on_time"] == 1
    # judged at the end of November (the window still ties it to October by received_at): overdue
    assert store.measures([AGENCY], october.start_ms, october.end_ms, november.end_ms)[AGENCY]["dossiers_on_time"] == 0

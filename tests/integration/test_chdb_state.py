"""The aggregator's state store and ranking's measures against a real chDB."""
import asyncio

import pytest

from dti_pulse.config import DEFAULT_AGENCIES, DEFAULT_RULES_DIR
from dti_pulse.localtime import local_day
from dti_pulse.registry import load_registry
from services.aggregator.processor import Aggregator, state_row
from dti_pulse.events import decode_events
from services.aggregator.store import ClickHouseStateStore
from services.ingest.validation import parse_instant_ms
from services.ranking.periods import parse_period
from services.ranking.rules import RulesCatalog
from services.ranking.service import RankingService
from services.ranking.store import ClickHouseMeasures
from tests import scenario
from tests.conftest import bus_envelopes
from tests.fakes import DeadLetters

pytestmark = pytest.mark.integration
REGISTRY = load_registry(DEFAULT_AGENCIES)


def test_scenario_measures_are_exact_and_survive_redelivery(clean_chdb):
    store = ClickHouseStateStore(clean_chdb)
    dead = DeadLetters()
    asyncio.run(Aggregator(store, dead).process(bus_envelopes(scenario.EVENTS, per_envelope=7)))
    # A restarted aggregator (empty cache) receives everything again, plus duplicates.
    restarted = Aggregator(store, dead)
    stats = asyncio.run(restarted.process(bus_envelopes(scenario.EVENTS + scenario.DUPLICATES, per_envelope=5)))
    assert stats.new_events == 0 and stats.duplicates == len(scenario.EVENTS) + len(scenario.DUPLICATES)
    assert not dead

    period = parse_period(scenario.PERIOD)
    measures = ClickHouseMeasures(clean_chdb).measures([scenario.AGENCY], period.start_ms, period.end_ms,
                                                       period.judged_at_ms(10**15))
    assert measures[scenario.AGENCY] == scenario.EXPECTED_MEASURES

    service = RankingService(REGISTRY, RulesCatalog(DEFAULT_RULES_DIR), scenario.RULES_VERSION, ClickHouseMeasures(clean_chdb))
    scored = service.agency_score(scenario.AGENCY, scenario.PERIOD)
    got = {i.code: (i.numerator, i.denominator, i.points) for i in scored.score.indicators}
    for code, (numerator, denominator, points) in scenario.EXPECTED.items():
        assert got[code][:2] == (numerator, denominator), code
        assert got[code][2] == pytest.approx(points), code
    ranking = service.ranking("department", scenario.PERIOD)
    assert ranking.entries[0].agency.code == scenario.AGENCY
    assert len(ranking.entries) == 15  # 5 merged into others in March 2025


@pytest.fixture
def refusing_server(clean_chdb):
    """The state table with a constraint ClickHouse checks on insert, as a server refuses rows
    it finds wrong (the client sends them; the server answers with an error code)."""
    clean_chdb.command("ALTER TABLE dossier_state ADD CONSTRAINT no_bad_dossier CHECK dossier_id != 'BAD'")
    yield clean_chdb
    clean_chdb.command("ALTER TABLE dossier_state DROP CONSTRAINT no_bad_dossier")


@pytest.mark.parametrize("refused_by", ["client", "server"])
def test_a_state_chdb_cannot_hold_goes_to_dead_letters_and_the_rest_is_scored(clean_chdb, request, refused_by):
    """An event that skipped ingest's checks among the scenario's: its dossier's row is
    refused, by clickhouse-connect (a channel of 300, for a UInt8 column) or by the server (a
    constraint); the aggregator sends its events to dead letters with the reason, and writes
    the rest instead of retrying the batch forever."""
    from dti.events.v1.events_pb2 import EventBatch
    from tests.factories import dossier_received

    if refused_by == "server":
        request.getfixturevalue("refusing_server")
    bad = dossier_received("BAD", "2026-10-01 08:00", "2026-10-03 17:00", agency=scenario.AGENCY,
                           channel=300 if refused_by == "client" else 1)
    dead = DeadLetters()
    envelopes = bus_envelopes(scenario.EVENTS, per_envelope=7)
    envelopes.insert(2, EventBatch(events=[bad]).SerializeToString())
    stats = asyncio.run(asyncio.wait_for(Aggregator(ClickHouseStateStore(clean_chdb), dead, write_retry_s=0.05)
                                         .process(envelopes), 60))
    assert stats.dead_letters == 1 and stats.new_events == len(scenario.EVENTS)
    payload, reason = dead[0]
    assert EventBatch.FromString(payload).events[0].event_id == bad.event_id
    assert reason.startswith("cannot store dossier state 'BAD': dossier_state:"), reason
    assert ("channel" if refused_by == "client" else "VIOLATED_CONSTRAINT") in reason, reason
    # Counted in the live activity beside the write, then withdrawn: only stored events count.
    assert clean_chdb.query("SELECT sum(events) FROM activity_minute").result_rows == [(len(scenario.EVENTS),)]
    assert clean_chdb.query("SELECT count() FROM dossier_state WHERE dossier_id = 'BAD'").result_rows == [(0,)]
    period = parse_period(scenario.PERIOD)
    measures = ClickHouseMeasures(clean_chdb).measures([scenario.AGENCY], period.start_ms, period.end_ms,
                                                       period.judged_at_ms(10**15))
    assert measures[scenario.AGENCY] == scenario.EXPECTED_MEASURES


def test_state_rows_are_replaced_not_added(clean_chdb):
    store = ClickHouseStateStore(clean_chdb)
    aggregator = Aggregator(store, DeadLetters())
    for raw in scenario.EVENTS[:5]:  # D1, one event per batch
        asyncio.run(aggregator.process(bus_envelopes([raw])))
    rows = clean_chdb.query("SELECT event_count FROM dossier_state FINAL WHERE dossier_id = 'D1'").result_rows
    assert rows == [(5,)]
    loaded = store.load([("dossier", "D1")])
    assert len(decode_events(loaded[("dossier", "D1")])) == 5


def test_the_newest_state_decides_even_while_an_older_version_is_unmerged(clean_chdb):
    """An older version of a dossier matches October; the newest (a corrected reception)
    says November. Rows sit by the day they count on: the October row stays, under a
    tombstone at the new version, and the measures must see only the November one, before
    and after a merge."""
    from tests.conftest import fold

    def received(event_id, at):
        return {"event_id": event_id, "type": "dossier.received", "occurred_at": at, "agency_code": scenario.AGENCY,
                "dossier_id": "MOVED", "procedure_code": "1.0", "channel": 2, "service_level": "full_online",
                "received_at": at, "due_at": "2026-12-01T17:00:00+07:00"}

    fold(clean_chdb, [received("7d1c1c1e-0000-4000-8000-000000000001", "2026-10-30T08:00:00+07:00")])
    fold(clean_chdb, [received("7d1c1c1e-0000-4000-8000-000000000002", "2026-11-02T08:00:00+07:00")])
    stored = "SELECT place_day, is_deleted, event_count FROM dossier_state WHERE dossier_id = 'MOVED' ORDER BY ALL"
    october_30, november_2 = (local_day(parse_instant_ms(at, "at")) for at in ("2026-10-30T08:00:00+07:00",
                                                                                "2026-11-02T08:00:00+07:00"))
    assert clean_chdb.query(stored).result_rows == [(october_30, 0, 1), (october_30, 1, 2), (november_2, 0, 2)]
    measures = ClickHouseMeasures(clean_chdb)

    def received_in(label):
        period = parse_period(label)
        found = measures.measures([scenario.AGENCY], period.start_ms, period.end_ms, period.end_ms)
        return found.get(scenario.AGENCY, {}).get("dossiers_received", 0)

    assert (received_in("2026-10"), received_in("2026-11")) == (0, 1)
    clean_chdb.command("OPTIMIZE TABLE dossier_state FINAL")
    assert (received_in("2026-10"), received_in("2026-11")) == (0, 1)
    # The aggregator, with its cache lost, folds onto the newest state, not the tombstone.
    assert len(decode_events(ClickHouseStateStore(clean_chdb).load([("dossier", "MOVED")])[("dossier", "MOVED")])) == 2


def test_a_dossier_received_this_minute_counts_at_once(clean_chdb):
    """Open periods judge at the start of the minute, but count everything received so far."""
    import time
    from datetime import datetime

    from dti_pulse.localtime import LOCAL_TZ
    from dti_pulse.state import DossierSummary

    now = int(time.time() * 1000)
    agency = "000.00.05.H56"
    row = DossierSummary("NOW-1", agency, "1.0", 2, "full_online", 1, now, now + 86_400_000, now + 86_400_000,
                         0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
    ClickHouseStateStore(clean_chdb).write({"dossier": [state_row(row, b"")]}, {(agency, (now + 25_200_000) // 86_400_000)})
    today = datetime.now(LOCAL_TZ).strftime("%Y-%m-%d")
    for snapshots in (True, False):
        service = RankingService(REGISTRY, RulesCatalog(DEFAULT_RULES_DIR), "dti-pulse-2026",
                                 ClickHouseMeasures(clean_chdb, day_snapshots=snapshots))
        for period in (today, today[:7]):
            scored = service.agency_score(agency, period)
            on_time = {i.code: i for i in scored.score.indicators}["dossier_on_time_rate"]
            assert (on_time.numerator, on_time.denominator) == (1, 1), (snapshots, period)


def test_a_batch_recounts_only_the_agencies_whose_counts_it_changes(clean_chdb):
    """Named writes through real chDB: a batch of C's dossiers leaves A's and B's measures
    cached and recounts C's dossiers only; a recall written on the sender's side recounts
    the recipient's documents too."""
    from dti.events.v1.events_pb2 import EventBatch
    from dti_pulse.clickhouse import WriteSignal
    from services.ranking.cache import CachedMeasures
    from tests.factories import document_status, document_transfer, dossier_received

    sender, recipient, other = "000.00.01.H56", "000.00.02.H56", "000.00.03.H56"

    class QueriesPerAgency(ClickHouseMeasures):
        asked: list = []

        def measures(self, codes, *args, families=("dossier", "document"), **kwargs):
            self.asked.append((tuple(codes), tuple(families)))
            return super().measures(codes, *args, families=families, **kwargs)

    signal = WriteSignal()
    aggregator = Aggregator(ClickHouseStateStore(clean_chdb, on_write=signal.notify), DeadLetters())
    measures = QueriesPerAgency(clean_chdb)
    cache = CachedMeasures(measures, version_ttl_s=60, changes=signal)
    period = parse_period("2026-10")

    def fold(*events):
        asyncio.run(aggregator.process([EventBatch(events=list(events)).SerializeToString()]))

    def count(agency, measure):
        found = cache.measures([agency], period.start_ms, period.end_ms, period.judged_at_ms(10**15))
        return found.get(agency, {}).get(measure, 0)

    fold(document_transfer("document_sent", "DOC", "2026-10-01 08:00", agency=sender),
         document_transfer("document_received", "DOC", "2026-10-01 08:05", agency=recipient),
         dossier_received("D1", "2026-10-02 08:00", "2026-10-05 17:00", agency=other))
    assert (count(sender, "documents_total"), count(recipient, "documents_total"),
            count(other, "dossiers_received")) == (1, 1, 1)

    measures.asked.clear()
    fold(dossier_received("D2", "2026-10-02 09:00", "2026-10-05 17:00", agency=other))
    assert (count(sender, "documents_total"), count(recipient, "documents_total"),
            count(other, "dossiers_received")) == (1, 1, 2)
    assert measures.asked == [((other,), ("dossier",))]  # its documents stay counted from memory

    measures.asked.clear()
    fold(document_status("DOC", "15", "2026-10-03 08:00", agency=sender))  # the recall is agreed
    assert (count(sender, "documents_total"), count(recipient, "documents_total")) == (0, 0)
    assert sorted(measures.asked) == [((sender,), ("document",)), ((recipient,), ("document",))]


def test_a_day_mark_no_table_can_hold_never_stalls_the_write(clean_chdb):
    """INT64_MIN as an instant made a day outside day_measures' Int32: its mark failed at
    every retry and stalled every partition. The check keeps such events out; a mark that
    got past it anyway is left out (and logged), and the rest is written."""
    from dti_pulse.state import DossierSummary

    agency = "000.00.05.H56"
    row = DossierSummary("DAY-OK", agency, "1.0", 2, "full_online", 1, 1_790_000_000_000, 1_790_086_400_000,
                         1_790_086_400_000, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
    impossible = (agency, (-(2 ** 63) + 25_200_000) // 86_400_000)
    ClickHouseStateStore(clean_chdb).write({"dossier": [state_row(row, b"")]}, {(agency, 20_717), impossible})
    assert clean_chdb.query("SELECT count() FROM dossier_state FINAL WHERE dossier_id = 'DAY-OK'").result_rows == [(1,)]
    marked = clean_chdb.query(f"SELECT day FROM day_measures WHERE agency_code = '{agency}' AND dirty = 1").result_rows
    assert (20_717,) in marked and len(marked) == 1


def test_the_catalogue_counts_as_in_force_at_each_periods_end(clean_chdb):
    """Procedure listings are read whole, as of the period's end: a listing after it, or a
    withdrawal before it, changes what counts; each agency's listing is its own; the day
    snapshots (none for listings) and as_of give the same."""
    asyncio.run(Aggregator(ClickHouseStateStore(clean_chdb), DeadLetters()).process(
        bus_envelopes(scenario.EVENTS, ingested_at_ms=1_000)))
    names = ("procedures_listed", "procedures_full_content", "procedures_citizen_data",
             "procedures_certifying_copies", "procedures_electronic_copy")
    expected = {  # worked out from tests/scenario.py's listings Q1-Q5
        ("2026-09", scenario.AGENCY): (3, 3, 2, 1, 0),  # Q1, Q3, Q4 (Q4 withdrawn only in October)
        ("2026-10", scenario.AGENCY): (3, 2, 1, 2, 1),  # Q1-Q3
        ("2026-11", scenario.AGENCY): (4, 2, 1, 2, 1),  # Q1 relisted without either, Q2, Q3, Q5
        ("2026-10", scenario.COMMUNE): (1, 0, 0, 0, 0),
    }
    for snapshots in (True, False):
        measures = ClickHouseMeasures(clean_chdb, day_snapshots=snapshots)
        for (period_text, agency), counts in expected.items():
            period = parse_period(period_text)
            found = measures.measures([agency], period.start_ms, period.end_ms, period.judged_at_ms(10**15))
            assert tuple(found[agency][name] for name in names) == counts, (snapshots, period_text, agency)
    period = parse_period("2026-10")
    as_of = ClickHouseMeasures(clean_chdb).measures([scenario.AGENCY], period.start_ms, period.end_ms, period.end_ms,
                                                   as_of_ms=10**15)
    assert tuple(as_of[scenario.AGENCY][name] for name in names) == expected[("2026-10", scenario.AGENCY)]
    nothing_known = ClickHouseMeasures(clean_chdb).measures([scenario.AGENCY], period.start_ms, period.end_ms,
                                                           period.end_ms, as_of_ms=999)
    assert scenario.AGENCY not in nothing_known

"""The ranking gRPC service in this process over a real chDB: explain, what-if, rules
listing and reload, as_of, and watch streams."""
import json
import shutil
import threading
import uuid
from datetime import datetime, timedelta

import grpc
import pytest

from dti.ranking.v1 import ranking_pb2
from dti_pulse.broker import free_port
from dti_pulse.config import DEFAULT_AGENCIES, DEFAULT_RULES_DIR
from dti_pulse.localtime import LOCAL_TZ
from dti_pulse.registry import load_registry
from services.ranking.grpc_server import RankingServer
from services.ranking.rules import RulesCatalog
from services.ranking.cache import CachedMeasures
from services.ranking.service import RankingService
from services.ranking.store import ClickHouseMeasures
from tests import scenario
from tests.conftest import GRPC_TOKEN, fold, now_ms, poll, ranking_stub

pytestmark = pytest.mark.integration
REGISTRY = load_registry(DEFAULT_AGENCIES)


@pytest.fixture
def rules_dir(tmp_path):
    directory = tmp_path / "rules"
    directory.mkdir()
    shutil.copy(DEFAULT_RULES_DIR / "dti-pulse-2026.toml", directory)
    what_if = (DEFAULT_RULES_DIR / "dti-pulse-2026.toml").read_text(encoding="utf-8")
    what_if = what_if.replace('version = "dti-pulse-2026"', 'version = "what-if-progress-30"')
    what_if = what_if.replace('group = "progress"\nmax_points = 20', 'group = "progress"\nmax_points = 30')
    # A heavier group on a larger scale: the file refuses an index whose indicators exceed it.
    what_if = what_if.replace('[indices.766]\nmax_points = 100', '[indices.766]\nmax_points = 110')
    (directory / "what-if.toml").write_text(what_if, encoding="utf-8")
    return directory


@pytest.fixture
def stub(clean_chdb, rules_dir):
    fold(clean_chdb, scenario.EVENTS)
    service = RankingService(REGISTRY, RulesCatalog(rules_dir, check_every_s=0), "dti-pulse-2026",
                             CachedMeasures(ClickHouseMeasures(clean_chdb)))
    server = RankingServer(service, "127.0.0.1", free_port(), {GRPC_TOKEN: "test"}, watch_interval_s=0.2)
    server.start_in_thread()
    yield ranking_stub(server.port)
    server.stop()


def explain_all(stub, code, page_size=50):
    items, token = [], ""
    while True:
        page = stub.ExplainIndicator(ranking_pb2.ExplainIndicatorRequest(
            agency_code=scenario.AGENCY, indicator_code=code, period=scenario.PERIOD, page_size=page_size,
            page_token=token))
        items.extend(page.items)
        token = page.next_page_token
        if not token:
            return page, items


def test_explain_lists_exactly_what_costs_points_with_the_deciding_facts(stub):
    for code, expected in scenario.EXPECTED_COSTS.items():
        page, items = explain_all(stub, code)
        assert {item.id for item in items} == expected, code
        assert page.total_items == len(expected)
        assert all(item.reasons for item in items), code
        numerator, denominator, _ = scenario.EXPECTED[code]
        if code != "dossier_online_payment":  # explained by its first component
            assert (page.indicator.numerator, page.indicator.denominator) == (numerator, denominator)
    _, late = explain_all(stub, "dossier_on_time_rate", page_size=1)  # paginated
    d5 = next(item for item in late if item.id == "D5")
    assert d5.facts["supplement_requests"] == "2"
    assert d5.facts["due_at"] == "2026-10-27T17:00:00+07:00"
    _, satisfaction = explain_all(stub, "dossier_satisfaction")
    d3 = next(item for item in satisfaction if item.id == "D3")
    assert d3.reasons == ["rated unsatisfied"] and d3.facts["paused_days"] == "3.0"
    assert d3.reason_codes == ["dossiers_rated_unsatisfied"]
    assert all(item.reason_codes == ["not:dossiers_on_time"] for item in late)
    with pytest.raises(grpc.RpcError) as unknown:
        explain_all(stub, "dossier_happiness")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_what_if_scores_the_same_aggregates_under_other_rules(stub):
    response = stub.CompareRules(ranking_pb2.CompareRulesRequest(
        agency_code=scenario.AGENCY, period=scenario.PERIOD, rules_versions=["dti-pulse-2026", "what-if-progress-30"]))
    current, what_if = response.scores
    assert (current.rules_version, what_if.rules_version) == ("dti-pulse-2026", "what-if-progress-30")
    progress = {s.rules_version: {i.code: i for i in s.indicators}["dossier_on_time_rate"] for s in response.scores}
    assert progress["dti-pulse-2026"].points == pytest.approx(12.0)
    assert progress["what-if-progress-30"].points == pytest.approx(18.0)
    assert what_if.total_points - current.total_points == pytest.approx(6.0)
    with pytest.raises(grpc.RpcError) as missing:
        stub.CompareRules(ranking_pb2.CompareRulesRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD,
                                                          rules_versions=["1999"]))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_broken_rules_file_is_refused_and_its_last_good_version_keeps_serving(stub, rules_dir):
    (rules_dir / "what-if.toml").write_text('version = "what-if-progress-30"\n[[indicators]]\ncode = \ngroup = "g"\n',
                                          encoding="utf-8")
    listing = stub.ListRules(ranking_pb2.ListRulesRequest())
    assert {v.version for v in listing.versions} == {"dti-pulse-2026", "what-if-progress-30"}
    assert len(listing.errors) == 1 and "what-if.toml" in listing.errors[0] and "line 3" in listing.errors[0]
    request = ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD,
                                                rules_version="what-if-progress-30")
    assert stub.GetAgencyScore(request).rules_version == "what-if-progress-30"


def test_as_of_reproduces_what_the_service_knew_then(stub, clean_chdb):
    as_of_moment = datetime(2026, 10, 15, tzinfo=LOCAL_TZ)
    # A rating of D1 that ingest accepted on 20 October, after the as_of instant.
    late_news = {"event_id": str(uuid.uuid4()), "type": "dossier.rated", "occurred_at": "2026-10-03T09:00:00+07:00",
                 "agency_code": scenario.AGENCY, "dossier_id": "D1", "satisfied": False}
    fold(clean_chdb, [late_news], ingested_at_ms=int(datetime(2026, 10, 20, tzinfo=LOCAL_TZ).timestamp() * 1000))
    request = ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD)
    request.as_of.FromDatetime(as_of_moment)
    then = {i.code: i for i in stub.GetAgencyScore(request).indicators}
    # D1 on time, D2 late, D3 on time after its 3-day pause; D4 and D5 came later
    assert (then["dossier_on_time_rate"].numerator, then["dossier_on_time_rate"].denominator) == (2, 3)
    # 3 received - 1 late - 1 unsatisfied (D3): D1's later rating was not known yet
    assert (then["dossier_satisfaction"].numerator, then["dossier_satisfaction"].denominator) == (1, 3)
    now = {i.code: i for i in stub.GetAgencyScore(
        ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD)).indicators}
    assert (now["dossier_satisfaction"].numerator, now["dossier_satisfaction"].denominator) == (5 - 2 - 2, 5)
    explain = ranking_pb2.ExplainIndicatorRequest(agency_code=scenario.AGENCY, indicator_code="dossier_satisfaction",
                                                  period=scenario.PERIOD)
    explain.as_of.FromDatetime(as_of_moment)
    assert {item.id for item in stub.ExplainIndicator(explain).items} == {"D2", "D3"}
    assert not clean_chdb.query("SELECT name FROM system.tables WHERE name LIKE 'as_of_%'").result_rows


def test_watch_pushes_a_new_score_when_events_change_it(stub, clean_chdb):
    agency = "000.00.17.H56"
    stream = stub.WatchAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=agency, period=scenario.PERIOD),
                                   timeout=30)
    first = next(stream)
    assert first.indicators[0].denominator == 0 and not first.HasField("fraction")
    received = {"event_id": str(uuid.uuid4()), "type": "dossier.received", "occurred_at": "2026-10-05T08:00:00+07:00",
                "agency_code": agency, "dossier_id": "W1", "procedure_code": "1.0", "channel": 2,
                "service_level": "full_online", "received_at": "2026-10-05T08:00:00+07:00",
                "due_at": "2026-10-07T17:00:00+07:00"}
    threading.Timer(0.5, fold, args=(clean_chdb, [received])).start()
    second = next(stream)
    assert second.indicators[0].denominator == 1
    stream.cancel()


def test_cohorts_follow_the_registry_validity_through_the_2025_reform(stub):
    def size(cohort, period):
        return len(stub.ListRanking(ranking_pb2.ListRankingRequest(cohort=cohort, period=period)).entries)

    assert size("district", "2025-Q2") == 27 and size("district", "2025-Q3") == 0
    assert size("commune", "2025-Q2") == 0 and size("commune", "2025-Q3") == 166
    assert size("department", "2026") == 15  # 5 merged into others in March 2025
    ranking = stub.ListRanking(ranking_pb2.ListRankingRequest(cohort="department", period=scenario.PERIOD))
    first = ranking.entries[0]
    assert (first.rank, first.score.agency_code) == (1, scenario.AGENCY)
    assert first.score.band == "critical" and 0 < first.score.fraction < 0.8
    assert [e.rank for e in ranking.entries] == list(range(1, 16))
    assert not ranking.entries[-1].score.HasField("fraction")  # no data: ranked last, no value
    with pytest.raises(grpc.RpcError) as bad:
        stub.ListRanking(ranking_pb2.ListRankingRequest(cohort="ministry", period="2026"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_merged_departments_history_rolls_into_its_successor(stub, clean_chdb):
    """Sở Kế hoạch và Đầu tư (000.00.04) merged into Sở Tài chính (000.00.05) on 1 March 2025:
    its January 2025 dossier counts for Sở Tài chính, which alone is ranked."""
    merged, successor = "000.00.04.H56", "000.00.05.H56"
    before = stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=successor, period="2025-01"))
    assert {i.code: i.denominator for i in before.indicators}["dossier_on_time_rate"] == 0
    received = {"event_id": str(uuid.uuid4()), "type": "dossier.received", "occurred_at": "2025-01-10T09:00:00+07:00",
                "agency_code": merged, "dossier_id": "KHDT-1", "procedure_code": "1.010708", "channel": 2,
                "service_level": "full_online", "received_at": "2025-01-10T09:00:00+07:00",
                "due_at": "2025-01-13T17:00:00+07:00"}
    fold(clean_chdb, [received])  # a writer that does not signal: seen within the version poll's TTL
    poll(lambda: {i.code: i.denominator for i in stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(
        agency_code=successor, period="2025-01")).indicators}["dossier_on_time_rate"] == 1, timeout_s=10,
         what="the merged department's dossier in its successor's score")
    ranking = stub.ListRanking(ranking_pb2.ListRankingRequest(cohort="department", period="2025-Q1"))
    codes = [e.score.agency_code for e in ranking.entries]
    assert merged not in codes and successor in codes and len(codes) == 15
    own = stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=merged, period="2025-01"))
    assert {i.code: i.denominator for i in own.indicators}["dossier_on_time_rate"] == 1  # its own page still shows it
    # The open dossier, long past its due time, costs the successor points: its Explain lists
    # it, as the merged department's; the merged department's own Explain lists it as its own.
    for asked in (successor, merged):
        explained = stub.ExplainIndicator(ranking_pb2.ExplainIndicatorRequest(
            agency_code=asked, indicator_code="dossier_on_time_rate", period="2025-01"))
        assert explained.total_items == 1, asked
        item = explained.items[0]
        assert (item.id, item.agency_code, item.agency_name) == ("KHDT-1", merged, "Sở Kế hoạch và Đầu tư")


def test_the_early_warning_lists_open_dossiers_overdue_or_due_soon(stub, clean_chdb):
    agency, now = "000.00.13.H56", datetime.now(LOCAL_TZ).replace(microsecond=0)

    def dossier(dossier_id, received_hours_ago, due_in_hours, status=None):
        received = now - timedelta(hours=received_hours_ago)
        events = [{"event_id": str(uuid.uuid4()), "type": "dossier.received", "occurred_at": received.isoformat(),
                   "agency_code": agency, "dossier_id": dossier_id, "procedure_code": "1.010708", "channel": 2,
                   "service_level": "full_online", "received_at": received.isoformat(),
                   "due_at": (now + timedelta(hours=due_in_hours)).isoformat()}]
        if status:
            events.append({"event_id": str(uuid.uuid4()), "type": "dossier.status", "agency_code": agency,
                           "occurred_at": (received + timedelta(minutes=5)).isoformat(), "dossier_id": dossier_id,
                           "status": status})
        return events

    fold(clean_chdb, [*dossier("QUA-HAN", 48, -1, status=4), *dossier("SAP-DEN-HAN", 1, 10),
                      *dossier("CON-XA", 1, 72), *dossier("CHO-BO-SUNG", 48, -2, status=5),
                      *dossier("DA-GIAI-QUYET", 48, -3, status=9)], ingested_at_ms=now_ms())
    due = stub.ListDueDossiers(ranking_pb2.ListDueDossiersRequest(agency_code=agency))
    assert [(d.dossier_id, d.state) for d in due.dossiers] == [("QUA-HAN", "overdue"), ("SAP-DEN-HAN", "due_soon")]
    assert (due.overdue, due.due_soon) == (1, 1) and due.dossiers[0].last_status == 4
    week = stub.ListDueDossiers(ranking_pb2.ListDueDossiersRequest(agency_code=agency, within_hours=168))
    assert [d.dossier_id for d in week.dossiers] == ["QUA-HAN", "SAP-DEN-HAN", "CON-XA"]
    with pytest.raises(grpc.RpcError) as bad:
        stub.ListDueDossiers(ranking_pb2.ListDueDossiersRequest(agency_code=agency, within_hours=1000))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_province_is_the_total_of_its_agencies(stub):
    province = "000.00.00.H56"
    members = [entry.score for cohort in ("department", "commune", "district")
               for entry in stub.ListRanking(ranking_pb2.ListRankingRequest(cohort=cohort, period=scenario.PERIOD)).entries]
    total = stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=province, period=scenario.PERIOD))
    assert total.cohort == "province" and total.agency_name.startswith("Ủy ban nhân dân tỉnh")
    by_code = {i.code: i for i in total.indicators}
    assert by_code, "the total is scored by its members' indicators"
    for code, indicator in by_code.items():
        if indicator.components:
            continue  # composite: its head is its first component's ratio
        summed = [(i.numerator, i.denominator) for s in members for i in s.indicators if i.code == code]
        assert (indicator.numerator, indicator.denominator) == tuple(map(sum, zip(*summed))), code
    # Two agencies have documents between them: the province counts each side once per agency.
    assert by_code["doc_electronic_rate"].denominator == sum(
        i.denominator for s in members for i in s.indicators if i.code == "doc_electronic_rate") > 0
    # The provinces ranked by their totals; explaining a total is asking about its agencies.
    provinces = stub.ListRanking(ranking_pb2.ListRankingRequest(cohort="province", period=scenario.PERIOD))
    assert [e.score.agency_code for e in provinces.entries] == [province]
    assert provinces.entries[0].score.fraction == pytest.approx(total.fraction)
    with pytest.raises(grpc.RpcError) as refused:
        stub.ExplainIndicator(ranking_pb2.ExplainIndicatorRequest(
            agency_code=province, indicator_code="dossier_on_time_rate", period=scenario.PERIOD))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "total" in refused.value.details()
    trend = stub.GetAgencyTrend(ranking_pb2.GetAgencyTrendRequest(agency_code=province, granularity="month", points=2))
    assert len(trend.points) == 2


def _expected_activity(raw_events) -> dict[str, int]:
    expected: dict[str, int] = {}
    for raw in raw_events:
        kind = "dossier.resolved" if raw["type"] == "dossier.status" and raw["status"] == 9 else raw["type"]
        expected[kind] = expected.get(kind, 0) + 1
    return expected


def test_activity_counts_each_new_event_once_by_minute_of_arrival_and_type(stub, clean_chdb):
    # The scenario was folded with October arrival times: outside the last hour.
    assert sum(stub.GetActivity(ranking_pb2.GetActivityRequest()).totals.values()) == 0
    fresh = [{**raw, "event_id": str(uuid.uuid4())} for raw in scenario.EVENTS]
    fold(clean_chdb, fresh, ingested_at_ms=now_ms())
    fold(clean_chdb, fresh, ingested_at_ms=now_ms())  # redelivered: not counted again
    activity = stub.GetActivity(ranking_pb2.GetActivityRequest())
    assert dict(activity.totals) == _expected_activity(fresh)
    assert len(activity.per_minute) == 60 and activity.minutes == 60
    assert sum(sum(m.events.values()) for m in activity.per_minute[-2:]) == len(fresh)
    assert "dossier.resolved" in activity.types
    by_agency = {a.agency_code: a.events for a in activity.agencies}
    assert by_agency == {code: sum(1 for raw in fresh if raw["agency_code"] == code) for code in by_agency}
    assert [a.events for a in activity.agencies] == sorted(by_agency.values(), reverse=True)
    assert abs(activity.last_event_at.ToMilliseconds() - now_ms()) < 60_000
    one = stub.GetActivity(ranking_pb2.GetActivityRequest(agency_code=scenario.OTHER, minutes=5))
    assert dict(one.totals) == _expected_activity([r for r in fresh if r["agency_code"] == scenario.OTHER])
    assert len(one.per_minute) == 5 and not one.agencies
    for request, code in ((ranking_pb2.GetActivityRequest(agency_code="000.99.99.H56"), grpc.StatusCode.NOT_FOUND),
                          (ranking_pb2.GetActivityRequest(minutes=5000), grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.RpcError) as error:
            stub.GetActivity(request)
        assert error.value.code() == code


def test_watch_activity_pushes_when_events_arrive(stub, clean_chdb):
    stream = stub.WatchActivity(ranking_pb2.GetActivityRequest(agency_code=scenario.AGENCY), timeout=30)
    before = sum(next(stream).totals.values())
    signed = {"event_id": str(uuid.uuid4()), "type": "document.signed", "occurred_at": "2026-10-05T08:00:00+07:00",
              "agency_code": scenario.AGENCY, "document_id": "W-DOC", "personal_signature": True,
              "agency_signature": True}
    threading.Timer(0.5, fold, args=(clean_chdb, [signed]), kwargs={"ingested_at_ms": now_ms()}).start()
    after = next(stream)
    if sum(after.totals.values()) == before:
        # The minute turned before the fold: that push moved the window (its per_minute), the
        # next one brings the event.
        after = next(stream)
    assert sum(after.totals.values()) == before + 1 and after.totals["document.signed"] >= 1
    stream.cancel()


def test_trend_points_are_the_scores_of_each_period(stub):
    trend = stub.GetAgencyTrend(ranking_pb2.GetAgencyTrendRequest(agency_code=scenario.AGENCY, granularity="month",
                                                                  points=14))
    labels = [p.period for p in trend.points]
    assert len(labels) == 14 and labels == sorted(labels) and labels[-1] == datetime.now(LOCAL_TZ).strftime("%Y-%m")
    october = trend.points[labels.index(scenario.PERIOD)]
    direct = stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD))
    october.ClearField("computed_at")
    direct.ClearField("computed_at")
    assert october == direct and october.fraction > 0
    days = stub.GetAgencyTrend(ranking_pb2.GetAgencyTrendRequest(agency_code=scenario.AGENCY, granularity="day"))
    assert len(days.points) == 30 and days.agency_name
    for point in [*trend.points, *days.points]:  # each point is that period's score
        direct = stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=point.period))
        point.ClearField("computed_at")
        direct.ClearField("computed_at")
        assert point == direct, point.period
    for request in (ranking_pb2.GetAgencyTrendRequest(agency_code=scenario.AGENCY, granularity="week"),
                    ranking_pb2.GetAgencyTrendRequest(agency_code=scenario.AGENCY, granularity="day", points=400)):
        with pytest.raises(grpc.RpcError) as bad:
            stub.GetAgencyTrend(request)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_agency_scores_the_same_from_its_own_rows_as_from_its_cohorts_ranking(clean_chdb, rules_dir):
    """GetAgencyScore counts the agency's own rows unless its cohort is cached: both ways
    must give the same score as the agency's entry in ListRanking."""
    fold(clean_chdb, scenario.EVENTS)
    counted = []

    class CountingMeasures(ClickHouseMeasures):
        def measures(self, agency_codes, *args, **kwargs):
            counted.append(len(agency_codes))
            return super().measures(agency_codes, *args, **kwargs)

    service = RankingService(REGISTRY, RulesCatalog(rules_dir, check_every_s=0), "dti-pulse-2026",
                             CachedMeasures(CountingMeasures(clean_chdb)))
    own = service.agency_score(scenario.AGENCY, scenario.PERIOD)
    assert counted == [1]  # nothing cached: the agency's own rows
    ranking = service.ranking(own.agency.kind, scenario.PERIOD)
    from_cohort = service.agency_score(scenario.AGENCY, scenario.PERIOD)
    assert counted == [1, len(ranking.entries)]  # the second score came from the ranking's entry
    entry = next(e for e in ranking.entries if e.agency.code == scenario.AGENCY)
    assert own.score.indicators and own.score.total_points == entry.score.total_points == from_cohort.score.total_points
    assert ([(i.code, i.numerator, i.denominator) for i in own.score.indicators]
            == [(i.code, i.numerator, i.denominator) for i in entry.score.indicators]
            == [(i.code, i.numerator, i.denominator) for i in from_cohort.score.indicators])
    assert any(i.denominator for i in own.score.indicators)


def test_a_signalled_write_wakes_a_watch_at_once(clean_chdb, rules_dir):
    """Neither the watch interval (60 s) nor the version poll (60 s) would find this write
    within the stream's 20 s: the write signal does."""
    import asyncio

    from dti.events.v1.events_pb2 import EventBatch
    from dti_pulse.clickhouse import WriteSignal
    from services.aggregator.processor import Aggregator
    from services.aggregator.store import ClickHouseStateStore
    from tests.factories import dossier_received
    from tests.fakes import DeadLetters

    signal = WriteSignal()
    service = RankingService(REGISTRY, RulesCatalog(rules_dir, check_every_s=0), "dti-pulse-2026",
                             CachedMeasures(ClickHouseMeasures(clean_chdb), version_ttl_s=60, changes=signal))
    server = RankingServer(service, "127.0.0.1", free_port(), {GRPC_TOKEN: "test"}, watch_interval_s=60)
    server.start_in_thread()
    try:
        agency = "000.00.17.H56"
        stream = ranking_stub(server.port).WatchAgencyScore(
            ranking_pb2.GetAgencyScoreRequest(agency_code=agency, period=scenario.PERIOD), timeout=20)
        assert next(stream).indicators[0].denominator == 0
        aggregator = Aggregator(ClickHouseStateStore(clean_chdb, on_write=signal.notify), DeadLetters())
        batch = EventBatch(events=[dossier_received("SIGNALLED", "2026-10-05 08:00", "2026-10-07 17:00",
                                                    agency=agency)]).SerializeToString()
        threading.Timer(0.5, lambda: asyncio.run(aggregator.process([batch]))).start()
        assert next(stream).indicators[0].denominator == 1
        stream.cancel()
    finally:
        server.stop()


def test_the_next_minutes_score_is_counted_before_the_minute_turns(clean_chdb, rules_dir):
    """Warming counts an open period's question at the next minute's instant before it
    comes: at the turn the score is answered without a count, and is the score of that
    instant (a dossier due within the minute turns late), as a service without a cache gives."""
    import asyncio

    from dti.events.v1.events_pb2 import EventBatch
    from services.aggregator.processor import Aggregator
    from services.aggregator.store import ClickHouseStateStore
    from tests.factories import dossier_received, ms
    from tests.fakes import DeadLetters

    agency, period = "000.00.17.H56", "2026-10-05"
    batch = EventBatch(events=[dossier_received("DUE-0930", "2026-10-05 08:00", "2026-10-05 09:30:30",
                                                agency=agency)]).SerializeToString()
    asyncio.run(Aggregator(ClickHouseStateStore(clean_chdb), DeadLetters()).process([batch]))
    wall = [ms("2026-10-05 09:30") + 5_000]
    counted = []

    class CountingMeasures(ClickHouseMeasures):
        def measures(self, agency_codes, *args, **kwargs):
            counted.append(args[2])  # judged at
            return super().measures(agency_codes, *args, **kwargs)

    measures = CachedMeasures(CountingMeasures(clean_chdb), version_ttl_s=60, judge_step_ms=60_000,
                              warm_lead_ms=10_000, wall_clock_ms=lambda: wall[0])
    service = RankingService(REGISTRY, RulesCatalog(rules_dir, check_every_s=0), "dti-pulse-2026", measures,
                             clock_ms=lambda: wall[0])
    uncached = RankingService(REGISTRY, RulesCatalog(rules_dir, check_every_s=0), "dti-pulse-2026",
                              ClickHouseMeasures(clean_chdb), clock_ms=lambda: wall[0])

    def on_time(scored):
        return {i.code: (i.numerator, i.denominator) for i in scored.score.indicators}["dossier_on_time_rate"]

    assert on_time(service.agency_score(agency, period)) == (1, 1)  # not yet due at 09:30
    wall[0] = ms("2026-10-05 09:31") - 4_000
    assert measures.warm_next_judgement() == 1
    assert counted[-1] == ms("2026-10-05 09:31")
    wall[0] = ms("2026-10-05 09:31") + 1_000
    before = len(counted)
    turned = service.agency_score(agency, period)
    assert len(counted) == before  # answered from the warmed count
    assert on_time(turned) == on_time(uncached.agency_score(agency, period)) == (0, 1)  # due 09:30:30: late now


def test_ranking_service_needs_a_known_bearer_token_but_health_and_reflection_stay_open(ranking_server):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    from dti.ranking.v1 import ranking_pb2_grpc
    from dti_pulse.grpc_channel import ranking_channel

    address = f"127.0.0.1:{ranking_server.port}"
    request = ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD)
    for channel, why in ((grpc.insecure_channel(address), "required"), (ranking_channel(address, "guess"), "not valid"),
                         (ranking_channel(address, GRPC_TOKEN + "x"), "not valid")):
        intruder = ranking_pb2_grpc.RankingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            intruder.GetAgencyScore(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and why in refused.value.details()
        with pytest.raises(grpc.RpcError) as refused:  # a stream is refused before its first message
            next(iter(intruder.WatchRanking(ranking_pb2.ListRankingRequest(cohort="department",
                                                                           period=scenario.PERIOD), timeout=10)))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as refused:
            intruder.ExplainIndicator(ranking_pb2.ExplainIndicatorRequest(
                agency_code=scenario.AGENCY, indicator_code="dossier_on_time_rate", period=scenario.PERIOD), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    plain = grpc.insecure_channel(address)
    health = health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    listing = next(reflection_pb2_grpc.ServerReflectionStub(plain).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    assert "dti.ranking.v1.RankingService" in {s.name for s in listing.list_services_response.service}
    # The right token, on the same server: answered.
    assert ranking_stub(ranking_server.port).GetAgencyScore(request, timeout=10).agency_code == scenario.AGENCY


def test_tokens_are_compared_whole():
    from dti_pulse.credentials import bearer_credential, caller_of

    tokens = {"s3cret-token": "console", "other": "operator"}
    assert caller_of(tokens, "s3cret-token") == "console"
    assert [caller_of(tokens, t) for t in ("s3cret", "s3cret-token ", "S3CRET-TOKEN", "")] == [None] * 4
    assert bearer_credential("Bearer  abc ") == "abc" and bearer_credential("Basic abc") == ""
    assert bearer_credential(b"bearer abc") == "abc" and bearer_credential(None) == ""


def test_a_scoped_token_sees_only_its_agencies_and_cohorts(clean_chdb, rules_dir):
    import grpc

    from dti.ranking.v1 import ranking_pb2_grpc
    from dti_pulse.grpc_channel import ranking_channel

    fold(clean_chdb, scenario.EVENTS)
    service = RankingService(REGISTRY, RulesCatalog(rules_dir, check_every_s=0), "dti-pulse-2026",
                             CachedMeasures(ClickHouseMeasures(clean_chdb)))
    server = RankingServer(service, "127.0.0.1", free_port(), {GRPC_TOKEN: "operator", "dept-5-token": "dept-5"},
                           scopes={"dept-5": ("000.00.05.*", "cohort:department")}, watch_interval_s=0.2)
    server.start_in_thread()
    try:
        scoped = ranking_pb2_grpc.RankingServiceStub(ranking_channel(f"127.0.0.1:{server.port}", "dept-5-token"))
        period = scenario.PERIOD
        assert scoped.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=period),
                                     timeout=10).agency_code == scenario.AGENCY
        assert scoped.ListRanking(ranking_pb2.ListRankingRequest(cohort="department", period=period), timeout=10).entries
        assert scoped.ListRules(ranking_pb2.ListRulesRequest(), timeout=10).versions
        denied = [
            lambda: scoped.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.OTHER, period=period),
                                          timeout=10),
            lambda: scoped.ExplainIndicator(ranking_pb2.ExplainIndicatorRequest(
                agency_code=scenario.OTHER, indicator_code="dossier_on_time_rate", period=period), timeout=10),
            lambda: scoped.ListRanking(ranking_pb2.ListRankingRequest(cohort="commune", period=period), timeout=10),
            lambda: scoped.GetActivity(ranking_pb2.GetActivityRequest(minutes=5), timeout=10),  # the whole province
            lambda: next(iter(scoped.WatchAgencyScore(ranking_pb2.GetAgencyScoreRequest(
                agency_code=scenario.OTHER, period=period), timeout=10))),
        ]
        for call in denied:
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
        # The unscoped token of the same server sees the other agency.
        assert ranking_stub(server.port).GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(
            agency_code=scenario.OTHER, period=period), timeout=10).agency_code == scenario.OTHER
    finally:
        server.stop()


def test_the_shell_asks_ranking_for_a_score_and_a_ranking(ranking_server):
    import json
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "DTI_RANKING_ADDRESS": f"127.0.0.1:{ranking_server.port}",
           "DTI_RANKING_TOKEN": GRPC_TOKEN}

    def ask(*args):
        return subprocess.run([sys.executable, "-m", "dti_pulse.cli", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    table = ask("score", scenario.AGENCY, scenario.PERIOD)
    assert table.returncode == 0, table.stderr
    assert scenario.AGENCY in table.stdout and "dossier_on_time_rate" in table.stdout
    assert f"{scenario.EXPECTED_TOTAL:.2f} /" in table.stdout.splitlines()[-1]
    as_json = json.loads(ask("score", scenario.AGENCY, scenario.PERIOD, "--json").stdout)
    assert as_json["agency_code"] == scenario.AGENCY and as_json["total_points"] == pytest.approx(scenario.EXPECTED_TOTAL)
    ranking = ask("ranking", "department", scenario.PERIOD)
    assert ranking.returncode == 0 and ranking.stdout.splitlines()[2].split()[:2] == ["1", scenario.AGENCY]
    refused = ask("score", "no-such-agency", scenario.PERIOD)
    assert refused.returncode == 2 and "NOT_FOUND" in refused.stderr
    stranger = ask("score", scenario.AGENCY, scenario.PERIOD, "--token", "guess")
    assert stranger.returncode == 2 and "UNAUTHENTICATED" in stranger.stderr


def test_probe_says_whether_ranking_and_an_http_service_are_healthy(ranking_server):
    import subprocess
    import sys

    def probe(*args):
        return subprocess.run([sys.executable, "-m", "dti_pulse.cli", "probe", *args], env={"PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=60)

    address = f"127.0.0.1:{ranking_server.port}"
    assert probe("grpc", address).returncode == 0
    assert probe("grpc", address, "dti.pipeline.store").returncode == 0
    unknown = probe("grpc", address, "no.such.Service")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    closed = probe("grpc", f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert closed.returncode == 1
    failing = probe("http", f"http://127.0.0.1:{free_port()}/readyz", "--timeout", "1")
    assert failing.returncode == 1 and "readyz" in failing.stderr

    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/readyz" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert probe("http", f"{base}/readyz").returncode == 0
        assert probe("http", f"{base}/other").returncode == 1
    finally:
        server.shutdown()


def test_reconcile_puts_the_portals_figures_beside_ours_with_leads(ranking_server, tmp_path):
    import os
    import subprocess
    import sys

    numerator, denominator, _ = scenario.EXPECTED["dossier_on_time_rate"]
    ours = numerator / denominator
    published = tmp_path / "portal.csv"
    published.write_text("agency_code,period,indicator,published\n"
                         f"{scenario.AGENCY},{scenario.PERIOD},dossier_on_time_rate,{ours * 100 + 5:.2f}\n"
                         f"{scenario.AGENCY},{scenario.PERIOD},dossier_on_time_rate,{ours:.4f}\n"
                         # the portal's own metric code names ours too
                         f"{scenario.AGENCY},{scenario.PERIOD},DOSSIER_SYNC,60\n")
    env = {**os.environ, "DTI_RANKING_ADDRESS": f"127.0.0.1:{ranking_server.port}", "DTI_RANKING_TOKEN": GRPC_TOKEN}
    done = subprocess.run([sys.executable, "-m", "dti_pulse.cli", "reconcile", str(published), "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr  # some differ
    differing, agreeing, by_portal_code = json.loads(done.stdout)
    assert differing["differs"] and differing["difference_pp"] == pytest.approx(-5.0)
    synced, received, _ = scenario.EXPECTED["dossier_sync_rate"]  # 3 of 5: 60 %
    assert by_portal_code["code"] == "dossier_sync_rate" and not by_portal_code["differs"]
    assert (by_portal_code["numerator"], by_portal_code["denominator"]) == (synced, received)
    assert {lead["id"] for lead in differing["leads"]} == scenario.EXPECTED_COSTS["dossier_on_time_rate"]
    assert not agreeing["differs"] and agreeing["leads"] == []
    table = subprocess.run([sys.executable, "-m", "dti_pulse.cli", "reconcile", str(published)], env=env,
                           capture_output=True, text=True, timeout=120).stdout
    assert "<- differs" in table and "3 figures, 1 differ" in table

from services.ranking.cache import CachedMeasures
from services.ranking.measures import DataVersion


class CountingStore:
    def __init__(self):
        self.version, self.activity, self.queries, self.version_reads = 1, 1, 0, 0

    def data_version(self):
        self.version_reads += 1
        return DataVersion((self.version,), (self.activity,))

    def measures(self, codes, start, end, judged, as_of=None):
        self.queries += 1
        return {"A": {"dossiers_received": self.version}}

    def refresh_in_background(self):
        pass

    def stop_refreshing(self):
        pass


def test_lookups_between_changes_cost_no_query_and_a_change_shows_after_the_ttl():
    clock = [0.0]
    store = CountingStore()
    cache = CachedMeasures(store, version_ttl_s=0.1, clock=lambda: clock[0])
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 1
    for _ in range(5):
        cache.measures(["A"], 0, 10, 10)
    assert store.queries == 1 and store.version_reads == 1
    store.version = 2
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 1  # within the TTL
    clock[0] += 0.2
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 2
    assert store.queries == 2
    cache.measures(["A"], 0, 10, 11)  # another judgement instant is another entry
    assert store.queries == 3


def test_cache_is_bounded():
    store = CountingStore()
    cache = CachedMeasures(store, capacity=2, clock=lambda: 0.0)
    for judged in range(5):
        cache.measures(["A"], 0, 10, judged)
    cache.measures(["A"], 0, 10, 0)
    assert store.queries == 6


def test_a_background_loop_keeps_a_costly_step_to_its_share_of_the_time():
    import time

    from services.ranking.background import BackgroundLoop

    calls = []

    def step():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ConnectionError("ClickHouse away")  # logged, the loop goes on
        time.sleep(0.05)

    loop = BackgroundLoop("test", step, pause_s=0.01, failure="step failed", pace=4)
    loop.start()
    time.sleep(0.6)
    loop.stop(5)
    gaps = [later - earlier for earlier, later in zip(calls[1:], calls[2:])]
    assert len(calls) >= 3
    assert all(gap >= 0.05 * 5 for gap in gaps)  # the step's 50 ms, then at least 4 x 50 ms of pause
    stopped_at = len(calls)
    time.sleep(0.3)
    assert len(calls) == stopped_at


def test_new_live_activity_leaves_cached_measures_alone():
    clock = [0.0]
    store = CountingStore()
    cache = CachedMeasures(store, version_ttl_s=0.1, clock=lambda: clock[0])
    cache.measures(["A"], 0, 10, 10)
    activity_before = cache.fresh_version().activity
    store.activity = 2
    clock[0] += 0.2
    cache.measures(["A"], 0, 10, 10)
    assert store.queries == 1 and store.version_reads == 2
    assert cache.fresh_version().activity != activity_before


def test_a_signalled_write_invalidates_at_once_without_a_query_and_only_once():
    from dti_pulse.clickhouse import WriteSignal

    clock = [0.0]
    store, signal = CountingStore(), WriteSignal()
    cache = CachedMeasures(store, version_ttl_s=60, clock=lambda: clock[0], changes=signal)
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 1
    store.version = 2
    signal.notify("measures")
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 2
    assert store.version_reads == 1 and store.queries == 2  # no version query on the way
    signal.notify("activity")
    cache.measures(["A"], 0, 10, 10)
    assert store.queries == 2  # new live activity: the measures stay cached
    clock[0] += 61  # the poll reads the version the signalled write made: nothing new
    cache.measures(["A"], 0, 10, 10)
    assert store.version_reads == 2 and store.queries == 2


def test_a_write_that_is_not_signalled_is_found_by_the_poll():
    from dti_pulse.clickhouse import WriteSignal

    clock = [0.0]
    store, signal = CountingStore(), WriteSignal()
    cache = CachedMeasures(store, version_ttl_s=1, clock=lambda: clock[0], changes=signal)
    cache.measures(["A"], 0, 10, 10)
    store.version = 2  # another writer, which does not signal
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 1  # within the TTL
    clock[0] += 2
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 2
    assert store.queries == 2


class PerAgencyStore(CountingStore):
    """Counts each agency's rows; `during_query` runs while a query is in flight."""

    def __init__(self):
        super().__init__()
        self.counts, self.documents, self.during_query, self.families = {"A": 1, "B": 1}, {"A": 5, "B": 5}, None, []

    def measures(self, codes, start, end, judged, as_of=None, families=("dossier", "document")):
        self.queries += 1
        self.families.append(families)
        answer = {code: {} for code in codes}
        for code in codes:
            if "dossier" in families:
                answer[code]["dossiers_received"] = self.counts[code]
            if "document" in families:
                answer[code]["documents_total"] = self.documents[code]
        if self.during_query:
            self.during_query()
        return answer


def test_a_write_naming_its_agencies_leaves_the_others_cached():
    from dti_pulse.clickhouse import WriteSignal

    store, signal = PerAgencyStore(), WriteSignal()
    cache = CachedMeasures(store, version_ttl_s=60, clock=lambda: 0.0, changes=signal)
    for codes in (["A"], ["B"], ["A", "B"]):
        cache.measures(codes, 0, 10, 10)
    assert store.queries == 3
    store.counts["B"] = 2
    signal.notify("measures", {"dossier": {"B"}})
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 1
    assert store.queries == 3  # A was not written: no query
    assert cache.cached(["A", "B"], 0, 10, 10) is None  # the cohort holds B
    assert cache.measures(["B"], 0, 10, 10)["B"]["dossiers_received"] == 2
    assert cache.measures(["A", "B"], 0, 10, 10)["B"]["dossiers_received"] == 2
    assert store.queries == 5
    version = cache.fresh_version()
    signal.notify("measures", {"dossier": {"B"}})
    assert cache.fresh_version() != version  # answers built on the version are recomputed
    signal.notify("measures")  # a write that names no agencies changes every entry
    cache.measures(["A"], 0, 10, 10)
    assert store.queries == 6


def test_a_write_landing_while_an_entry_is_computed_leaves_that_entry_stale():
    from dti_pulse.clickhouse import WriteSignal

    store, signal = PerAgencyStore(), WriteSignal()
    cache = CachedMeasures(store, version_ttl_s=60, clock=lambda: 0.0, changes=signal)

    def write_of_a():
        store.counts["A"] = 2
        signal.notify("measures", {"dossier": {"A"}})

    store.during_query = write_of_a  # the query read A before the write
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 1
    store.during_query = None
    assert cache.measures(["A"], 0, 10, 10)["A"]["dossiers_received"] == 2
    assert store.queries == 2


def test_an_answer_about_one_agency_is_stamped_with_that_agencys_writes_only():
    from dti_pulse.clickhouse import WriteSignal
    from dti_pulse.config import DEFAULT_AGENCIES, DEFAULT_RULES_DIR
    from dti_pulse.registry import load_registry
    from services.ranking.rules import RulesCatalog
    from services.ranking.service import RankingService

    signal = WriteSignal()
    cache = CachedMeasures(PerAgencyStore(), version_ttl_s=60, clock=lambda: 0.0, changes=signal)
    service = RankingService(load_registry(DEFAULT_AGENCIES), RulesCatalog(DEFAULT_RULES_DIR, check_every_s=0),
                             "dti-pulse-2026", cache, clock_ms=lambda: 0)
    assert service.cache_stamp("measures", "A") is None  # no version read yet: no cached answers
    cache.measures(["A"], 0, 10, 10)
    stamps = service.cache_stamp("measures", "A"), service.cache_stamp("measures")
    signal.notify("measures", {"dossier": {"B"}})
    assert service.cache_stamp("measures", "A") == stamps[0]
    assert service.cache_stamp("measures") != stamps[1]  # a ranking may hold B
    signal.notify("measures", {"document": {"A", "C"}})
    assert service.cache_stamp("measures", "A") != stamps[0]
    changed = service.cache_stamp("measures", "A")
    signal.notify("activity")
    assert service.cache_stamp("measures", "A") == changed
    signal.notify("measures")
    assert service.cache_stamp("measures", "A") != changed


def test_the_same_question_asked_while_it_is_computed_is_computed_once():
    import asyncio

    from dti.ranking.v1 import ranking_pb2
    from services.ranking.grpc_server import RankingServicer

    class Stamped:
        def cache_stamp(self, depends_on="measures", agency_code=""):
            return "version 1"

    servicer = RankingServicer(Stamped())
    computed = []

    async def compute(request, context):
        computed.append(request.agency_code)
        await asyncio.sleep(0.05)
        return object()

    async def ask_many():
        request = ranking_pb2.GetAgencyScoreRequest(agency_code="A", period="2026-10")
        answers = await asyncio.gather(*(servicer._answer(compute, request, None) for _ in range(20)))
        later = await servicer._answer(compute, request, None)
        return answers, later

    answers, later = asyncio.run(ask_many())
    assert computed == ["A"] and all(answer is answers[0] for answer in answers) and later is answers[0]


def test_a_write_of_one_family_recounts_that_family_only():
    from dti_pulse.clickhouse import WriteSignal

    store, signal = PerAgencyStore(), WriteSignal()
    cache = CachedMeasures(store, version_ttl_s=60, clock=lambda: 0.0, changes=signal)
    cache.measures(["A", "B"], 0, 10, 10)
    store.counts["A"], store.documents["A"] = 2, 6  # the document count changes unseen: not named
    signal.notify("measures", {"dossier": {"A"}})
    found = cache.measures(["A", "B"], 0, 10, 10)
    assert store.families[-1] == ("dossier",)
    assert (found["A"]["dossiers_received"], found["A"]["documents_total"]) == (2, 5)  # documents kept from memory
    assert found["B"]["documents_total"] == 5
    signal.notify("measures", {"dossier": {"B"}, "document": {"A"}})
    found = cache.measures(["A", "B"], 0, 10, 10)
    assert store.families[-1] == ("dossier", "document")  # both stale for the entry: counted whole
    assert found["A"]["documents_total"] == 6


class JudgedStore(PerAgencyStore):
    """Remembers the instants it was asked to judge at."""

    def __init__(self):
        super().__init__()
        self.judged = []

    def measures(self, codes, start, end, judged, as_of=None, families=("dossier", "document")):
        self.judged.append((tuple(codes), judged))
        return super().measures(codes, start, end, judged, as_of, families)


MINUTE = 60_000


def warming_cache(wall: list, **kwargs) -> tuple[JudgedStore, CachedMeasures]:
    """A cache that warms the next minute 10 s ahead, on the wall clock wall[0]."""
    store = JudgedStore()
    return store, CachedMeasures(store, clock=lambda: 0.0, judge_step_ms=MINUTE, warm_lead_ms=10_000,
                                 wall_clock_ms=lambda: wall[0], **kwargs)


def test_questions_asked_this_minute_are_counted_before_the_next_minute_turns():
    from dti_pulse.clickhouse import WriteSignal

    day_end = 100 * MINUTE
    wall = [10 * MINUTE + 5_000]
    signal = WriteSignal()
    store, cache = warming_cache(wall, version_ttl_s=60, changes=signal)
    cache.measures(["A"], 0, day_end, 10 * MINUTE)  # an open period, judged this minute
    cache.measures(["B"], 0, day_end, 9 * MINUTE)  # asked last minute, not this one
    cache.measures(["A"], 0, 10 * MINUTE, 10 * MINUTE)  # a period already over: its answer does not turn
    cache.measures(["A"], 0, day_end, 10 * MINUTE, as_of_ms=5)  # as of an instant: neither
    asked_before = len(store.judged)

    assert cache.warm_next_judgement() == 0  # 55 s before the turn: too early
    wall[0] = 11 * MINUTE - 8_000
    assert cache.warm_next_judgement() == 1
    assert store.judged[asked_before:] == [(("A",), 11 * MINUTE)]
    assert cache.warm_next_judgement() == 0  # once a minute

    wall[0] = 11 * MINUTE + 1
    queries = store.queries
    assert cache.measures(["A"], 0, day_end, 11 * MINUTE)["A"]["dossiers_received"] == 1
    assert store.queries == queries  # the turn costs no count

    # A write after the round leaves the warmed entry stale, as any entry.
    wall[0] = 12 * MINUTE - 5_000
    assert cache.warm_next_judgement() == 1  # A was asked at 11 min
    store.counts["A"] = 7
    signal.notify("measures", {"dossier": ["A"]})
    wall[0] = 12 * MINUTE
    assert cache.measures(["A"], 0, day_end, 12 * MINUTE)["A"]["dossiers_received"] == 7

    # The warming's own counting is not an asking: nobody asked at 12 min, so nothing is warmed for 13.
    _, cache_quiet = warming_cache(wall)
    wall[0] = 12 * MINUTE + 1
    cache_quiet.measures(["A"], 0, day_end, 12 * MINUTE)
    wall[0] = 13 * MINUTE - 1_000
    assert cache_quiet.warm_next_judgement() == 1
    wall[0] = 14 * MINUTE - 1_000
    assert cache_quiet.warm_next_judgement() == 0


def test_a_period_that_ends_at_the_turn_is_warmed_at_its_end():
    wall = [11 * MINUTE - 3_000]
    store, cache = warming_cache(wall)
    cache.measures(["A"], 0, 10 * MINUTE + 30_000, 10 * MINUTE)
    assert cache.warm_next_judgement() == 1
    assert store.judged[-1] == (("A",), 10 * MINUTE + 30_000)


def test_warming_stops_at_the_turn_most_recently_asked_first():
    wall = [11 * MINUTE - 2_000]
    store, cache = warming_cache(wall)
    cache.measures(["A"], 0, 100 * MINUTE, 10 * MINUTE)
    cache.measures(["B"], 0, 100 * MINUTE, 10 * MINUTE)
    store.during_query = lambda: wall.__setitem__(0, 11 * MINUTE)  # the first count runs past the turn
    assert cache.warm_next_judgement() == 1
    assert store.judged[-1] == (("B",), 11 * MINUTE)


def test_a_question_first_asked_after_the_minutes_first_round_is_warmed_by_the_next_round():
    wall = [11 * MINUTE - 9_000]
    store, cache = warming_cache(wall)
    cache.measures(["A"], 0, 100 * MINUTE, 10 * MINUTE)
    assert cache.warm_next_judgement() == 1
    cache.measures(["B"], 0, 100 * MINUTE, 10 * MINUTE)
    wall[0] += 1_000
    assert cache.warm_next_judgement() == 1
    assert store.judged[-1] == (("B",), 11 * MINUTE)


def test_one_agencys_question_covered_by_its_cohorts_is_warmed_through_the_cohort():
    """GetAgencyScore looks for its cohort's answer first (cached), then counts the agency
    alone: the round counts the cohort once, not each agency (each costs about as much)."""
    wall = [11 * MINUTE - 5_000]
    store, cache = warming_cache(wall)
    store.counts["C"], store.documents["C"] = 1, 5
    for code in ("A", "B"):
        assert cache.cached(["A", "B"], 0, 100 * MINUTE, 10 * MINUTE) is None  # a miss is an asking too
        cache.measures([code], 0, 100 * MINUTE, 10 * MINUTE)
    cache.measures(["C"], 0, 100 * MINUTE, 10 * MINUTE)  # in no cohort asked about
    cache.measures(["A"], 0, 50 * MINUTE, 10 * MINUTE)  # another period: not covered
    asked_before = len(store.judged)
    assert cache.warm_next_judgement() == 3
    assert sorted(store.judged[asked_before:]) == [(("A",), 11 * MINUTE), (("A", "B"), 11 * MINUTE),
                                                   (("C",), 11 * MINUTE)]
    wall[0] = 11 * MINUTE + 1
    queries = store.queries
    assert cache.cached(["A", "B"], 0, 100 * MINUTE, 11 * MINUTE)["B"] is not None  # the turn costs no count
    assert cache.measures(["B"], 0, 100 * MINUTE, 11 * MINUTE)["B"]["dossiers_received"] == 1
    assert store.queries == queries


def test_a_write_after_the_round_to_one_agency_of_a_cohort_leaves_the_others_warmed():
    """The round counts the cohort once and enters each agency asked alone under its own
    question: a write to A makes the cohort's entry stale, not B's."""
    from dti_pulse.clickhouse import WriteSignal

    wall = [11 * MINUTE - 5_000]
    signal = WriteSignal()
    store, cache = warming_cache(wall, version_ttl_s=60, changes=signal)
    for code in ("A", "B"):
        cache.cached(["A", "B"], 0, 100 * MINUTE, 10 * MINUTE)
        cache.measures([code], 0, 100 * MINUTE, 10 * MINUTE)
    assert cache.warm_next_judgement() == 1
    store.counts["A"] = 7
    signal.notify("measures", {"dossier": ["A"]})
    wall[0] = 11 * MINUTE + 1
    queries = store.queries
    assert cache.cached(["A", "B"], 0, 100 * MINUTE, 11 * MINUTE) is None  # A's write: the cohort is stale
    assert cache.measures(["B"], 0, 100 * MINUTE, 11 * MINUTE)["B"]["dossiers_received"] == 1
    assert store.queries == queries  # B from the round's count
    assert cache.measures(["A"], 0, 100 * MINUTE, 11 * MINUTE)["A"]["dossiers_received"] == 7
    assert store.queries == queries + 1


def test_the_round_counts_through_its_own_store_and_lookups_through_theirs():
    """The warming's counts go to warm_store (in production, a connection of its own with
    one thread a query), never to the lookups' connection."""
    wall = [11 * MINUTE - 5_000]
    lookups, warming = JudgedStore(), JudgedStore()
    cache = CachedMeasures(lookups, clock=lambda: 0.0, judge_step_ms=MINUTE, warm_lead_ms=10_000,
                           wall_clock_ms=lambda: wall[0], warm_store=warming)
    cache.measures(["A"], 0, 100 * MINUTE, 10 * MINUTE)
    assert cache.warm_next_judgement() == 1
    assert lookups.judged == [(("A",), 10 * MINUTE)]
    assert warming.judged == [(("A",), 11 * MINUTE)]
    wall[0] = 11 * MINUTE + 1
    assert cache.measures(["A"], 0, 100 * MINUTE, 11 * MINUTE)["A"]["dossiers_received"] == 1
    assert lookups.queries == 1  # answered from the warmed entry


def test_a_lookup_that_reads_the_data_version_itself_while_the_poll_runs_is_logged(caplog):
    """The background poll keeps the version fresh; a lookup finding it older than the TTL
    says so (once per 10 s), since it then waits for a query of its own."""
    import logging

    clock = [0.0]
    store = CountingStore()
    cache = CachedMeasures(store, version_ttl_s=1, clock=lambda: clock[0])
    cache.measures(["A"], 0, 10, 10)
    clock[0] = 5.0
    with caplog.at_level(logging.WARNING):
        cache.measures(["A"], 0, 10, 10)  # no poll running: nothing to say
        assert "poll is behind" not in caplog.text
        cache._refresher._thread = object()  # as if started, without a thread querying
        clock[0] = 10.0
        cache.measures(["A"], 0, 10, 10)
        clock[0] = 12.0
        cache.measures(["A"], 0, 10, 10)
    cache._refresher._thread = None
    assert caplog.text.count("poll is behind") == 1

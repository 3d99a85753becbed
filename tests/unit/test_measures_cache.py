from services.ranking.service import CachedMeasures
from services.ranking.store import DataVersion


class CountingStore:
    def __init__(self):
        self.version, self.activity, self.queries, self.version_reads = 1, 1, 0, 0

    def data_version(self):
        self.version_reads += 1
        return DataVersion((self.version,), (self.activity,))

    def measures(self, codes, start, end, judged, as_of=None):
        self.queries += 1
        return {"A": {"dossiers_received": self.version}}


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

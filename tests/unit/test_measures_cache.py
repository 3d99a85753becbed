from services.ranking.service import CachedMeasures


class CountingStore:
    def __init__(self):
        self.version, self.queries, self.version_reads = 1, 0, 0

    def data_version(self):
        self.version_reads += 1
        return (self.version,)

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

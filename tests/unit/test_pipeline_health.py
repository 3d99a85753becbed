"""Ranking's view of the pipeline: which part does not work, and the health it reports."""
from dti_pulse.kafka import GroupProgress
from services.ranking.pipeline import AGGREGATOR_HEALTH, BROKER_HEALTH, STORE_HEALTH, PipelineMonitor

SERVICE = "dti.ranking.v1.RankingService"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Kafka:
    def __init__(self):
        self.progress, self.away = GroupProgress(0, 0, 0), False

    def read(self):
        if self.away:
            raise ConnectionError("no broker at 127.0.0.1:9")
        return self.progress


def monitor(store_ping=lambda: None, kafka=None, clock=None):
    return PipelineMonitor(store_ping, kafka, stall_after_s=60, clock=clock or Clock(), wall_ms=lambda: 42)


def test_everything_working_is_serving_everywhere():
    watched = monitor(kafka=Kafka())
    snapshot = watched.check()
    assert snapshot.healthy and snapshot.kafka_watched and not snapshot.problems
    assert all(watched.health(SERVICE).values())
    assert set(watched.health(SERVICE)) == {"", SERVICE, STORE_HEALTH, BROKER_HEALTH, AGGREGATOR_HEALTH}


def test_a_store_that_does_not_answer_stops_ranking_serving():
    def ping():
        raise OSError("Connection refused: clickhouse:8123")

    watched = monitor(ping, Kafka())
    snapshot = watched.check()
    assert not snapshot.store_reachable and "store unreachable: Connection refused" in snapshot.problems[0]
    health = watched.health(SERVICE)
    assert not health[""] and not health[SERVICE] and not health[STORE_HEALTH]
    assert health[BROKER_HEALTH] and health[AGGREGATOR_HEALTH]


def test_the_broker_away_is_said_and_comes_back():
    kafka = Kafka()
    watched = monitor(kafka=kafka)
    kafka.away = True
    assert "Kafka unreachable" in watched.check().problems[0]
    assert not watched.health(SERVICE)[BROKER_HEALTH] and watched.health(SERVICE)[SERVICE]
    kafka.away = False
    assert watched.check().healthy


def test_an_aggregator_behind_and_not_moving_for_the_stall_time_is_stalled():
    kafka, clock = Kafka(), Clock()
    watched = monitor(kafka=kafka, clock=clock)
    kafka.progress = GroupProgress(lag=500, committed=100, dead_letters=3)
    assert watched.check().healthy  # first seen: given the stall time before it is judged
    clock.now += 59
    assert watched.check().healthy
    clock.now += 2
    snapshot = watched.check()
    assert snapshot.aggregator_stalled and snapshot.aggregator_lag == 500 and snapshot.dead_letters == 3
    assert "aggregator stalled: 500 messages behind, no progress for 61 s" in snapshot.problems
    assert not watched.health(SERVICE)[AGGREGATOR_HEALTH] and not watched.health(SERVICE)[""]
    assert watched.health(SERVICE)[SERVICE]  # ranking still answers from what is stored
    # It moves: healthy at once.
    kafka.progress = GroupProgress(lag=400, committed=200, dead_letters=3)
    assert watched.check().healthy


def test_an_idle_pipeline_is_not_stalled():
    kafka, clock = Kafka(), Clock()
    watched = monitor(kafka=kafka, clock=clock)
    kafka.progress = GroupProgress(lag=0, committed=100, dead_letters=0)
    watched.check()
    clock.now += 3600
    assert watched.check().healthy


def test_without_kafka_only_the_store_is_watched():
    snapshot = monitor().check()
    assert snapshot.healthy and not snapshot.kafka_watched

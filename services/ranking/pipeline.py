"""Which parts of the pipeline work, as ranking sees them: the store answers, the broker
answers, the aggregator makes progress, dead letters wait. Its verdict sets the gRPC health
statuses and answers GetPipelineStatus (the console shows it).

The probes are handed in (a ClickHouse ping, a dti_pulse.kafka.KafkaWatch): this module
decides from what they say, on a clock it is given.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

log = logging.getLogger(__name__)

# gRPC health service names besides "" (everything) and the RankingService itself (its store).
STORE_HEALTH = "dti.pipeline.store"
BROKER_HEALTH = "dti.pipeline.broker"
AGGREGATOR_HEALTH = "dti.pipeline.aggregator"


class GroupWatch(Protocol):
    def read(self): ...  # -> dti_pulse.kafka.GroupProgress (lag, committed, dead_letters); raises if unreachable


@dataclass(frozen=True)
class PipelineSnapshot:
    store_reachable: bool = True
    kafka_watched: bool = False
    broker_reachable: bool = True
    aggregator_lag: int = 0
    aggregator_stalled: bool = False
    aggregator_progress_at_ms: int | None = None
    dead_letters: int = 0
    problems: tuple[str, ...] = ()
    checked_at_ms: int = 0
    lag_by_partition: tuple[tuple[int, int], ...] = ()  # (partition, lag): what /metrics shows

    @property
    def healthy(self) -> bool:
        return not self.problems


@dataclass
class PipelineMonitor:
    """check() probes every part once (from a background thread); snapshot is the last
    verdict. The aggregator is stalled when it is behind (lag > 0) and its committed offsets
    have not moved for stall_after_s; a new monitor gives it that long before saying so."""
    store_ping: Callable[[], object]
    kafka: GroupWatch | None = None
    stall_after_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    snapshot: PipelineSnapshot = field(default_factory=PipelineSnapshot)
    _committed: int | None = None
    _progress_at: float | None = None
    _progress_at_ms: int | None = None

    def check(self) -> PipelineSnapshot:
        problems = []
        try:
            self.store_ping()
            store_reachable = True
        except Exception as exc:
            store_reachable = False
            problems.append(f"store unreachable: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}")
        broker_reachable, lag, stalled, dead_letters, lags = True, 0, False, 0, ()
        if self.kafka is not None:
            try:
                progress = self.kafka.read()
            except Exception as exc:
                broker_reachable = False
                problems.append(f"Kafka unreachable: {str(exc)[:200] or type(exc).__name__}")
            else:
                now = self.clock()
                lag, dead_letters, lags = progress.lag, progress.dead_letters, progress.lag_by_partition
                if progress.committed != self._committed or self._progress_at is None or lag == 0:
                    self._committed, self._progress_at, self._progress_at_ms = progress.committed, now, self.wall_ms()
                idle_s = now - self._progress_at
                stalled = lag > 0 and idle_s >= self.stall_after_s
                if stalled:
                    problems.append(f"aggregator stalled: {lag:,} messages behind, no progress for {idle_s:.0f} s")
        snapshot = PipelineSnapshot(store_reachable, self.kafka is not None, broker_reachable, lag, stalled,
                                    self._progress_at_ms, dead_letters, tuple(problems), self.wall_ms(), lags)
        if snapshot.problems != self.snapshot.problems:
            if snapshot.problems:
                log.warning("pipeline: %s", "; ".join(snapshot.problems))
            else:
                log.info("pipeline: every part works again")
        self.snapshot = snapshot
        return snapshot

    def health(self, ranking_service: str) -> dict[str, bool]:
        """Each gRPC health service name -> serving."""
        s = self.snapshot
        return {"": s.healthy, ranking_service: s.store_reachable, STORE_HEALTH: s.store_reachable,
                BROKER_HEALTH: s.broker_reachable, AGGREGATOR_HEALTH: s.broker_reachable and not s.aggregator_stalled}

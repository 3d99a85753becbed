"""Kafka adapter of ingest: publishes events as per-partition EventBatch envelopes.

An envelope carries every event of one request that belongs to one partition, so the
per-message cost (engines.md) is paid once per partition, not once per event. Events of
one dossier / document always map to the same partition (dti_pulse.events.partition_for).
"""
from __future__ import annotations

import asyncio
import logging

from kafka import KafkaProducer
from kafka.errors import KafkaError

from dti.events.v1.events_pb2 import Event
from dti_pulse.events import envelopes_by_partition

log = logging.getLogger(__name__)


class NotAcknowledged(RuntimeError):
    """Kafka did not acknowledge every envelope of a request."""


class KafkaPublisher:
    def __init__(self, bootstrap: str, topic: str, delivery_timeout_ms: int = 10_000):
        self.topic = topic
        request_timeout_ms = max(1000, delivery_timeout_ms // 2)
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="dti-ingest",
            acks="all",
            # Duplicates are removed by event_id downstream; the idempotent producer's
            # InitProducerId turns fatal when the broker it knew is replaced.
            enable_idempotence=False,
            linger_ms=2,
            max_request_size=64 * 1024 * 1024,
            request_timeout_ms=request_timeout_ms,
            # A record that Kafka has not acknowledged within this bound is failed, never
            # delivered later: a 503 answer then really means "nothing of it counts".
            delivery_timeout_ms=delivery_timeout_ms,
            max_block_ms=delivery_timeout_ms,
            retries=2**31 - 1,
            max_in_flight_requests_per_connection=1,
            reconnect_backoff_max_ms=1000,
        )
        self._partitions: int | None = None
        self._wait_s = delivery_timeout_ms / 1000 + 5

    def partition_count(self) -> int:
        if self._partitions is None:
            partitions = self._producer.partitions_for(self.topic)
            if not partitions:
                raise NotAcknowledged(f"topic {self.topic} has no partitions")
            self._partitions = len(partitions)
        return self._partitions

    def _send_all(self, events: list[Event], loop: asyncio.AbstractEventLoop) -> list[asyncio.Future]:
        waiters = []
        for partition, payload in envelopes_by_partition(events, self.partition_count()).items():
            waiter = loop.create_future()
            record = self._producer.send(self.topic, value=payload, partition=partition)
            record.add_callback(lambda meta, w=waiter: loop.call_soon_threadsafe(_resolve, w, None))
            record.add_errback(lambda exc, w=waiter: loop.call_soon_threadsafe(_resolve, w, exc))
            waiters.append(waiter)
        return waiters

    async def publish(self, events: list[Event]) -> None:
        """Returns once Kafka acknowledged every event (acks=all); raises NotAcknowledged."""
        if not events:
            return
        loop = asyncio.get_running_loop()
        try:
            # send() may block for metadata while the broker is away: keep it off the loop.
            waiters = await asyncio.to_thread(self._send_all, events, loop)
            outcomes = await asyncio.wait_for(asyncio.gather(*waiters), timeout=self._wait_s)
        except (KafkaError, asyncio.TimeoutError) as exc:
            raise NotAcknowledged(f"Kafka did not acknowledge: {exc!r}") from exc
        failures = [exc for exc in outcomes if exc is not None]
        if failures:
            raise NotAcknowledged(f"Kafka did not acknowledge {len(failures)} of {len(outcomes)} envelopes: {failures[0]!r}")

    def ready(self) -> bool:
        try:
            return self.partition_count() > 0
        except (KafkaError, NotAcknowledged):
            return False

    def close(self) -> None:
        self._producer.close(timeout=5)


def _resolve(waiter: asyncio.Future, exc: BaseException | None) -> None:
    if not waiter.done():
        waiter.set_result(exc)

"""Kafka adapter of ingest: publishes events as per-partition EventBatch envelopes.

An envelope carries every event of one request that belongs to one partition, so the
per-message cost is paid once per partition, not once per event. Events of
one dossier / document always map to the same partition (dti_pulse.events.partition_for).

The producer is aiokafka's, on the worker's event loop. kafka-python's producer needs a
sender thread and, since send() may block, a thread hop for every request: the three threads
took turns at the GIL, and a worker spent ~30 % more CPU an event than it does now
(bench/README.md, tenth session).
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from dti.events.v1.events_pb2 import Event
from dti_pulse import metrics
from dti_pulse.events import envelopes_by_partition
from dti_pulse.kafka import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)

# Buffered per partition. Envelopes are at most events.MAX_ENVELOPE_BYTES, so a batch stays
# within what Apache Kafka takes in one by default (message.max.bytes, 1,048,588).
BATCH_BYTES = 1024 * 1024
READY_PROBE_S = 3.0  # a readiness probe's answer within a typical probe timeout


class NotAcknowledged(RuntimeError):
    """Kafka did not acknowledge every envelope of a request."""


class KafkaPublisher:
    """Started on first use, on the loop that uses it: a worker comes up, and answers 503,
    while Kafka is away."""

    def __init__(self, bootstrap: str, topic: str, delivery_timeout_ms: int = 10_000,
                 security: KafkaSecurity = PLAINTEXT):
        self.topic = topic
        self.security = security
        self._bootstrap = bootstrap
        # A batch not acknowledged within the request timeout fails at its next retry, and an
        # attempt started before then ends within another one: by the time a request is
        # answered 503, what Kafka did not take will not be delivered later.
        self._request_timeout_ms = max(1000, delivery_timeout_ms // 2)
        self._wait_s = delivery_timeout_ms / 1000 + 5
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Lock | None = None
        self._partitions: int | None = None

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap, client_id="dti-ingest", acks="all",
                    # Duplicates are removed by event_id downstream; the idempotent producer's
                    # InitProducerId turns fatal when the broker it knew is replaced.
                    enable_idempotence=False, linger_ms=2, max_batch_size=BATCH_BYTES,
                    max_request_size=64 * 1024 * 1024, request_timeout_ms=self._request_timeout_ms,
                    **self.security.client_options())
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
        return self._producer

    async def partition_count(self) -> int:
        if self._partitions is None:
            partitions = await (await self._started()).partitions_for(self.topic)
            if not partitions:
                raise NotAcknowledged(f"topic {self.topic} has no partitions")
            self._partitions = len(partitions)
        return self._partitions

    async def _send_all(self, events: list[Event]) -> None:
        producer = await self._started()
        acknowledgements = [await producer.send(self.topic, value=payload, partition=partition)
                            for partition, payload in envelopes_by_partition(events, await self.partition_count())]
        await asyncio.gather(*acknowledgements)

    async def publish(self, events: list[Event]) -> None:
        """Returns once Kafka acknowledged every event (acks=all); raises NotAcknowledged."""
        if not events:
            return
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._send_all(events), timeout=self._wait_s)
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            metrics.ingest().unacknowledged.inc()
            raise NotAcknowledged(f"Kafka did not acknowledge: {exc!r}") from exc
        metrics.ingest().publish_seconds.observe(time.perf_counter() - started)

    async def ready(self) -> bool:
        """Asks the broker now for the topic's partitions: an answer kept from before would
        say ready while Kafka is away."""
        try:
            producer = await asyncio.wait_for(self._started(), timeout=READY_PROBE_S)
            metadata = await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout=READY_PROBE_S)
            return bool(metadata.partitions_for_topic(self.topic))
        except (KafkaError, OSError, asyncio.TimeoutError):
            return False

    async def close(self) -> None:
        """Sends what is still buffered, then closes."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

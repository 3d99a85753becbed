"""Faust entrypoint of the aggregator: Kafka batches -> Aggregator -> ClickHouse."""
from __future__ import annotations

import asyncio
import logging

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from dti_pulse.config import Settings
from services.aggregator.processor import Aggregator

log = logging.getLogger(__name__)
DEAD_LETTER_REASON_HEADER = "dti-reason"


def _shorten_fetch_wait(wait_ms: int) -> None:
    """Faust hard-codes a 1,500 ms fetch wait (engines.md): events would sit ~1.6 s in
    the broker. Lower it on the aiokafka consumer before the consumer starts."""
    create = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "_dti_wait_ms", None) == wait_ms:
        return
    original = getattr(create, "_dti_original", create)

    def create_worker_consumer(self, transport):
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    create_worker_consumer._dti_wait_ms = wait_ms
    create_worker_consumer._dti_original = original
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_app(settings: Settings, aggregator_factory) -> faust.App:
    """aggregator_factory(dead_letter) -> Aggregator; the composition root supplies it."""
    _shorten_fetch_wait(settings.aggregator_fetch_wait_ms)
    app = faust.App(
        settings.aggregator_group,
        broker=broker_urls(settings.kafka_bootstrap),
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout_s / 3),
        broker_commit_interval=settings.aggregator_commit_interval_s,
    )
    events_topic = app.topic(settings.events_topic, value_serializer="raw", key_serializer="raw",
                             partitions=settings.topic_partitions)
    dead_letters = app.topic(settings.dead_letter_topic, value_serializer="raw", key_serializer="raw",
                             partitions=1)

    async def dead_letter(payload: bytes, reason: str) -> None:
        delivery = await dead_letters.send(value=payload, headers={DEAD_LETTER_REASON_HEADER: reason.encode()})
        await delivery  # durable before the source offset is acknowledged

    aggregator: Aggregator = aggregator_factory(dead_letter)
    app.dti_aggregator = aggregator

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs) -> None:
        await aggregator.reset()

    @app.agent(events_topic, name="aggregate")
    async def aggregate(stream):
        # Batch N is written (chDB releases the GIL) while batch N+1 is decoded and folded;
        # writes and acknowledgements stay in order, one write in flight.
        writing: asyncio.Task | None = None

        async def commit_then_ack(prepared, batch):
            await aggregator.commit(prepared)
            for event in batch:
                await stream.ack(event)
            log.debug("batch: %s", prepared.stats)

        try:
            async for batch in stream.noack_take(settings.aggregator_batch, within=settings.aggregator_batch_seconds):
                prepared = await aggregator.prepare([event.value for event in batch])
                if writing is not None:
                    await writing
                writing = asyncio.create_task(commit_then_ack(prepared, batch))
        finally:
            if writing is not None and not writing.done():
                await writing

    return app

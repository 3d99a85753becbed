"""Faust entrypoint of the aggregator: Kafka batches -> Aggregator -> ClickHouse."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.utils.aiter import aiter
from mode.utils.futures import notify

from dti_pulse import metrics
from dti_pulse.kafka import DEAD_LETTER_REASON_HEADER, PLAINTEXT, KafkaSecurity
from services.aggregator.processor import Aggregator

log = logging.getLogger(__name__)


def _shorten_fetch_wait(wait_ms: int) -> None:
    """Faust hard-codes a 1,500 ms fetch wait: events would sit ~1.6 s in
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


# A batch smaller than this many messages means the pipeline keeps up: the next one is taken
# as soon as messages stop coming, not at the window's end. (One ingest request fans out
# into a message per partition: at 1,000 events/s and more the window applies.)
LIGHT_BATCH_MESSAGES = 8


async def adaptive_take(stream, max_messages: int, window_s: float, linger_s: float, max_bytes: int = 0,
                        size=lambda event: len(event.value or b"")):
    """Stream.noack_take with the window kept for when it pays. Under load a batch is what
    came in one window (up to max_messages), so that a write's fixed costs (~20-40 ms per
    chDB insert) are shared by thousands of events. After a light batch the next one goes
    out as soon as no message has come for linger_s: a lone event no longer waits out the
    window (~200 ms of the ~290 ms it took with no background load), and a backlog, which
    reaches the buffer one message at a time, is still gathered whole (up to the window).
    The events are acknowledged by the caller, once written. Built on the same stream hooks
    as noack_take.

    max_bytes (0: none) also ends a batch at the message that brings it there. The fold
    holds the event loop (and with it the consumer's heartbeats) for its whole batch, and
    under a backlog a batch is whatever came during the previous fold: 100-400k events and
    up to 3.9 s held in a measured run; 10,000 messages of ~125 events (a 1,000-event request
    over 8 partitions) would hold it 15-30 s, past the consumer's 10 s session timeout."""
    buffer: list = []
    buffered_bytes = 0
    ready, full, consumed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    consuming: asyncio.Future | None = None

    def is_full() -> bool:
        return len(buffer) >= max_messages or 0 < max_bytes <= buffered_bytes

    async def add_to_buffer(value):
        nonlocal consuming, buffered_bytes
        try:
            if consuming is not None:  # the batch is being handed over: wait for it
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take buffer found no current event")
            buffer.append(event)
            if max_bytes:
                buffered_bytes += size(event)
            ready.set()
            if is_full():
                full.set()
                consumed.clear()
                await stream.wait(consumed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("cannot buffer a message: %r", exc)
            await stream.crash(exc)
        return value

    acks_before = stream.enable_acks
    stream.enable_acks = False
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    loop = asyncio.get_running_loop()
    light, handed_over_at = True, loop.time()
    try:
        while not stream.should_stop:
            if light:
                await stream.wait_for_stopped(ready, timeout=window_s)
                gather = bool(buffer)
            else:
                # Under load a window runs from the previous hand-over, not from the end of
                # its fold: a batch is then taken every window_s (or as soon as its fold is
                # done, if that takes longer), not every window_s + fold.
                remaining = handed_over_at + window_s - loop.time()
                gather = remaining <= 0
                if gather:
                    await asyncio.sleep(0)  # the messages held during the fold come in
                else:
                    await stream.wait_for_stopped(full, timeout=remaining)
            if gather:  # until no message has come for linger_s (a backlog arrives one by one)
                started, seen = loop.time(), -1
                while seen < len(buffer) and not is_full() and loop.time() - started < window_s:
                    seen = len(buffer)
                    await asyncio.sleep(linger_s)
            if not buffer:
                light = True  # the load has stopped: wait for the next message, not a timer
                continue
            handed_over_at = loop.time()
            consuming = loop.create_future()
            batch = list(buffer)
            try:
                yield batch
            finally:
                buffer.clear()
                buffered_bytes = 0
                ready.clear()
                full.clear()
                notify(consuming)
                consumed.set()
            light = len(batch) < LIGHT_BATCH_MESSAGES
    finally:
        stream.enable_acks = acks_before
        stream._processors.remove(add_to_buffer)


def count_batch(stats) -> None:
    observed = metrics.aggregator()
    observed.batch_events.observe(stats.events)
    for outcome, count in (("folded", stats.new_events), ("duplicate", stats.duplicates),
                           ("dead_letter", stats.dead_letters)):
        if count:
            observed.events.labels(outcome).inc(count)


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


@dataclass(frozen=True)
class StreamConfig:
    """What the Faust app takes of the configuration (the composition root fills it in)."""
    group: str
    bootstrap: str
    events_topic: str
    dead_letter_topic: str
    partitions: int
    replication: int
    datadir: Path  # Faust's own directory: one per fold process
    session_timeout_s: float
    commit_interval_s: float
    fetch_wait_ms: int
    batch: int
    batch_seconds: float
    linger_ms: int
    batch_bytes: int
    security: KafkaSecurity = PLAINTEXT


def create_app(config: StreamConfig, aggregator_factory) -> faust.App:
    """aggregator_factory(dead_letter) -> Aggregator; the composition root supplies it."""
    _shorten_fetch_wait(config.fetch_wait_ms)
    config.datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    app = faust.App(
        config.group,
        broker=broker_urls(config.bootstrap),
        broker_credentials=config.security.faust_credentials(),
        store="memory://",
        # Faust's default is a directory in the working directory; one per fold process
        datadir=str(config.datadir),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        broker_commit_interval=config.commit_interval_s,
    )
    events_topic = app.topic(config.events_topic, value_serializer="raw", key_serializer="raw",
                             partitions=config.partitions, replicas=config.replication)
    dead_letters = app.topic(config.dead_letter_topic, value_serializer="raw", key_serializer="raw",
                             partitions=1, replicas=config.replication)

    async def dead_letter(payload: bytes, reason: str) -> None:
        delivery = await dead_letters.send(value=payload, headers={DEAD_LETTER_REASON_HEADER: reason.encode()[:4096]})
        await delivery  # durable before the source offset is acknowledged
        metrics.aggregator().dead_letters.labels(metrics.reason_kind(reason)).inc()

    metrics.aggregator()  # shown from the start, before the first batch
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
            started = time.perf_counter()
            await aggregator.commit(prepared)
            metrics.aggregator().write_seconds.observe(time.perf_counter() - started)
            metrics.aggregator().last_write.set_to_current_time()
            count_batch(prepared.stats)  # after the write: rows the store refused became dead letters
            for event in batch:
                await stream.ack(event)
            log.debug("batch: %s", prepared.stats)

        try:
            async for batch in adaptive_take(stream, config.batch, config.batch_seconds,
                                             config.linger_ms / 1000, config.batch_bytes):
                started = time.perf_counter()
                prepared = await aggregator.prepare([event.value for event in batch])
                metrics.aggregator().fold_seconds.observe(time.perf_counter() - started)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(commit_then_ack(prepared, batch))
        finally:
            if writing is not None and not writing.done():
                await writing

    return app

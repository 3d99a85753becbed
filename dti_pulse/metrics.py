"""What every process tells Prometheus: one set of metrics, defined here, and the ways they
are served (/metrics on ingest's and the console's own port; a port of its own for the
processes that serve no HTTP: the aggregator, ranking, the state store).

Label values come from fixed vocabularies (route templates, gRPC method names, reason
kinds), never from what a client sent: a sender cannot grow the series without bound.

Ingest runs several worker processes behind one port: `serve ingest` points
PROMETHEUS_MULTIPROC_DIR at a directory of its own before the workers start, and /metrics
then sums what every worker counted.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import shutil
import time
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)
access_log = logging.getLogger("dti_pulse.access")

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from a fast lookup (~1 ms) to a stalled write (~30 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 10, 50, 100, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 100_000)

class IngestMetrics:
    def __init__(self):
        self.events = Counter("dti_ingest_events_total", "Events ingest answered for, by outcome (accepted: "
                              "durable in Kafka, duplicates included; duplicate; rejected)", ["outcome"])
        self.rejected = Counter("dti_ingest_rejected_total", "Events ingest refused, by reason kind", ["reason"])
        self.batch_events = Histogram("dti_ingest_batch_events", "Events in a request ingest took",
                                      buckets=SIZE_BUCKETS)
        self.publish_seconds = Histogram("dti_ingest_publish_seconds",
                                         "From a batch handed to Kafka to its acknowledgement", buckets=LATENCY_BUCKETS)
        self.unacknowledged = Counter("dti_ingest_unacknowledged_batches_total",
                                      "Batches Kafka did not acknowledge (answered 503: the sender retries)")


class HttpMetrics:
    def __init__(self):
        self.requests = Counter("dti_http_requests_total", "HTTP requests answered",
                                ["service", "route", "method", "status"])
        self.seconds = Histogram("dti_http_request_duration_seconds",
                                 "HTTP requests, from arrival to the last byte sent", ["service", "route"],
                                 buckets=LATENCY_BUCKETS)


class AggregatorMetrics:
    def __init__(self):
        self.events = Counter("dti_aggregator_events_total",
                              "Events the aggregator read, by outcome (folded, duplicate, dead_letter)", ["outcome"])
        self.dead_letters = Counter("dti_dead_letters_total", "Events sent to the dead-letter topic, by reason kind",
                                    ["reason"])
        self.batch_events = Histogram("dti_aggregator_batch_events", "Events in a batch the aggregator folded",
                                      buckets=SIZE_BUCKETS)
        self.fold_seconds = Histogram("dti_aggregator_fold_seconds", "Folding a batch into entity states",
                                      buckets=LATENCY_BUCKETS)
        self.write_seconds = Histogram("dti_aggregator_write_seconds", "Writing a folded batch's states to ClickHouse",
                                       buckets=LATENCY_BUCKETS)
        self.last_write = Gauge("dti_aggregator_last_write_timestamp_seconds", "When the aggregator last wrote a batch")


class RankingMetrics:
    def __init__(self):
        self.requests = Counter("dti_grpc_requests_total", "gRPC calls answered, by method and status code",
                                ["method", "code"])
        self.seconds = Histogram("dti_grpc_request_duration_seconds", "gRPC calls, from arrival to the last message",
                                 ["method"], buckets=LATENCY_BUCKETS)
        self.data_changed = Gauge("dti_ranking_data_changed_timestamp_seconds",
                                  "When ranking last learned that the data its scores count changed")


# Each service's metrics exist once that service uses them: a process shows only its own.
ingest, http, aggregator, ranking = (functools.cache(kind) for kind in
                                     (IngestMetrics, HttpMetrics, AggregatorMetrics, RankingMetrics))


class PipelineGauges:
    """The pipeline as ranking's monitor last saw it (services/ranking/pipeline.py), read at
    each scrape: the aggregator's lag per partition, whether it is stalled, dead letters
    waiting, the store and the broker reachable."""

    def __init__(self):
        self.snapshot = None  # () -> the monitor's PipelineSnapshot; None: no monitor in this process

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        if self.snapshot is None:
            return
        s = self.snapshot()
        lag = GaugeMetricFamily("dti_consumer_lag", "Messages of the events topic the aggregator has not "
                                "committed past, by partition", labels=["partition"])
        for partition, behind in s.lag_by_partition:
            lag.add_metric([str(partition)], behind)
        yield lag
        for name, text, value in (
                ("dti_pipeline_healthy", "1 when every part of the pipeline works", s.healthy),
                ("dti_store_up", "1 when ClickHouse answers ranking", s.store_reachable),
                ("dti_broker_up", "1 when Kafka answers ranking", s.broker_reachable),
                ("dti_aggregator_stalled", "1 when the aggregator is behind and has not moved for the stall time",
                 s.aggregator_stalled),
                ("dti_dead_letters_waiting", "Messages in the dead-letter topic", s.dead_letters),
                ("dti_pipeline_checked_timestamp_seconds", "When the monitor last looked", s.checked_at_ms / 1000)):
            yield GaugeMetricFamily(name, text, value=float(value))


PIPELINE = PipelineGauges()
if not os.environ.get(MULTIPROCESS_DIR):  # ingest's workers have no monitor
    from prometheus_client import REGISTRY as _REGISTRY

    _REGISTRY.register(PIPELINE)

_FIELD = re.compile(r"field '([a-z_]{1,40})'")
_KINDS = (  # (a phrase of the reason, its kind), first match wins
    ("may not send for", "foreign_agency"),
    ("not in service on", "agency_not_in_service"),
    ("unknown agency", "unknown_agency"),
    ("unknown event type", "unknown_type"),
    ("must be a JSON object", "not_an_object"),
    ("undecodable EventBatch", "undecodable"),
    ("empty message", "empty_message"),
    ("no events", "no_events"),
    ("no event_id", "no_event_id"),
    ("state unreadable", "state_unreadable"),
    ("cannot fold", "unfoldable"),
    ("cannot store", "row_rejected"),
)


def reason_kind(reason: str) -> str:
    """The kind of a refusal's reason, for a label: a fixed phrase, or the field it names
    (`field_due_at`), else `other`. The reason itself goes to the sender and the dead letter."""
    for phrase, kind in _KINDS:
        if phrase in reason:
            return kind
    found = _FIELD.search(reason)
    return f"field_{found.group(1)}" if found else "other"


def prepare_multiprocess(directory: Path) -> None:
    """Before worker processes start: their metrics go to files in `directory` (emptied: a
    previous run's counts must not add to this one's), summed at each scrape."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR] = str(directory)


def exposition() -> tuple[bytes, str]:
    """This process's metrics (every worker's, under PROMETHEUS_MULTIPROC_DIR) in the text format."""
    if os.environ.get(MULTIPROCESS_DIR):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_metrics(host: str, port: int, certfile: Path | None = None, keyfile: Path | None = None):
    """/metrics on a port of its own (from a thread), for a process that serves no HTTP.
    Returns the server (shutdown() stops it), or None when port is 0."""
    if not port:
        return None
    from prometheus_client import start_http_server

    tls = {"certfile": str(certfile), "keyfile": str(keyfile)} if certfile and keyfile else {}
    server, _ = start_http_server(port, addr=host, **tls)
    log.info("metrics on %s:%d/metrics", host, port)
    return server


class ObservedHttp:
    """ASGI middleware: counts and times every HTTP request by its route template (not its
    path), and logs one access line a request on `dti_pulse.access` (INFO)."""

    def __init__(self, app, service: str, clock=time.perf_counter):
        self.app, self.service, self.clock = app, service, clock
        http()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = self.clock(), 500

        async def send_observed(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed = self.clock() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            observed = http()
            observed.requests.labels(self.service, route, scope["method"], str(status)).inc()
            observed.seconds.labels(self.service, route).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):  # DTI_ACCESS_LOG (dti_pulse.logs)
                client = scope.get("client")
                access_log.info("%s %s %s %d %.1f ms", client[0] if client else "-", scope["method"],
                                scope["path"], status, elapsed * 1000)


def grpc_metrics_interceptor():
    """A grpc.aio server interceptor counting and timing every call by method and status
    code; first in the list, so refusals by the interceptors after it count too."""
    import grpc

    class GrpcMetrics(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation, handler_call_details):
            handler = await continuation(handler_call_details)
            if handler is None:
                return None
            return _observed(handler, handler_call_details.method)

    return GrpcMetrics()


def _finished(method: str, context, started: float, outcome: str) -> None:
    """outcome: what the call came to when its handler set no code (OK, UNKNOWN, CANCELLED)."""
    code = context.code()
    name = outcome if code is None else getattr(code, "name", str(code))
    ranking().requests.labels(method, name).inc()
    ranking().seconds.labels(method).observe(time.perf_counter() - started)


def _observed(handler, method: str):
    import grpc

    if handler.request_streaming:
        return handler  # reflection's stream-stream calls: not counted
    if handler.response_streaming:
        async def stream(request, context):
            started, outcome = time.perf_counter(), "UNKNOWN"
            try:
                async for message in handler.unary_stream(request, context):
                    yield message
                outcome = "OK"
            except asyncio.CancelledError:
                outcome = "CANCELLED"  # the client went away (a console tab closed)
                raise
            finally:
                _finished(method, context, started, outcome)

        return grpc.unary_stream_rpc_method_handler(stream, request_deserializer=handler.request_deserializer,
                                                    response_serializer=handler.response_serializer)

    async def unary(request, context):
        started, outcome = time.perf_counter(), "UNKNOWN"
        try:
            response = await handler.unary_unary(request, context)
            outcome = "OK"
            return response
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            raise
        finally:
            _finished(method, context, started, outcome)

    return grpc.unary_unary_rpc_method_handler(unary, request_deserializer=handler.request_deserializer,
                                               response_serializer=handler.response_serializer)

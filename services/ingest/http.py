"""HTTP entrypoint of ingest: POST /v1/events, health, readiness, OpenAPI."""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Awaitable, Callable, Mapping

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dti_pulse import metrics
from dti_pulse.credentials import bearer_credential, caller_of
from dti_pulse.events import EVENT_TYPES
from dti_pulse.http import json_response, metrics_endpoint, problem
from services.ingest.publisher import NotAcknowledged
from services.ingest.service import IngestService

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5


def _source_for(request: Request, tokens: Mapping[str, str]) -> str | None:
    return caller_of(tokens, bearer_credential(request.headers.get("authorization")))


class RecycledConnections:
    """ASGI middleware: the first answer on a keep-alive connection that is max_age_s old
    says `Connection: close`, and the client opens a new one.

    Worker processes share one listening socket, and a connection stays with the worker
    that accepted it. Clients that open their connections at once (the bus's pool, a
    load generator) could all land on one worker and keep it busy while the other idled:
    2 workers then took no more than 1 (bench/README.md). A
    new connection is accepted by whichever worker is waiting, so recycled connections
    drift to the idle one. max_age_s <= 0 keeps connections for good."""

    SWEEP_ABOVE = 4096  # clients remembered before the ones that left are forgotten

    def __init__(self, app, max_age_s: float, clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.max_age_s = max_age_s
        self.clock = clock
        self._opened_at: dict[tuple, float] = {}  # the client's address and port -> its first request

    async def __call__(self, scope, receive, send):
        client = scope.get("client") if scope["type"] == "http" and self.max_age_s > 0 else None
        if client is None:
            return await self.app(scope, receive, send)
        now, client = self.clock(), tuple(client)
        opened_at = self._opened_at.setdefault(client, now)
        if now - opened_at < self.max_age_s:
            if len(self._opened_at) > self.SWEEP_ABOVE:
                self._forget_older_than(now - self.max_age_s)
            return await self.app(scope, receive, send)
        del self._opened_at[client]

        async def send_closing(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)

    def _forget_older_than(self, cutoff: float) -> None:
        # A connection that closed on its own leaves its entry; a port used again by a new
        # connection would at worst be recycled at its first answer.
        self._opened_at = {client: at for client, at in self._opened_at.items() if at >= cutoff}


def create_app(service: IngestService, tokens: Mapping[str, str], ready: Callable[[], Awaitable[bool]],
               max_body_bytes: int, max_events: int, on_shutdown: Callable[[], Awaitable[None]] | None = None,
               connection_max_age_s: float = 0.0) -> Starlette:
    metrics.ingest()  # shown from the start

    async def post_events(request: Request) -> Response:
        source = _source_for(request, tokens)
        if source is None:
            return problem(401, "Unauthorized", "a valid 'Authorization: Bearer <token>' header is required",
                           {"WWW-Authenticate": 'Bearer realm="dti-pulse-ingest"'})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return problem(415, "Unsupported Media Type", "the body must be application/json")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return problem(413, "Payload Too Large", f"the body is over {max_body_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                return problem(413, "Payload Too Large", f"the body is over {max_body_bytes} bytes")
        # A batch of valid events, the usual case, is validated at once; any other goes
        # event by event, so that each refused event gets its reason.
        valid = service.valid_batch(body, source)
        if valid is None:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                return problem(400, "Bad Request", f"the body is not valid JSON: {exc}")
            if not isinstance(document, dict) or not isinstance(document.get("events"), list):
                return problem(400, "Bad Request", 'the body must be a JSON object {"events": [...]}')
            events = document["events"]
        else:
            events = valid
        if len(events) > max_events:
            return problem(413, "Payload Too Large", f"a batch holds at most {max_events} events, got {len(events)}")
        try:
            result = await (service.ingest(events, source) if valid is None else service.ingest_valid(valid))
        except NotAcknowledged as exc:
            log.warning("batch of %d events not acknowledged by Kafka: %s", len(events), exc)
            return problem(503, "Service Unavailable",
                           "Kafka did not acknowledge the batch; none of it was accepted, send it again",
                           {"Retry-After": str(RETRY_AFTER_S)})
        count_outcome(result, len(events))
        return json_response(result.as_json())

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if await ready():
            return json_response({"status": "ready"})
        return problem(503, "Service Unavailable", "Kafka is not reachable", {"Retry-After": str(RETRY_AFTER_S)})

    async def openapi(request: Request) -> Response:
        return json_response(OPENAPI)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if on_shutdown:
            await on_shutdown()  # flushes what Kafka has not yet acknowledged

    return Starlette(routes=[
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ], lifespan=lifespan, middleware=[Middleware(metrics.ObservedHttp, service="ingest"),
                                      Middleware(RecycledConnections, max_age_s=connection_max_age_s)])


def count_outcome(result, batch_events: int) -> None:
    """A request's events by outcome, and its size."""
    observed = metrics.ingest()
    observed.batch_events.observe(batch_events)
    observed.events.labels("accepted").inc(result.accepted)
    if result.duplicates:
        observed.events.labels("duplicate").inc(result.duplicates)
    if result.rejected:
        observed.events.labels("rejected").inc(len(result.rejected))
        kinds: dict[str, int] = {}
        for refusal in result.rejected:
            kind = metrics.reason_kind(refusal["reason"])
            kinds[kind] = kinds.get(kind, 0) + 1
        for kind, count in kinds.items():
            observed.rejected.labels(kind).inc(count)


_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_RESPONSE = {"content": {"application/problem+json": {"schema": _PROBLEM}}}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "dti-pulse ingest", "version": "1.0.0",
             "description": "Events from the LGSP bus. Field names and codes: docs/domain.md, Events."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Problem": {"type": "object", "required": ["title", "status", "detail"], "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"}}},
            "Event": {
                "type": "object",
                "required": ["event_id", "type", "occurred_at", "agency_code"],
                "additionalProperties": True,
                "properties": {
                    "event_id": {"type": "string", "format": "uuid"},
                    "type": {"type": "string", "enum": list(EVENT_TYPES)},
                    "occurred_at": {"type": "string", "format": "date-time"},
                    "agency_code": {"type": "string", "example": "000.00.00.H56"},
                },
                "description": "Plus the fields of its type (snake_case names of docs/domain.md, Events).",
            },
            "Batch": {"type": "object", "required": ["events"], "properties": {
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}},
            "BatchResult": {"type": "object", "required": ["accepted", "rejected"], "properties": {
                "accepted": {"type": "integer", "description": "valid events now durable in Kafka, duplicates included"},
                "duplicates": {"type": "integer", "description": "accepted events already seen (not published again)"},
                "rejected": {"type": "array", "items": {"type": "object", "required": ["index", "reason"], "properties": {
                    "index": {"type": "integer"}, "reason": {"type": "string"}}}}}},
        },
    },
    "paths": {
        "/v1/events": {"post": {
            "summary": "Submit a batch of bus events",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}}},
            "responses": {
                "200": {"description": "Valid events accepted (durable); invalid ones listed with reasons",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}}},
                "400": {"description": "The body is not a batch", **_PROBLEM_RESPONSE},
                "401": {"description": "Missing or unknown bearer token", **_PROBLEM_RESPONSE},
                "413": {"description": "Body or batch too large", **_PROBLEM_RESPONSE},
                "415": {"description": "Not application/json", **_PROBLEM_RESPONSE},
                "503": {"description": "Kafka did not acknowledge; nothing of the batch was accepted (see Retry-After)",
                        **_PROBLEM_RESPONSE},
            }}},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "Readiness (Kafka reachable)", "responses": {
            "200": {"description": "ready"}, "503": {"description": "not ready", **_PROBLEM_RESPONSE}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (every worker's)", "responses": {
            "200": {"description": "the text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    },
}

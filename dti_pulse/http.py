"""JSON and RFC 9457 problem responses, shared by the HTTP entrypoints (ingest, console)."""
from __future__ import annotations

from typing import Mapping

import orjson
from starlette.responses import Response


def json_response(body, status: int = 200, headers: Mapping[str, str] | None = None,
                  media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=dict(headers or {}), media_type=media_type)


def problem(status: int, title: str, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    """RFC 9457 problem details."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return json_response(body, status, headers, media_type="application/problem+json")


async def metrics_endpoint(request) -> Response:
    """GET /metrics: this process's metrics (all its workers') for Prometheus."""
    from dti_pulse.metrics import exposition

    body, content_type = exposition()
    return Response(body, media_type=content_type)

"""HTTP entrypoint of the operations-centre console: the page, its assets, a JSON API and
one Server-Sent-Events stream per page, all fed by the ranking service over gRPC.

No SQL and no scoring here: the gateway only translates gRPC to JSON and pushes.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import grpc
import orjson
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dti_pulse.events import ACTIVITY_TYPES
from dti_pulse.http import json_response, metrics_endpoint, problem
from dti_pulse.metrics import ObservedHttp
from services.console import exports
from services.console.auth import Authenticator
from services.console.ranking_client import RankingClient
from services.console.views import LIVE_RATES, PERIOD_ALIASES, resolve_period

log = logging.getLogger(__name__)
audit_log = logging.getLogger("dti_pulse.audit")
STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "dti_console_session"
COHORTS = ("department", "commune", "district", "province")  # the province: its total (ranking's totals)
_GRPC_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: (400, "Bad Request"), grpc.StatusCode.NOT_FOUND: (404, "Not Found"),
                grpc.StatusCode.UNAVAILABLE: (503, "Service Unavailable"),
                grpc.StatusCode.DEADLINE_EXCEEDED: (504, "Gateway Timeout")}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class VendorAssets:
    """Browser libraries installed from the npm registry at build time (services/console/web)."""
    root: Path  # the node_modules folder

    @property
    def folders(self) -> dict[str, Path]:
        return {"uplot": self.root / "uplot" / "dist", "font": self.root / "@fontsource" / "be-vietnam-pro"}

    def missing(self) -> list[str]:
        return [str(path) for path in self.folders.values() if not path.is_dir()]


class BackendMonitor:
    """Whether the ranking service answers, checked every interval for all pages at once."""

    def __init__(self, client: RankingClient, interval_s: float):
        self.client, self.interval_s = client, interval_s
        self.reachable: bool | None = None
        self.pipeline: dict | None = None  # which part of the pipeline does not work (ranking's view)
        self.checked_at_ms = 0
        self._task: asyncio.Task | None = None

    async def check(self) -> bool:
        timeout_s = max(0.5, self.interval_s * 0.75)
        self.reachable = await self.client.healthy(timeout_s=timeout_s)
        try:
            # Asked even when ranking does not serve: it says which part is down (its store, Kafka).
            self.pipeline = await self.client.pipeline(timeout_s=timeout_s)
        except grpc.aio.AioRpcError:
            self.pipeline = None
        self.checked_at_ms = int(time.time() * 1000)
        return self.reachable

    def start(self) -> None:
        async def loop():
            while True:
                was = self.reachable
                if await self.check() != was:
                    log.warning("ranking service %s", "reachable" if self.reachable else "UNREACHABLE")
                await asyncio.sleep(self.interval_s)
        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def status(self) -> dict:
        return {"backend": "ok" if self.reachable else "unreachable", "checked_at": self.checked_at_ms,
                "server_time": int(time.time() * 1000), "pipeline": self.pipeline}


def _sse(event: str, data) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def log_audit(record: dict) -> None:
    audit_log.info("%s", orjson.dumps(record).decode())


def create_app(client: RankingClient, auth: Authenticator, assets: VendorAssets, heartbeat_s: float = 2.0,
               secure_cookies: bool = False, audit: Callable[[dict], None] = log_audit) -> Starlette:
    monitor = BackendMonitor(client, heartbeat_s)

    def record(request: Request, event: str, user: str | None, **details) -> None:
        """Who did what, from where, when: logins, failures, logouts, exports."""
        audit({"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event, "user": user,
               "client": client_address(request), **details})

    def viewer(request: Request) -> str | None:
        return auth.session_user(request.cookies.get(SESSION_COOKIE)) or auth.token_user(
            request.headers.get("authorization"))

    def unauthorized() -> Response:
        return problem(401, "Unauthorized", "log in, or send 'Authorization: Bearer <token>'",
                       {"WWW-Authenticate": 'Bearer realm="dti-pulse-console"'})

    def grpc_problem(exc: grpc.aio.AioRpcError) -> Response:
        status, title = _GRPC_STATUS.get(exc.code(), (502, "Bad Gateway"))
        detail = exc.details() or exc.code().name
        if status >= 500:
            log.warning("ranking call failed: %s %s", exc.code().name, detail)
            detail = f"the ranking service did not answer ({exc.code().name.lower()}): {detail}"
        return problem(status, title, detail, {"Retry-After": "2"} if status in (503, 504) else None)

    def api(handler):
        """Requires a viewer; turns the ranking service's errors into problem responses."""
        async def endpoint(request: Request) -> Response:
            if viewer(request) is None:
                return unauthorized()
            try:
                return await handler(request)
            except grpc.aio.AioRpcError as exc:
                return grpc_problem(exc)
            except BadParameter as exc:
                return problem(400, "Bad Request", str(exc))
        return endpoint

    def period_of(request: Request) -> str:
        return resolve_period(request.query_params.get("period") or "month")

    def cohort_of(request: Request, required: bool = True) -> str:
        cohort = request.query_params.get("cohort", "department" if required else "")
        if cohort and cohort not in COHORTS:
            raise BadParameter(f"cohort {cohort!r} is not one of {', '.join(COHORTS)}")
        return cohort

    def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
        raw = request.query_params.get(name)
        try:
            value = default if raw in (None, "") else int(raw)
        except ValueError:
            raise BadParameter(f"{name} must be an integer") from None
        if not low <= value <= high:
            raise BadParameter(f"{name} must be {low}..{high}")
        return value

    def lang_of(request: Request) -> str:
        lang = request.query_params.get("lang", "vi")
        if lang not in exports.LANGUAGES:
            raise BadParameter(f"lang must be one of {', '.join(exports.LANGUAGES)}")
        return lang

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={**_HEADERS, "Cache-Control": "no-cache"})

    def with_session(response: Response, cookie: str) -> Response:
        response.set_cookie(SESSION_COOKIE, cookie, max_age=int(auth.session_s), httponly=True, samesite="strict",
                            secure=secure_cookies, path="/")
        return response

    async def login(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            name, password = str(body["username"]), str(body["password"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return problem(400, "Bad Request", 'send JSON {"username": ..., "password": ...}')
        address = client_address(request)
        wait_s = auth.locked_for(name, address)
        if wait_s:
            record(request, "login-delayed", name, wait_s=round(wait_s))
            return problem(429, "Too Many Requests", f"too many failed logins for {name!r} from here; try again in "
                           f"{wait_s:.0f} s", {"Retry-After": str(int(wait_s) + 1)})
        cookie = auth.login(name, password, address)
        if cookie is None:
            record(request, "login-failed", name)
            return problem(401, "Unauthorized", "wrong user name or password")
        record(request, "login", name)
        return with_session(json_response({"user": name}), cookie)

    async def session(request: Request) -> Response:
        user = viewer(request)
        if not user:
            return unauthorized()
        renewed = auth.renewal(request.cookies.get(SESSION_COOKIE))
        response = json_response({"user": user})
        return with_session(response, renewed) if renewed else response

    async def kiosk(request: Request) -> Response:
        """A wall screen's link: a console token in the query, swapped for a session cookie
        and taken out of the address bar by the redirect."""
        name = auth.token_user(f"Bearer {request.query_params.get('token', '')}")
        if name is None:
            record(request, "login-failed", None, via="kiosk")
            return problem(401, "Unauthorized", "unknown or missing token")
        record(request, "login", name, via="kiosk")
        # ?rotate=N: the wall view (large type, no tools), cohorts in turn every N seconds
        rotate = request.query_params.get("rotate", "")
        location = f"/#/wall/{int(rotate)}" if rotate.isdigit() and 5 <= int(rotate) <= 3600 else "/"
        return with_session(Response(status_code=303, headers={"Location": location, "Cache-Control": "no-store"}),
                            auth.issue(name))

    async def logout(request: Request) -> Response:
        user = auth.revoke(request.cookies.get(SESSION_COOKIE))
        if user:
            record(request, "logout", user)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def meta(request: Request) -> Response:
        return json_response({"cohorts": list(COHORTS), "activity_types": list(ACTIVITY_TYPES),
                              "live_rates": list(LIVE_RATES),
                              "periods": {alias: resolve_period(alias) for alias in PERIOD_ALIASES},
                              "rules": await client.rules(), **monitor.status()})

    async def ranking(request: Request) -> Response:
        return json_response(await client.ranking(cohort_of(request), period_of(request)))

    async def agency(request: Request) -> Response:
        return json_response(await client.score(request.path_params["code"], period_of(request)))

    async def trend(request: Request) -> Response:
        granularity = request.query_params.get("granularity", "day")
        return json_response(await client.trend(request.path_params["code"], granularity,
                                                int_param(request, "points", 0, 0, 366)))

    async def explain(request: Request) -> Response:
        indicator = request.query_params.get("indicator", "")
        if not indicator:
            raise BadParameter("indicator is required")
        return json_response(await client.explain(request.path_params["code"], indicator, period_of(request),
                                                  request.query_params.get("page_token", ""),
                                                  int_param(request, "page_size", 50, 1, 1000)))

    async def due(request: Request) -> Response:
        return json_response(await client.due(request.path_params["code"], int_param(request, "within_hours", 0, 0, 168)))

    async def alerts(request: Request) -> Response:
        return json_response(await client.alerts(request.query_params.get("agency", "")))

    async def activity(request: Request) -> Response:
        return json_response(await client.activity(request.query_params.get("agency", ""),
                                                   int_param(request, "minutes", 60, 1, 1440)))

    async def export_ranking(request: Request) -> Response:
        fmt, lang = request.path_params["format"], lang_of(request)
        data = await client.ranking(cohort_of(request), period_of(request))
        record(request, "export", viewer(request), what=f"ranking {data['cohort']} {data['period']}", format=fmt)
        stem = f"ranking-{data['cohort']}-{data['period']}"
        if fmt == "pdf":  # the report as the province files it (reports.py)
            from services.console.reports import ranking_pdf

            return _attachment(await asyncio.to_thread(ranking_pdf, data, lang), fmt, stem)
        return _file(exports.ranking_table(data, lang), fmt, stem)

    async def export_agency(request: Request) -> Response:
        fmt, lang = request.path_params["format"], lang_of(request)
        data = await client.score(request.path_params["code"], period_of(request))
        record(request, "export", viewer(request), what=f"agency {data['agency_code']} {data['period']}", format=fmt)
        return _file(exports.agency_table(data, lang), fmt, f"agency-{data['agency_code']}-{data['period']}")

    async def stream(request: Request) -> Response:
        """One page's live feed: ranking / activity / score events as the ranking service
        pushes them, and a status event (backend reachable or not) every heartbeat."""
        if viewer(request) is None:
            return unauthorized()
        try:
            cohort = cohort_of(request, required=False)
            minutes = int_param(request, "minutes", 60, 1, 1440)
        except BadParameter as exc:
            return problem(400, "Bad Request", str(exc))
        alias = request.query_params.get("period") or "month"
        period = resolve_period(alias)
        watches = client.watches(cohort, period, request.query_params.get("agency", ""), minutes)
        queue: asyncio.Queue = asyncio.Queue(maxsize=64)

        async def pump(name: str, open_stream) -> None:
            delay = 0.5
            while True:
                try:
                    async for data in open_stream():
                        delay = 0.5
                        await queue.put((name, data))
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                        await queue.put(("problem", {"stream": name, "status": exc.code().name,
                                                     "detail": exc.details()}))
                        return
                    monitor.reachable = False
                    await queue.put(("status", monitor.status() | {"detail": exc.code().name}))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)

        async def events():
            tasks = [asyncio.create_task(pump(name, open_stream)) for name, open_stream in watches.items()]
            try:
                yield b"retry: 2000\n" + _sse("status", monitor.status() | {"period": period})
                while True:
                    try:
                        name, data = await asyncio.wait_for(queue.get(), heartbeat_s)
                    except asyncio.TimeoutError:
                        if resolve_period(alias) != period:  # midnight: the page reconnects for the new day
                            yield _sse("period", {"period": resolve_period(alias)})
                            return
                        name, data = "status", monitor.status()
                    yield _sse(name, data)
            finally:
                for task in tasks:
                    task.cancel()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def healthz(request: Request) -> Response:
        return json_response(monitor.status(), 200 if monitor.reachable else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await monitor.check()
        monitor.start()
        try:
            yield
        finally:
            await monitor.stop()
            await client.close()

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/kiosk", kiosk),
        Route("/api/session", login, methods=["POST"]),
        Route("/api/session", session, methods=["GET"]),
        Route("/api/session", logout, methods=["DELETE"]),
        Route("/api/meta", api(meta)),
        Route("/api/ranking", api(ranking)),
        Route("/api/agencies/{code}", api(agency)),
        Route("/api/agencies/{code}/trend", api(trend)),
        Route("/api/agencies/{code}/explain", api(explain)),
        Route("/api/agencies/{code}/due", api(due)),
        Route("/api/activity", api(activity)),
        Route("/api/alerts", api(alerts)),
        Route("/api/stream", stream),
        Route("/api/export/ranking.{format:str}", api(export_ranking)),
        Route("/api/export/agencies/{code}.{format:str}", api(export_agency)),
        Mount("/static", StaticFiles(directory=STATIC_DIR)),
        *(Mount(f"/vendor/{name}", StaticFiles(directory=folder, check_dir=False))
          for name, folder in assets.folders.items()),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(ObservedHttp, service="console"),
                                                                      Middleware(SameOriginWrites)])
    app.state.monitor = monitor
    return app


class BadParameter(ValueError):
    pass


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


class SameOriginWrites:
    """Refuses a state-changing request a browser sent from another site (cross-site request
    forgery: a form or a `text/plain` fetch needs no preflight). A browser says where a
    request comes from in Sec-Fetch-Site and Origin; scripts send neither, and need a
    credential of their own anyway."""

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in self.SAFE:
            headers = Headers(scope=scope)
            site, origin = headers.get("sec-fetch-site"), headers.get("origin")
            foreign = (site is not None and site not in ("same-origin", "none")) or (
                origin is not None and urlsplit(origin).netloc != headers.get("host", ""))
            if foreign:
                await problem(403, "Forbidden", "cross-site requests may not change anything here")(scope, receive, send)
                return
        await self.app(scope, receive, send)


_MEDIA = {"csv": "text/csv; charset=utf-8",
          "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _file(table: exports.Table, fmt: str, stem: str) -> Response:
    if fmt not in _MEDIA:
        raise BadParameter(f"format {fmt!r} is not one of {', '.join(_MEDIA)}")
    return _attachment(exports.to_csv(table) if fmt == "csv" else exports.to_xlsx(table), fmt, stem)


def _attachment(body: bytes, fmt: str, stem: str) -> Response:
    return Response(body, media_type={**_MEDIA, "pdf": "application/pdf"}[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})

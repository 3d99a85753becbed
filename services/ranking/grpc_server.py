"""gRPC entrypoint of ranking: RankingService with health checking and reflection."""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Mapping

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from dti_pulse import metrics
from dti_pulse.events import ACTIVITY_TYPES
from dti_pulse.localtime import LOCAL_TZ
from services.ranking.auth import BearerTokenInterceptor
from services.ranking.background import BackgroundLoop
from services.ranking.pipeline import PipelineMonitor, PipelineSnapshot
from services.ranking.scoring import IndicatorResult
from services.ranking.measures import INSTANT_FACTS
from services.ranking.service import BadRequest, NotFound, RankingService, ScoredAgency

log = logging.getLogger(__name__)
SERVICE_NAME = ranking_pb2.DESCRIPTOR.services_by_name["RankingService"].full_name


def _timestamp(ms: int):
    from google.protobuf.timestamp_pb2 import Timestamp
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def _indicator(result: IndicatorResult) -> ranking_pb2.IndicatorScore:
    message = ranking_pb2.IndicatorScore(code=result.code, group=result.group, numerator=result.numerator,
                                         denominator=result.denominator, max_points=result.max_points,
                                         note=result.note, components=[_indicator(c) for c in result.components],
                                         portal_code=result.portal_code)
    if result.ratio is not None:
        message.ratio = result.ratio
    if result.points is not None:
        message.points = result.points
    return message


def agency_score_message(scored: ScoredAgency) -> ranking_pb2.AgencyScore:
    score = scored.score
    message = ranking_pb2.AgencyScore(
        agency_code=scored.agency.code, agency_name=scored.agency.name, cohort=scored.cohort,
        period=scored.period.label, period_start=_timestamp(scored.period.start_ms),
        period_end=_timestamp(scored.period.end_ms), indicators=[_indicator(i) for i in score.indicators],
        total_points=score.total_points, max_points=score.max_points, band=score.band,
        rules_version=scored.rules.version, computed_at=_timestamp(scored.computed_at_ms),
        indices=[ranking_pb2.IndexTotal(index=i.index, points=i.points, max_points=i.max_points,
                                        index_max_points=i.index_max_points) for i in score.indices])
    if score.fraction is not None:
        message.fraction = score.fraction
    return message


def _as_of_ms(request) -> int | None:
    return request.as_of.ToMilliseconds() if request.HasField("as_of") else None


def _fact(label: str, value) -> str:
    if label in INSTANT_FACTS:
        if not value:
            return ""
        return datetime.fromtimestamp(value / 1000, LOCAL_TZ).isoformat(timespec="seconds")
    return str(value)


def _without_clock(message):
    """A copy without computed_at, to tell a changed score from a recomputed one."""
    copy = type(message)()
    copy.CopyFrom(message)
    copy.ClearField("computed_at")
    if isinstance(copy, ranking_pb2.Ranking):
        for entry in copy.entries:
            entry.score.ClearField("computed_at")
    elif isinstance(copy, ranking_pb2.AgencyTrend):
        for point in copy.points:
            point.ClearField("computed_at")
    return copy.SerializeToString(deterministic=True)


class RankingServicer(ranking_pb2_grpc.RankingServiceServicer):
    def __init__(self, service: RankingService, watch_interval_s: float = 1.0, cache_size: int = 4096,
                 monitor: PipelineMonitor | None = None, alerts=None):
        self.monitor = monitor
        self.alerts = alerts  # services/ranking/alerting.AlertLoop, or None
        self.service = service
        self.watch_interval_s = watch_interval_s
        self._answers: OrderedDict[tuple, tuple] = OrderedDict()
        self._cache_size = cache_size
        self._next_changes: dict[str, asyncio.Future] = {}  # kind -> resolved at its next change
        self._in_flight: dict[tuple, asyncio.Future] = {}  # (question, stamp) -> its answer being computed

    def data_changed(self, kind: str, agencies=None) -> None:
        """On the server's loop: wakes the watches of this kind of data."""
        waiting = self._next_changes.pop(kind, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(agencies)

    def _next_change(self, kind: str) -> asyncio.Future:
        waiting = self._next_changes.get(kind)
        if waiting is None or waiting.done():
            waiting = self._next_changes[kind] = asyncio.get_running_loop().create_future()
        return waiting

    async def _answer(self, compute, request, context, depends_on: str = "measures", agency_code: str = ""):
        """Answers a repeated question from memory while the data (of agency_code, when the
        answer is about one agency), the minute and the rules are unchanged: no thread hop,
        no query. The same question asked again while it is being computed waits for that
        computation: every watch wakes at the same change, and asks at once."""
        key = (compute.__name__, request.SerializeToString(deterministic=True))
        stamp = self.service.cache_stamp(depends_on, agency_code)
        if stamp is None:
            return await compute(request, context)
        cached = self._answers.get(key)
        if cached is not None and cached[0] == stamp:
            self._answers.move_to_end(key)
            return cached[1]
        flight_key = (key, stamp)
        flight = self._in_flight.get(flight_key)
        if flight is not None:
            try:
                return await asyncio.shield(flight)
            except Exception:  # reported to the asker it was computed for; this one asks on its own
                return await compute(request, context)
        flight = self._in_flight[flight_key] = asyncio.ensure_future(compute(request, context))

        def settled(done: asyncio.Future) -> None:
            del self._in_flight[flight_key]
            if not done.cancelled() and done.exception() is None:
                self._answers[key] = (stamp, done.result())
                self._answers.move_to_end(key)
                while len(self._answers) > self._cache_size:
                    self._answers.popitem(last=False)

        flight.add_done_callback(settled)
        # Shielded: the first asker going away does not cancel the answer the others wait for.
        return await asyncio.shield(flight)

    async def _call(self, context, function, *args):
        try:
            # chDB has no async client: queries run on a worker thread.
            return await asyncio.to_thread(function, *args)
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except BadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def _agency_score(self, request, context) -> ranking_pb2.AgencyScore:
        if not request.agency_code:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "agency_code is required")
        scored = await self._call(context, self.service.agency_score, request.agency_code, request.period,
                                  request.rules_version, _as_of_ms(request))
        return agency_score_message(scored)

    async def _ranking(self, request, context) -> ranking_pb2.Ranking:
        result = await self._call(context, self.service.ranking, request.cohort, request.period,
                                  request.rules_version, _as_of_ms(request))
        return ranking_pb2.Ranking(
            cohort=result.cohort, period=result.period.label, rules_version=result.rules.version,
            computed_at=_timestamp(result.computed_at_ms),
            entries=[ranking_pb2.RankingEntry(rank=e.score.rank, score=agency_score_message(e)) for e in result.entries])

    async def GetAgencyScore(self, request, context):
        return await self._answer(self._agency_score, request, context, agency_code=request.agency_code)

    async def ListRanking(self, request, context):
        return await self._answer(self._ranking, request, context)

    async def CompareRules(self, request, context):
        if not request.agency_code:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "agency_code is required")
        scored = await self._call(context, self.service.compare, request.agency_code, request.period,
                                  list(request.rules_versions), _as_of_ms(request))
        return ranking_pb2.CompareRulesResponse(scores=[agency_score_message(s) for s in scored])

    async def ExplainIndicator(self, request, context):
        try:
            offset = int(request.page_token or 0)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token is not one this service gave")
        result = await self._call(context, self.service.explain, request.agency_code, request.indicator_code,
                                  request.period, request.rules_version, _as_of_ms(request), offset,
                                  request.page_size or 50)
        return ranking_pb2.ExplainIndicatorResponse(
            agency_code=result.agency.code, period=result.period.label, rules_version=result.rules.version,
            indicator=_indicator(result.indicator), total_items=result.total,
            next_page_token="" if result.next_offset is None else str(result.next_offset),
            items=[ranking_pb2.CostItem(kind=result.kind, id=entity_id, reasons=[text for _, text in reasons],
                                        reason_codes=[code for code, _ in reasons],
                                        facts={k: _fact(k, v) for k, v in facts.items()},
                                        agency_code=of.code, agency_name=of.name)
                   for entity_id, of, reasons, facts in result.items])

    async def ListRules(self, request, context):
        rulesets = self.service.rules.rulesets()
        return ranking_pb2.ListRulesResponse(
            default_version=self.service.default_version, errors=self.service.rules.errors(),
            versions=[ranking_pb2.RulesVersion(version=r.version, title=r.title, source=r.source,
                                               indicator_codes=[i.code for i in r.indicators],
                                               critical_below=r.critical_below, warning_below=r.warning_below)
                      for r in rulesets.values()])

    async def _watch(self, compute, request, context, depends_on: str = "measures"):
        """Sends the current value, then each change. Looked at again as soon as the data
        changes (a write this process is told of, or one the version poll finds), and at
        least every watch interval (the judgement minute moves, rules reload). Between
        changes of what it depends on, the answer cache returns the very same message:
        nothing to compare."""
        last, last_message = None, None
        while True:
            change = self._next_change(depends_on)  # taken first: a change during compute wakes the next wait
            message = await compute(request, context)
            if message is not last_message:
                last_message = message
                fingerprint = _without_clock(message)
                if fingerprint != last:
                    last = fingerprint
                    yield message
            await asyncio.wait([change], timeout=self.watch_interval_s)

    async def _trend(self, request, context) -> ranking_pb2.AgencyTrend:
        if not request.agency_code:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "agency_code is required")
        points = await self._call(context, self.service.trend, request.agency_code, request.granularity,
                                  request.points, request.rules_version)
        return ranking_pb2.AgencyTrend(agency_code=request.agency_code, granularity=request.granularity,
                                       agency_name=points[0].agency.name if points else "",
                                       points=[agency_score_message(p) for p in points])

    async def GetAgencyTrend(self, request, context):
        return await self._answer(self._trend, request, context, agency_code=request.agency_code)

    async def _activity(self, request, context) -> ranking_pb2.Activity:
        result = await self._call(context, self.service.activity, request.agency_code, request.minutes)
        message = ranking_pb2.Activity(
            agency_code=result.agency_code, minutes=result.minutes, types=ACTIVITY_TYPES, totals=result.totals,
            per_minute=[ranking_pb2.ActivityMinute(minute=_timestamp(minute), events=events)
                        for minute, events in result.per_minute],
            agencies=[ranking_pb2.AgencyActivity(agency_code=code, agency_name=name, events=events)
                      for code, name, events in result.agencies],
            computed_at=_timestamp(result.computed_at_ms))
        if result.last_event_ms is not None:
            message.last_event_at.CopyFrom(_timestamp(result.last_event_ms))
        return message

    async def GetActivity(self, request, context):
        return await self._answer(self._activity, request, context, depends_on="activity")

    async def WatchActivity(self, request, context):
        async for message in self._watch(self.GetActivity, request, context, depends_on="activity"):
            yield message

    async def GetPipelineStatus(self, request, context):
        if self.monitor is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this ranking server watches no pipeline")
        return pipeline_status_message(self.monitor.snapshot)

    async def ListAlerts(self, request, context):
        if self.alerts is None:
            return ranking_pb2.AlertList()  # no rules loaded: nothing can fire
        firing, evaluated_at = self.alerts.firing()
        answer = ranking_pb2.AlertList(alerts=[
            ranking_pb2.Alert(rule=a.rule, severity=a.severity, agency_code=a.agency_code, agency_name=a.agency_name,
                              message=a.message, value=a.value, threshold=a.threshold, since=_timestamp(since))
            for a, since in firing if not request.agency_code or a.agency_code == request.agency_code])
        if evaluated_at is not None:
            answer.evaluated_at.CopyFrom(_timestamp(evaluated_at))
        return answer

    async def ListDueDossiers(self, request, context):
        agency, rows, now = await self._call(context, self.service.due_dossiers, request.agency_code,
                                             request.within_hours)
        dossiers = [ranking_pb2.DueDossier(dossier_id=i, procedure_code=p, received_at=_timestamp(r),
                                           due_at=_timestamp(d), state="overdue" if d < now else "due_soon",
                                           last_status=status) for i, p, r, d, status in rows]
        overdue = sum(d.state == "overdue" for d in dossiers)
        return ranking_pb2.DueDossiers(agency_code=agency.code, agency_name=agency.name, dossiers=dossiers,
                                       overdue=overdue, due_soon=len(dossiers) - overdue, computed_at=_timestamp(now))

    async def WatchAgencyScore(self, request, context):
        async for message in self._watch(self.GetAgencyScore, request, context):
            yield message

    async def WatchRanking(self, request, context):
        async for message in self._watch(self.ListRanking, request, context):
            yield message


def pipeline_status_message(snapshot: PipelineSnapshot) -> ranking_pb2.PipelineStatus:
    message = ranking_pb2.PipelineStatus(
        store_reachable=snapshot.store_reachable, kafka_watched=snapshot.kafka_watched,
        broker_reachable=snapshot.broker_reachable, aggregator_lag=snapshot.aggregator_lag,
        aggregator_stalled=snapshot.aggregator_stalled, dead_letters=snapshot.dead_letters,
        problems=list(snapshot.problems), checked_at=_timestamp(snapshot.checked_at_ms))
    if snapshot.aggregator_progress_at_ms is not None:
        message.aggregator_progress_at.CopyFrom(_timestamp(snapshot.aggregator_progress_at_ms))
    return message


class RankingServer:
    """grpc.aio server on its own event loop and thread, so that it answers promptly
    whether it runs alone or beside the aggregator's Faust loop."""

    def __init__(self, service: RankingService, host: str, port: int, tokens: Mapping[str, str],
                 credentials: grpc.ServerCredentials | None = None, scopes: Mapping | None = None,
                 grace_s: float = 5.0,
                 watch_interval_s: float = 1.0, monitor: PipelineMonitor | None = None,
                 monitor_interval_s: float = 2.0, alerts=None):
        self.service, self.address, self.grace_s = service, f"{host}:{port}", grace_s
        self.authenticator = BearerTokenInterceptor(tokens, (SERVICE_NAME,), scopes)
        self.credentials = credentials  # None: plain TCP
        self.monitor = monitor
        self.alerts = alerts
        self._probes = (BackgroundLoop("pipeline-health", monitor.check, monitor_interval_s,
                                       "pipeline probe failed") if monitor else None)
        metrics.ranking()  # shown from the start
        if monitor:
            metrics.PIPELINE.snapshot = lambda: monitor.snapshot
        self.watch_interval_s = watch_interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port: int | None = None

    async def serve(self) -> None:
        self.service.store.refresh_in_background()
        server = grpc.aio.server(interceptors=[metrics.grpc_metrics_interceptor(), self.authenticator])
        servicer = RankingServicer(self.service, self.watch_interval_s, monitor=self.monitor, alerts=self.alerts)
        ranking_pb2_grpc.add_RankingServiceServicer_to_server(servicer, server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
        self.port = (server.add_secure_port(self.address, self.credentials) if self.credentials
                     else server.add_insecure_port(self.address))
        if not self.port:
            raise RuntimeError(f"cannot listen on {self.address}")
        await server.start()
        loop = asyncio.get_running_loop()

        def data_changed(kind, agencies):  # on a writer's or the version poll's thread: never raise there
            metrics.ranking().data_changed.set_to_current_time()
            try:
                loop.call_soon_threadsafe(servicer.data_changed, kind, agencies)
            except RuntimeError:  # the loop closed meanwhile: nobody is watching
                pass

        stop_listening = self.service.store.on_change(data_changed)
        health_names = list(self.monitor.health(SERVICE_NAME)) if self.monitor else ["", SERVICE_NAME]
        follow_health = None
        try:
            for name in health_names:
                await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
            if self.alerts:
                self.alerts.start()
            if self.monitor:
                self._probes.start()
                follow_health = asyncio.create_task(self._follow_health(health_servicer))
            self._stop = asyncio.Event()
            self._started.set()
            log.info("ranking gRPC listening on %s", self.address)
            await self._stop.wait()
        finally:
            stop_listening()
            if follow_health:
                follow_health.cancel()
        for name in health_names:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.stop(self.grace_s)

    async def _follow_health(self, health_servicer, every_s: float = 0.5) -> None:
        """The monitor's verdict, set on the standard health service as it changes."""
        shown: dict[str, bool] = {}
        while True:
            for name, serving in self.monitor.health(SERVICE_NAME).items():
                if shown.get(name) != serving:
                    await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING if serving
                                              else health_pb2.HealthCheckResponse.NOT_SERVING)
                    shown[name] = serving
            await asyncio.sleep(every_s)

    def start_in_thread(self) -> None:
        self._started.clear()
        self._error = None

        def run():
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self.serve())
            except BaseException as exc:  # reported to start_in_thread's caller
                self._error = exc
                self._started.set()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="ranking-grpc", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error:
            raise RuntimeError(f"ranking gRPC failed to start: {self._error}") from self._error

    def stop(self) -> None:
        if self.alerts:
            self.alerts.stop()
        if self._probes:
            self._probes.stop(5.0)
        if self._loop and self._stop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(self.grace_s + 5)
        self.service.store.stop_refreshing()

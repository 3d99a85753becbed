"""gRPC adapter of the console: everything it shows comes from the ranking service."""
from __future__ import annotations

from typing import AsyncIterator, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dti.ranking.v1 import ranking_pb2 as pb
from dti.ranking.v1.ranking_pb2_grpc import RankingServiceStub
from dti_pulse.grpc_channel import async_ranking_channel
from services.console import views

RANKING_SERVICE = pb.DESCRIPTOR.services_by_name["RankingService"].full_name


class RankingClient:
    """Unary calls answer JSON-ready dicts; watches yield them as the ranking service pushes."""

    def __init__(self, address: str, token: str, timeout_s: float = 15.0,
                 tls: grpc.ChannelCredentials | None = None):
        self.address = address
        self.token = token
        self.tls = tls
        self.timeout_s = timeout_s
        self._channel: grpc.aio.Channel | None = None

    @property
    def channel(self) -> grpc.aio.Channel:
        # Made on first use, inside the server's event loop (grpc.aio binds to it).
        if self._channel is None:
            self._channel = async_ranking_channel(self.address, self.token, self.tls, options=[
                ("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000),
                ("grpc.initial_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 3_000)])
        return self._channel

    @property
    def stub(self) -> RankingServiceStub:
        return RankingServiceStub(self.channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def healthy(self, timeout_s: float = 2.0) -> bool:
        """Ranking answers and its store works (the pipeline's other parts: pipeline())."""
        try:
            reply = await health_pb2_grpc.HealthStub(self.channel).Check(
                health_pb2.HealthCheckRequest(service=RANKING_SERVICE), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def pipeline(self, timeout_s: float = 2.0) -> dict | None:
        """Which parts of the pipeline work, as ranking sees them; None where it watches none."""
        try:
            return views.pipeline_json(await self.stub.GetPipelineStatus(pb.GetPipelineStatusRequest(),
                                                                         timeout=timeout_s))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise

    async def ranking(self, cohort: str, period: str) -> dict:
        return views.ranking_json(await self.stub.ListRanking(
            pb.ListRankingRequest(cohort=cohort, period=period), timeout=self.timeout_s))

    async def score(self, agency_code: str, period: str) -> dict:
        return views.score_json(await self.stub.GetAgencyScore(
            pb.GetAgencyScoreRequest(agency_code=agency_code, period=period), timeout=self.timeout_s))

    async def trend(self, agency_code: str, granularity: str, points: int = 0) -> dict:
        return views.trend_json(await self.stub.GetAgencyTrend(
            pb.GetAgencyTrendRequest(agency_code=agency_code, granularity=granularity, points=points),
            timeout=self.timeout_s * 4))

    async def explain(self, agency_code: str, indicator_code: str, period: str, page_token: str = "",
                      page_size: int = 50) -> dict:
        return views.explain_json(await self.stub.ExplainIndicator(pb.ExplainIndicatorRequest(
            agency_code=agency_code, indicator_code=indicator_code, period=period, page_token=page_token,
            page_size=page_size), timeout=self.timeout_s))

    async def activity(self, agency_code: str, minutes: int) -> dict:
        return views.activity_json(await self.stub.GetActivity(
            pb.GetActivityRequest(agency_code=agency_code, minutes=minutes), timeout=self.timeout_s))

    async def due(self, agency_code: str, within_hours: int = 0) -> dict:
        return views.due_json(await self.stub.ListDueDossiers(
            pb.ListDueDossiersRequest(agency_code=agency_code, within_hours=within_hours), timeout=self.timeout_s))

    async def alerts(self, agency_code: str = "") -> dict:
        return views.alerts_json(await self.stub.ListAlerts(pb.ListAlertsRequest(agency_code=agency_code),
                                                            timeout=self.timeout_s))

    async def rules(self) -> dict:
        return views.rules_json(await self.stub.ListRules(pb.ListRulesRequest(), timeout=self.timeout_s))

    def watches(self, cohort: str, period: str, agency_code: str, minutes: int
                ) -> dict[str, Callable[[], AsyncIterator[dict]]]:
        """The streams one page follows, by SSE event name: each call opens a new stream."""
        def follow(call, request, to_json):
            async def stream():
                async for message in call(request):
                    yield to_json(message)
            return stream

        streams = {"activity": follow(self.stub.WatchActivity,
                                      pb.GetActivityRequest(agency_code=agency_code, minutes=minutes),
                                      views.activity_json)}
        if cohort:
            streams["ranking"] = follow(self.stub.WatchRanking, pb.ListRankingRequest(cohort=cohort, period=period),
                                        views.ranking_json)
        if agency_code:
            streams["score"] = follow(self.stub.WatchAgencyScore,
                                      pb.GetAgencyScoreRequest(agency_code=agency_code, period=period),
                                      views.score_json)
        return streams

"""`dti-pulse score` and `dti-pulse ranking`: ranking's answers for the shell, as a table or
JSON (the gRPC message's own JSON mapping), through the same gRPC API other services use."""
from __future__ import annotations

import sys

import grpc
from google.protobuf.json_format import MessageToJson

from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from dti_pulse.config import Settings
from dti_pulse.bootstrap import ranking_client_tls
from dti_pulse.grpc_channel import ranking_channel


def _stub(settings: Settings, token: str | None) -> ranking_pb2_grpc.RankingServiceStub:
    token = token or settings.console.ranking_token or next(iter(settings.ranking.tokens), "")
    if not token:
        raise SystemExit("no token for ranking: give --token, or set DTI_RANKING_TOKEN or DTI_GRPC_TOKENS")
    return ranking_pb2_grpc.RankingServiceStub(ranking_channel(settings.effective_ranking_address, token,
                                                               ranking_client_tls(settings)))


def _points(value: float | None, maximum: float) -> str:
    return "—" if value is None else f"{value:.2f} / {maximum:g}"


def _percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction * 100:.1f} %"


def score_table(score: ranking_pb2.AgencyScore) -> str:
    lines = [f"{score.agency_code}  {score.agency_name}  ({score.cohort}, {score.period}, rules {score.rules_version})",
             f"{'indicator':<34} {'numerator':>10} {'denominator':>12} {'points':>14}"]
    for indicator in score.indicators:
        points = indicator.points if indicator.HasField("points") else None
        lines.append(f"{indicator.code:<34} {indicator.numerator:>10,} {indicator.denominator:>12,} "
                     f"{_points(points, indicator.max_points):>14}")
    fraction = score.fraction if score.HasField("fraction") else None
    lines.append(f"{'total':<34} {'':>10} {'':>12} {_points(score.total_points, score.max_points):>14}   "
                 f"{_percent(fraction)} {score.band}".rstrip())
    return "\n".join(lines)


def ranking_table(ranking: ranking_pb2.Ranking) -> str:
    lines = [f"{ranking.cohort}, {ranking.period}, rules {ranking.rules_version}",
             f"{'rank':>4}  {'agency':<16} {'points':>14} {'fraction':>9}  {'band':<8} name"]
    for entry in ranking.entries:
        score = entry.score
        fraction = score.fraction if score.HasField("fraction") else None
        lines.append(f"{entry.rank:>4}  {score.agency_code:<16} {_points(score.total_points, score.max_points):>14} "
                     f"{_percent(fraction):>9}  {score.band:<8} {score.agency_name}")
    return "\n".join(lines)


def main(what: str, subject: str, period: str, settings: Settings, as_json: bool, token: str | None) -> int:
    stub = _stub(settings, token)
    try:
        if what == "score":
            answer = stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=subject, period=period),
                                         timeout=30)
            text = score_table(answer)
        else:
            answer = stub.ListRanking(ranking_pb2.ListRankingRequest(cohort=subject, period=period), timeout=30)
            text = ranking_table(answer)
    except grpc.RpcError as exc:
        print(f"dti-pulse {what}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1 if exc.code() == grpc.StatusCode.UNAVAILABLE else 2
    print(MessageToJson(answer, preserving_proto_field_name=True, indent=None) if as_json else text)
    return 0

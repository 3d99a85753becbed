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


def _refused(command: str, exc: grpc.RpcError) -> int:
    """Ranking's refusal, said: exit 1 when it could not be reached (try again), 2 otherwise."""
    print(f"dti-pulse {command}: {exc.code().name}: {exc.details()}", file=sys.stderr)
    return 1 if exc.code() == grpc.StatusCode.UNAVAILABLE else 2


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
        return _refused(what, exc)
    print(MessageToJson(answer, preserving_proto_field_name=True, indent=None) if as_json else text)
    return 0


def reconcile_rows(stub, rows: list[dict], tolerance_pp: float, explain_items: int = 5) -> list[dict]:
    """Each published figure (agency_code, period, indicator: ours or the portal's metric code,
    published: a rate in % or 0–1)
    beside ours; where they differ by more than tolerance_pp percentage points, the items
    that cost the agency points on that indicator (ExplainIndicator), as leads."""
    results = []
    scores: dict[tuple[str, str], ranking_pb2.AgencyScore] = {}
    for row in rows:
        code, period, indicator_code = row["agency_code"], row["period"], row["indicator"]
        published = float(row["published"])
        published = published / 100 if published > 1 else published
        key = (code, period)
        if key not in scores:
            scores[key] = stub.GetAgencyScore(ranking_pb2.GetAgencyScoreRequest(agency_code=code, period=period),
                                              timeout=30)
        # Our code, or the portal's metric code as its published figures name it.
        found = next((i for i in _flattened(scores[key].indicators)
                      if indicator_code and indicator_code in (i.code, i.portal_code)), None)
        ours = found.ratio if found is not None and found.HasField("ratio") else None
        result = {"agency_code": code, "period": period, "indicator": indicator_code,
                  "code": found.code if found else None, "published": published,
                  "ours": ours, "numerator": found.numerator if found else None,
                  "denominator": found.denominator if found else None,
                  "difference_pp": None if ours is None else round((ours - published) * 100, 2), "leads": []}
        result["differs"] = ours is None or abs(result["difference_pp"]) > tolerance_pp
        if result["differs"] and found is not None and scores[key].cohort != "province":
            try:
                page = stub.ExplainIndicator(ranking_pb2.ExplainIndicatorRequest(
                    agency_code=code, indicator_code=found.code, period=period, page_size=explain_items),
                    timeout=30)
                result["leads"] = [{"id": item.id, "reasons": list(item.reasons)} for item in page.items]
                result["leads_total"] = page.total_items
            except grpc.RpcError as exc:  # an indicator that counts procedures has no items to list
                result["leads_note"] = exc.details()
        results.append(result)
    return results


def _flattened(indicators):
    for indicator in indicators:
        yield indicator
        yield from _flattened(indicator.components)


def reconcile_table(results: list[dict], tolerance_pp: float) -> str:
    lines = [f"{'agency':<16} {'period':<8} {'indicator':<32} {'published':>10} {'ours':>10} {'diff (pp)':>10}"]
    for r in results:
        ours = "—" if r["ours"] is None else f"{r['ours'] * 100:.2f} %"
        diff = "—" if r["difference_pp"] is None else f"{r['difference_pp']:+.2f}"
        flag = "  <- differs" if r["differs"] else ""
        lines.append(f"{r['agency_code']:<16} {r['period']:<8} {r['indicator']:<32} {r['published'] * 100:>8.2f} % "
                     f"{ours:>10} {diff:>10}{flag}")
        if r["leads"]:
            lines.append(f"    ours: {r['numerator']:,} of {r['denominator']:,}; items that cost points "
                         f"({r.get('leads_total', len(r['leads'])):,}), first: "
                         + "; ".join(f"{lead['id']} ({', '.join(lead['reasons'])})" for lead in r["leads"]))
    differing = sum(r["differs"] for r in results)
    lines.append(f"{len(results)} figures, {differing} differ by more than {tolerance_pp:g} percentage points")
    return "\n".join(lines)


def reconcile(path, settings: Settings, tolerance_pp: float, as_json: bool, token: str | None) -> int:
    """`dti-pulse reconcile FILE`: the portal's published figures (CSV: agency_code, period,
    indicator, published) beside ours. Exit 0 when all agree within the tolerance, 3 when
    some differ."""
    import csv
    import json

    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = list(csv.DictReader(file))
    except OSError as exc:
        print(f"dti-pulse reconcile: {exc}", file=sys.stderr)
        return 2
    missing = {"agency_code", "period", "indicator", "published"} - set(rows[0] if rows else ())
    if missing:
        print(f"dti-pulse reconcile: {path}: columns missing: {', '.join(sorted(missing))}", file=sys.stderr)
        return 2
    try:
        results = reconcile_rows(_stub(settings, token), rows, tolerance_pp)
    except grpc.RpcError as exc:
        return _refused("reconcile", exc)
    except ValueError as exc:
        print(f"dti-pulse reconcile: {path}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(results, ensure_ascii=False) if as_json else reconcile_table(results, tolerance_pp))
    return 3 if any(r["differs"] for r in results) else 0


def report(cohort: str, period: str, out_dir, lang: str, settings: Settings, token: str | None) -> int:
    """`dti-pulse report COHORT PERIOD --out DIR`: the cohort's ranking for the period as the
    province files it, XLSX and PDF (cron or a Kubernetes CronJob runs it each month)."""
    from pathlib import Path

    from services.console import exports, views
    from services.console.reports import ReportError, ranking_pdf

    try:
        answer = _stub(settings, token).ListRanking(ranking_pb2.ListRankingRequest(cohort=cohort, period=period),
                                                    timeout=60)
    except grpc.RpcError as exc:
        return _refused("report", exc)
    data = views.ranking_json(answer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"ranking-{data['cohort']}-{data['period']}-{lang}"
    try:
        stem.with_suffix(".pdf").write_bytes(ranking_pdf(data, lang))
    except ReportError as exc:
        print(f"dti-pulse report: {exc}", file=sys.stderr)
        return 2
    stem.with_suffix(".xlsx").write_bytes(exports.to_xlsx(exports.ranking_table(data, lang)))
    print(f"dti-pulse report: {stem}.pdf, {stem}.xlsx ({len(data['entries'])} agencies)")
    return 0

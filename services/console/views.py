"""The console's JSON shapes, made from the ranking service's messages. No I/O.

Ratios and points are numbers or null (no value: an empty denominator is not zero);
instants are Unix milliseconds.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from dti_pulse.localtime import LOCAL_TZ

# The live rates the operations centre watches (docs/domain.md, Indicators), in display order.
LIVE_RATES = ("doc_electronic_rate", "doc_personal_sign_rate", "doc_agency_sign_rate",
              "dossier_full_online_rate", "dossier_on_time_rate")
PERIOD_ALIASES = ("today", "month", "quarter", "year", "previous_month", "previous_quarter", "previous_year")


def resolve_period(label: str, now: datetime | None = None) -> str:
    """A relative period (today, month, quarter, year, previous_month, previous_quarter,
    previous_year) -> its label in local time; any other label is passed on unchanged."""
    now = (now or datetime.now(LOCAL_TZ)).astimezone(LOCAL_TZ)
    quarter = (now.month - 1) // 3  # 0-based
    last_month = now.replace(day=1) - timedelta(days=1)
    last_quarter_year, last_quarter = (now.year, quarter - 1) if quarter else (now.year - 1, 3)
    return {"today": now.strftime("%Y-%m-%d"), "month": now.strftime("%Y-%m"), "quarter": f"{now.year}-Q{quarter + 1}",
            "year": now.strftime("%Y"), "previous_month": last_month.strftime("%Y-%m"),
            "previous_quarter": f"{last_quarter_year}-Q{last_quarter + 1}",
            "previous_year": str(now.year - 1)}.get(label, label)


def _ms(stamp) -> int:
    return stamp.ToMilliseconds()


def indicator_json(indicator) -> dict:
    return {
        "code": indicator.code, "group": indicator.group, "numerator": indicator.numerator,
        "denominator": indicator.denominator,
        "ratio": indicator.ratio if indicator.HasField("ratio") else None,
        "points": indicator.points if indicator.HasField("points") else None,
        "max_points": indicator.max_points, "note": indicator.note, "portal_code": indicator.portal_code,
        "components": [indicator_json(c) for c in indicator.components],
    }


def score_json(score) -> dict:
    return {
        "agency_code": score.agency_code, "agency_name": score.agency_name, "cohort": score.cohort,
        "period": score.period, "period_start": _ms(score.period_start), "period_end": _ms(score.period_end),
        "indicators": [indicator_json(i) for i in score.indicators],
        "total_points": score.total_points, "max_points": score.max_points,
        "fraction": score.fraction if score.HasField("fraction") else None, "band": score.band,
        "rules_version": score.rules_version, "computed_at": _ms(score.computed_at),
        "indices": [{"index": i.index, "points": i.points, "max_points": i.max_points,
                     "index_max_points": i.index_max_points} for i in score.indices],
    }


def ranking_json(ranking) -> dict:
    return {
        "cohort": ranking.cohort, "period": ranking.period, "rules_version": ranking.rules_version,
        "computed_at": _ms(ranking.computed_at),
        "entries": [{"rank": e.rank, **score_json(e.score)} for e in ranking.entries],
    }


def trend_json(trend) -> dict:
    return {"agency_code": trend.agency_code, "agency_name": trend.agency_name, "granularity": trend.granularity,
            "points": [score_json(p) for p in trend.points]}


def activity_json(activity) -> dict:
    return {
        "agency_code": activity.agency_code, "minutes": activity.minutes, "types": list(activity.types),
        "per_minute": [{"minute": _ms(m.minute), "events": dict(m.events)} for m in activity.per_minute],
        "totals": dict(activity.totals),
        "agencies": [{"agency_code": a.agency_code, "agency_name": a.agency_name, "events": a.events}
                     for a in activity.agencies],
        "last_event_at": _ms(activity.last_event_at) if activity.HasField("last_event_at") else None,
        "computed_at": _ms(activity.computed_at),
    }


def explain_json(response) -> dict:
    return {
        "agency_code": response.agency_code, "period": response.period, "rules_version": response.rules_version,
        "indicator": indicator_json(response.indicator), "total_items": response.total_items,
        "items": [{"kind": i.kind, "id": i.id, "reasons": list(i.reasons), "reason_codes": list(i.reason_codes),
                   "facts": dict(i.facts), "agency_code": i.agency_code, "agency_name": i.agency_name}
                  for i in response.items],
        "next_page_token": response.next_page_token,
    }


def rules_json(response) -> dict:
    return {"default_version": response.default_version, "errors": list(response.errors),
            "versions": [{"version": v.version, "title": v.title, "indicator_codes": list(v.indicator_codes),
                          "critical_below": v.critical_below, "warning_below": v.warning_below}
                         for v in response.versions]}


def due_json(answer) -> dict:
    return {"agency_code": answer.agency_code, "agency_name": answer.agency_name, "overdue": answer.overdue,
            "due_soon": answer.due_soon, "computed_at": _ms(answer.computed_at),
            "dossiers": [{"dossier_id": d.dossier_id, "procedure_code": d.procedure_code,
                          "received_at": _ms(d.received_at), "due_at": _ms(d.due_at), "state": d.state,
                          "last_status": d.last_status} for d in answer.dossiers]}


def alerts_json(answer) -> dict:
    return {"alerts": [{"rule": a.rule, "severity": a.severity, "agency_code": a.agency_code,
                        "agency_name": a.agency_name, "message": a.message, "value": a.value,
                        "threshold": a.threshold, "since": _ms(a.since)} for a in answer.alerts],
            "evaluated_at": _ms(answer.evaluated_at) if answer.HasField("evaluated_at") else None}


def pipeline_json(status) -> dict:
    """Which part of the pipeline does not work (GetPipelineStatus), for the console's banner."""
    return {"store": "ok" if status.store_reachable else "unreachable",
            "broker": ("ok" if status.broker_reachable else "unreachable") if status.kafka_watched else None,
            "aggregator": ("stalled" if status.aggregator_stalled else "ok") if status.kafka_watched else None,
            "lag": status.aggregator_lag, "dead_letters": status.dead_letters, "problems": list(status.problems),
            "checked_at": _ms(status.checked_at)}

"""ClickHouse adapter of ranking: counts the measures of services/ranking/rules.MEASURES."""
from __future__ import annotations

from collections import defaultdict

_DOSSIER_MEASURES = """
SELECT agency_code,
    count() AS dossiers_received,
    countIf(on_time) AS dossiers_on_time,
    countIf(NOT on_time) AS dossiers_late,
    countIf(service_level = 'full_online') AS dossiers_full_online_procedures,
    countIf(service_level = 'full_online' AND channel = 2) AS dossiers_full_online_received_online,
    countIf(has_fee = 1) AS dossiers_with_fee,
    countIf(has_fee = 1 AND paid_online = 1) AS dossiers_paid_online,
    uniqExactIf(procedure_code, has_fee = 1) AS fee_procedures,
    uniqExactIf(procedure_code, has_fee = 1 AND paid_online = 1) AS fee_procedures_paid_online,
    uniqExactIf(procedure_code, has_fee = 1) AS fee_procedures_with_dossiers,
    countIf(rated = 1 AND satisfied = 0) AS dossiers_rated_unsatisfied
FROM (
    SELECT agency_code, service_level, channel, has_fee, paid_online, procedure_code, rated, satisfied,
        -- domain.md §4.2: resolved by the (pause-adjusted) due time, or still open and not yet due
        late_forced = 0 AND if(has_end = 1 AND end_at_ms <= {judged_at:Int64},
                               end_at_ms <= due_effective_ms,
                               {judged_at:Int64} <= due_effective_ms) AS on_time
    FROM dossier_state FINAL
    WHERE has_received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64}
        AND agency_code IN {agencies:Array(String)}
)
GROUP BY agency_code
"""

# A document is tied to the period by the time it was sent (or, for the recipient, received).
# Recall notices (business_type 1) are not documents of their own and are left out.
_DOCUMENT_MEASURES = """
SELECT agency_code,
    countIf(in_period) AS documents_total,
    countIf(in_period AND electronic = 1) AS documents_electronic,
    countIf(sent_in_period AND electronic = 1) AS documents_sent_electronic,
    countIf(sent_in_period AND electronic = 1 AND personal_signature = 1) AS documents_sent_personal_signed,
    countIf(sent_in_period AND electronic = 1 AND agency_signature = 1) AS documents_sent_agency_signed,
    countIf(received_in_period AND has_due = 1
            AND ((completed = 1 AND completed_at_ms <= {judged_at:Int64}) OR due_at_ms < {judged_at:Int64})) AS documents_due,
    countIf(received_in_period AND has_due = 1 AND completed = 1
            AND completed_at_ms <= {judged_at:Int64} AND completed_at_ms <= due_at_ms) AS documents_on_time
FROM (
    SELECT agency_code, electronic, personal_signature, agency_signature, has_due, due_at_ms, completed, completed_at_ms,
        sent = 1 AND sent_at_ms >= {start:Int64} AND sent_at_ms < {end:Int64} AS sent_in_period,
        received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64} AS received_in_period,
        if(sent = 1, sent_in_period, received_in_period) AS in_period
    FROM document_state FINAL
    WHERE classified = 0 AND business_type != 1 AND agency_code IN {agencies:Array(String)}
        AND ((sent = 1 AND sent_at_ms >= {start:Int64} AND sent_at_ms < {end:Int64})
          OR (received = 1 AND received_at_ms >= {start:Int64} AND received_at_ms < {end:Int64}))
)
GROUP BY agency_code
"""


class ClickHouseMeasures:
    def __init__(self, client):
        self.client = client

    def measures(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int) -> dict[str, dict[str, int]]:
        """{agency_code: {measure: count}} for the agencies that have any data in the period."""
        parameters = {"agencies": agency_codes, "start": start_ms, "end": end_ms, "judged_at": judged_at_ms}
        found: dict[str, dict[str, int]] = defaultdict(dict)
        for sql in (_DOSSIER_MEASURES, _DOCUMENT_MEASURES):
            result = self.client.query(sql, parameters=parameters)
            names = result.column_names[1:]
            for row in result.result_rows:
                found[row[0]].update(zip(names, (int(v) for v in row[1:])))
        return dict(found)

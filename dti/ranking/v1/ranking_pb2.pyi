import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListDueDossiersRequest(_message.Message):
    __slots__ = ("agency_code", "within_hours")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    WITHIN_HOURS_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    within_hours: int
    def __init__(self, agency_code: _Optional[str] = ..., within_hours: _Optional[int] = ...) -> None: ...

class DueDossier(_message.Message):
    __slots__ = ("dossier_id", "procedure_code", "received_at", "due_at", "state", "last_status")
    DOSSIER_ID_FIELD_NUMBER: _ClassVar[int]
    PROCEDURE_CODE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_FIELD_NUMBER: _ClassVar[int]
    dossier_id: str
    procedure_code: str
    received_at: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    state: str
    last_status: int
    def __init__(self, dossier_id: _Optional[str] = ..., procedure_code: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[str] = ..., last_status: _Optional[int] = ...) -> None: ...

class DueDossiers(_message.Message):
    __slots__ = ("agency_code", "agency_name", "dossiers", "overdue", "due_soon", "computed_at")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAME_FIELD_NUMBER: _ClassVar[int]
    DOSSIERS_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    DUE_SOON_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    agency_name: str
    dossiers: _containers.RepeatedCompositeFieldContainer[DueDossier]
    overdue: int
    due_soon: int
    computed_at: _timestamp_pb2.Timestamp
    def __init__(self, agency_code: _Optional[str] = ..., agency_name: _Optional[str] = ..., dossiers: _Optional[_Iterable[_Union[DueDossier, _Mapping]]] = ..., overdue: _Optional[int] = ..., due_soon: _Optional[int] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("agency_code",)
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    def __init__(self, agency_code: _Optional[str] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("rule", "severity", "agency_code", "agency_name", "message", "value", "threshold", "since")
    RULE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    rule: str
    severity: str
    agency_code: str
    agency_name: str
    message: str
    value: float
    threshold: float
    since: _timestamp_pb2.Timestamp
    def __init__(self, rule: _Optional[str] = ..., severity: _Optional[str] = ..., agency_code: _Optional[str] = ..., agency_name: _Optional[str] = ..., message: _Optional[str] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AlertList(_message.Message):
    __slots__ = ("alerts", "evaluated_at")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_AT_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    evaluated_at: _timestamp_pb2.Timestamp
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., evaluated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPipelineStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PipelineStatus(_message.Message):
    __slots__ = ("store_reachable", "kafka_watched", "broker_reachable", "aggregator_lag", "aggregator_stalled", "aggregator_progress_at", "dead_letters", "problems", "checked_at")
    STORE_REACHABLE_FIELD_NUMBER: _ClassVar[int]
    KAFKA_WATCHED_FIELD_NUMBER: _ClassVar[int]
    BROKER_REACHABLE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATOR_LAG_FIELD_NUMBER: _ClassVar[int]
    AGGREGATOR_STALLED_FIELD_NUMBER: _ClassVar[int]
    AGGREGATOR_PROGRESS_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    store_reachable: bool
    kafka_watched: bool
    broker_reachable: bool
    aggregator_lag: int
    aggregator_stalled: bool
    aggregator_progress_at: _timestamp_pb2.Timestamp
    dead_letters: int
    problems: _containers.RepeatedScalarFieldContainer[str]
    checked_at: _timestamp_pb2.Timestamp
    def __init__(self, store_reachable: _Optional[bool] = ..., kafka_watched: _Optional[bool] = ..., broker_reachable: _Optional[bool] = ..., aggregator_lag: _Optional[int] = ..., aggregator_stalled: _Optional[bool] = ..., aggregator_progress_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_letters: _Optional[int] = ..., problems: _Optional[_Iterable[str]] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetAgencyTrendRequest(_message.Message):
    __slots__ = ("agency_code", "granularity", "points", "rules_version")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    granularity: str
    points: int
    rules_version: str
    def __init__(self, agency_code: _Optional[str] = ..., granularity: _Optional[str] = ..., points: _Optional[int] = ..., rules_version: _Optional[str] = ...) -> None: ...

class AgencyTrend(_message.Message):
    __slots__ = ("agency_code", "agency_name", "granularity", "points")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAME_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    agency_name: str
    granularity: str
    points: _containers.RepeatedCompositeFieldContainer[AgencyScore]
    def __init__(self, agency_code: _Optional[str] = ..., agency_name: _Optional[str] = ..., granularity: _Optional[str] = ..., points: _Optional[_Iterable[_Union[AgencyScore, _Mapping]]] = ...) -> None: ...

class GetActivityRequest(_message.Message):
    __slots__ = ("agency_code", "minutes")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    minutes: int
    def __init__(self, agency_code: _Optional[str] = ..., minutes: _Optional[int] = ...) -> None: ...

class ActivityMinute(_message.Message):
    __slots__ = ("minute", "events")
    class EventsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MINUTE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    minute: _timestamp_pb2.Timestamp
    events: _containers.ScalarMap[str, int]
    def __init__(self, minute: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., events: _Optional[_Mapping[str, int]] = ...) -> None: ...

class AgencyActivity(_message.Message):
    __slots__ = ("agency_code", "agency_name", "events")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    agency_name: str
    events: int
    def __init__(self, agency_code: _Optional[str] = ..., agency_name: _Optional[str] = ..., events: _Optional[int] = ...) -> None: ...

class Activity(_message.Message):
    __slots__ = ("agency_code", "minutes", "types", "per_minute", "totals", "agencies", "last_event_at", "computed_at")
    class TotalsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_AT_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    minutes: int
    types: _containers.RepeatedScalarFieldContainer[str]
    per_minute: _containers.RepeatedCompositeFieldContainer[ActivityMinute]
    totals: _containers.ScalarMap[str, int]
    agencies: _containers.RepeatedCompositeFieldContainer[AgencyActivity]
    last_event_at: _timestamp_pb2.Timestamp
    computed_at: _timestamp_pb2.Timestamp
    def __init__(self, agency_code: _Optional[str] = ..., minutes: _Optional[int] = ..., types: _Optional[_Iterable[str]] = ..., per_minute: _Optional[_Iterable[_Union[ActivityMinute, _Mapping]]] = ..., totals: _Optional[_Mapping[str, int]] = ..., agencies: _Optional[_Iterable[_Union[AgencyActivity, _Mapping]]] = ..., last_event_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetAgencyScoreRequest(_message.Message):
    __slots__ = ("agency_code", "period", "rules_version", "as_of")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    period: str
    rules_version: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, agency_code: _Optional[str] = ..., period: _Optional[str] = ..., rules_version: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListRankingRequest(_message.Message):
    __slots__ = ("cohort", "period", "rules_version", "as_of")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    period: str
    rules_version: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, cohort: _Optional[str] = ..., period: _Optional[str] = ..., rules_version: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExplainIndicatorRequest(_message.Message):
    __slots__ = ("agency_code", "indicator_code", "period", "rules_version", "as_of", "page_size", "page_token")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    INDICATOR_CODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    indicator_code: str
    period: str
    rules_version: str
    as_of: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, agency_code: _Optional[str] = ..., indicator_code: _Optional[str] = ..., period: _Optional[str] = ..., rules_version: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class CostItem(_message.Message):
    __slots__ = ("kind", "id", "reasons", "facts", "reason_codes", "agency_code", "agency_name")
    class FactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    REASON_CODES_FIELD_NUMBER: _ClassVar[int]
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    facts: _containers.ScalarMap[str, str]
    reason_codes: _containers.RepeatedScalarFieldContainer[str]
    agency_code: str
    agency_name: str
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., facts: _Optional[_Mapping[str, str]] = ..., reason_codes: _Optional[_Iterable[str]] = ..., agency_code: _Optional[str] = ..., agency_name: _Optional[str] = ...) -> None: ...

class ExplainIndicatorResponse(_message.Message):
    __slots__ = ("agency_code", "period", "rules_version", "indicator", "total_items", "items", "next_page_token")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    INDICATOR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ITEMS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    period: str
    rules_version: str
    indicator: IndicatorScore
    total_items: int
    items: _containers.RepeatedCompositeFieldContainer[CostItem]
    next_page_token: str
    def __init__(self, agency_code: _Optional[str] = ..., period: _Optional[str] = ..., rules_version: _Optional[str] = ..., indicator: _Optional[_Union[IndicatorScore, _Mapping]] = ..., total_items: _Optional[int] = ..., items: _Optional[_Iterable[_Union[CostItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CompareRulesRequest(_message.Message):
    __slots__ = ("agency_code", "period", "rules_versions", "as_of")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    period: str
    rules_versions: _containers.RepeatedScalarFieldContainer[str]
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, agency_code: _Optional[str] = ..., period: _Optional[str] = ..., rules_versions: _Optional[_Iterable[str]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompareRulesResponse(_message.Message):
    __slots__ = ("scores",)
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[AgencyScore]
    def __init__(self, scores: _Optional[_Iterable[_Union[AgencyScore, _Mapping]]] = ...) -> None: ...

class ListRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RulesVersion(_message.Message):
    __slots__ = ("version", "title", "source", "indicator_codes", "critical_below", "warning_below")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INDICATOR_CODES_FIELD_NUMBER: _ClassVar[int]
    CRITICAL_BELOW_FIELD_NUMBER: _ClassVar[int]
    WARNING_BELOW_FIELD_NUMBER: _ClassVar[int]
    version: str
    title: str
    source: str
    indicator_codes: _containers.RepeatedScalarFieldContainer[str]
    critical_below: float
    warning_below: float
    def __init__(self, version: _Optional[str] = ..., title: _Optional[str] = ..., source: _Optional[str] = ..., indicator_codes: _Optional[_Iterable[str]] = ..., critical_below: _Optional[float] = ..., warning_below: _Optional[float] = ...) -> None: ...

class ListRulesResponse(_message.Message):
    __slots__ = ("default_version", "versions", "errors")
    DEFAULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    default_version: str
    versions: _containers.RepeatedCompositeFieldContainer[RulesVersion]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, default_version: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[RulesVersion, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class IndicatorScore(_message.Message):
    __slots__ = ("code", "group", "numerator", "denominator", "ratio", "points", "max_points", "note", "components", "portal_code")
    CODE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NUMERATOR_FIELD_NUMBER: _ClassVar[int]
    DENOMINATOR_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    PORTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    group: str
    numerator: int
    denominator: int
    ratio: float
    points: float
    max_points: float
    note: str
    components: _containers.RepeatedCompositeFieldContainer[IndicatorScore]
    portal_code: str
    def __init__(self, code: _Optional[str] = ..., group: _Optional[str] = ..., numerator: _Optional[int] = ..., denominator: _Optional[int] = ..., ratio: _Optional[float] = ..., points: _Optional[float] = ..., max_points: _Optional[float] = ..., note: _Optional[str] = ..., components: _Optional[_Iterable[_Union[IndicatorScore, _Mapping]]] = ..., portal_code: _Optional[str] = ...) -> None: ...

class AgencyScore(_message.Message):
    __slots__ = ("agency_code", "agency_name", "cohort", "period", "period_start", "period_end", "indicators", "total_points", "max_points", "fraction", "band", "rules_version", "computed_at", "indices")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAME_FIELD_NUMBER: _ClassVar[int]
    COHORT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_POINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    agency_name: str
    cohort: str
    period: str
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    indicators: _containers.RepeatedCompositeFieldContainer[IndicatorScore]
    total_points: float
    max_points: float
    fraction: float
    band: str
    rules_version: str
    computed_at: _timestamp_pb2.Timestamp
    indices: _containers.RepeatedCompositeFieldContainer[IndexTotal]
    def __init__(self, agency_code: _Optional[str] = ..., agency_name: _Optional[str] = ..., cohort: _Optional[str] = ..., period: _Optional[str] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., indicators: _Optional[_Iterable[_Union[IndicatorScore, _Mapping]]] = ..., total_points: _Optional[float] = ..., max_points: _Optional[float] = ..., fraction: _Optional[float] = ..., band: _Optional[str] = ..., rules_version: _Optional[str] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., indices: _Optional[_Iterable[_Union[IndexTotal, _Mapping]]] = ...) -> None: ...

class IndexTotal(_message.Message):
    __slots__ = ("index", "points", "max_points", "index_max_points")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    INDEX_MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    index: str
    points: float
    max_points: float
    index_max_points: float
    def __init__(self, index: _Optional[str] = ..., points: _Optional[float] = ..., max_points: _Optional[float] = ..., index_max_points: _Optional[float] = ...) -> None: ...

class RankingEntry(_message.Message):
    __slots__ = ("rank", "score")
    RANK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    rank: int
    score: AgencyScore
    def __init__(self, rank: _Optional[int] = ..., score: _Optional[_Union[AgencyScore, _Mapping]] = ...) -> None: ...

class Ranking(_message.Message):
    __slots__ = ("cohort", "period", "rules_version", "entries", "computed_at")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    period: str
    rules_version: str
    entries: _containers.RepeatedCompositeFieldContainer[RankingEntry]
    computed_at: _timestamp_pb2.Timestamp
    def __init__(self, cohort: _Optional[str] = ..., period: _Optional[str] = ..., rules_version: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[RankingEntry, _Mapping]]] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

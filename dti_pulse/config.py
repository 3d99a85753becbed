"""Settings from the environment, with defaults that run everything on one machine."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_AGENCIES = PACKAGE_DIR / "data" / "agencies-thanh-hoa.csv"
DEFAULT_RULES_DIR = PACKAGE_DIR.parent / "services" / "ranking" / "rules"
DEFAULT_CONSOLE_ASSETS = PACKAGE_DIR.parent / "services" / "console" / "web" / "node_modules"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def parse_tokens(spec: str) -> dict[str, str]:
    """`name=token,name2=token2` -> {token: name}."""
    tokens: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        source, sep, token = item.partition("=")
        if not sep or not source.strip() or not token.strip():
            raise ConfigError(f"expected name=token, got {item.partition('=')[0]!r}=...")
        tokens[token.strip()] = source.strip()
    return tokens


def parse_viewers(spec: str) -> dict[str, str]:
    from services.console.auth import parse_viewers as parse

    return parse(spec)


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    kafka_bootstrap: str = "127.0.0.1:9092"
    clickhouse_dsn: str = ""  # empty: chDB under data_dir
    events_topic: str = "dti.events.v1"
    dead_letter_topic: str = "dti.events.dlq"
    topic_partitions: int = 8
    topic_replication: int = 1  # 3 on a cluster of three brokers or more
    agencies_path: Path = DEFAULT_AGENCIES
    rules_dir: Path = DEFAULT_RULES_DIR
    rules_version: str = "dti-pulse-2025"
    ingest_tokens: Mapping[str, str] = field(default_factory=dict)  # token -> source
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    ingest_max_body_bytes: int = 32 * 1024 * 1024
    ingest_max_events: int = 10_000
    ingest_delivery_timeout_ms: int = 10_000
    ingest_dedup_capacity: int = 1_000_000
    ingest_max_future_s: float = 86_400.0  # an event may say it happened at most this far ahead of the clock
    ingest_workers: int = 1
    ingest_connection_max_age_s: float = 1.0  # then a keep-alive connection is closed: workers share the load
    aggregator_group: str = "dti-aggregator"
    aggregator_batch: int = 10_000
    aggregator_batch_seconds: float = 0.15
    aggregator_batch_bytes: int = 16 * 1024 * 1024  # ~130k events: a fold holds the loop ~1.5-3 s
    aggregator_linger_ms: int = 5
    aggregator_fetch_wait_ms: int = 100
    aggregator_cache_entities: int = 500_000
    aggregator_commit_interval_s: float = 1.0
    # `up` and bench: 0 folds in the process that owns chDB (and answers gRPC); N runs N fold
    # processes apart, writing through that process's state store (remote_store.py).
    aggregator_processes: int = 0
    aggregator_index: int = 0  # which fold process this is (its store connections, its Faust datadir)
    state_store_address: str = ""  # set: `serve aggregator` writes through the store at host:port or socket path
    state_store_secret: str = ""  # authenticates fold processes to the state store
    gc_young_threshold: int = 10_000  # 0: Python's default (700)
    kafka_session_timeout_s: float = 10.0
    watch_interval_s: float = 0.25
    health_stall_s: float = 60.0  # the aggregator behind and not moving this long: health says NOT_SERVING
    judge_granularity_s: float = 60.0
    judge_warm_lead_s: float = 10.0  # 0: no warming before the judgement instant turns
    ranking_cache: bool = True
    day_snapshots: bool = True
    snapshot_interval_s: float = 1.0
    ranking_address: str = ""  # where the console finds ranking; empty: grpc_host:grpc_port
    console_host: str = "127.0.0.1"
    console_port: int = 8090
    console_viewers: Mapping[str, str] = field(default_factory=dict)  # name -> password hash
    console_tokens: Mapping[str, str] = field(default_factory=dict)  # token -> name
    console_secret: str = ""  # signs session cookies; empty: random at each start
    console_session_hours: float = 12.0
    console_heartbeat_s: float = 2.0
    console_secure_cookies: bool = False
    console_assets: Path = DEFAULT_CONSOLE_ASSETS

    @property
    def effective_clickhouse_dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{(self.data_dir / 'chdb').resolve()}"

    @property
    def effective_ranking_address(self) -> str:
        host = "127.0.0.1" if self.grpc_host in ("0.0.0.0", "::", "") else self.grpc_host
        return self.ranking_address or f"{host}:{self.grpc_port}"

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_ENV = {
    "DTI_DATA_DIR": ("data_dir", Path),
    "DTI_KAFKA_BOOTSTRAP": ("kafka_bootstrap", str),
    "DTI_CLICKHOUSE_DSN": ("clickhouse_dsn", str),
    "DTI_EVENTS_TOPIC": ("events_topic", str),
    "DTI_DLQ_TOPIC": ("dead_letter_topic", str),
    "DTI_TOPIC_PARTITIONS": ("topic_partitions", int),
    "DTI_TOPIC_REPLICATION": ("topic_replication", int),
    "DTI_AGENCIES": ("agencies_path", Path),
    "DTI_RULES_DIR": ("rules_dir", Path),
    "DTI_RULES_VERSION": ("rules_version", str),
    "DTI_INGEST_TOKENS": ("ingest_tokens", parse_tokens),
    "DTI_HTTP_HOST": ("http_host", str),
    "DTI_HTTP_PORT": ("http_port", int),
    "DTI_GRPC_HOST": ("grpc_host", str),
    "DTI_GRPC_PORT": ("grpc_port", int),
    "DTI_INGEST_MAX_BODY_BYTES": ("ingest_max_body_bytes", int),
    "DTI_INGEST_MAX_EVENTS": ("ingest_max_events", int),
    "DTI_INGEST_DELIVERY_TIMEOUT_MS": ("ingest_delivery_timeout_ms", int),
    "DTI_INGEST_DEDUP_CAPACITY": ("ingest_dedup_capacity", int),
    "DTI_INGEST_MAX_FUTURE_S": ("ingest_max_future_s", float),
    "DTI_INGEST_WORKERS": ("ingest_workers", int),
    "DTI_INGEST_CONNECTION_MAX_AGE_S": ("ingest_connection_max_age_s", float),
    "DTI_AGGREGATOR_GROUP": ("aggregator_group", str),
    "DTI_AGGREGATOR_BATCH": ("aggregator_batch", int),
    "DTI_AGGREGATOR_BATCH_SECONDS": ("aggregator_batch_seconds", float),
    "DTI_AGGREGATOR_BATCH_BYTES": ("aggregator_batch_bytes", int),
    "DTI_AGGREGATOR_LINGER_MS": ("aggregator_linger_ms", int),
    "DTI_AGGREGATOR_FETCH_WAIT_MS": ("aggregator_fetch_wait_ms", int),
    "DTI_AGGREGATOR_CACHE_ENTITIES": ("aggregator_cache_entities", int),
    "DTI_AGGREGATOR_COMMIT_INTERVAL_S": ("aggregator_commit_interval_s", float),
    "DTI_AGGREGATOR_PROCESSES": ("aggregator_processes", int),
    "DTI_AGGREGATOR_INDEX": ("aggregator_index", int),
    "DTI_STATE_STORE_ADDRESS": ("state_store_address", str),
    "DTI_STATE_STORE_SECRET": ("state_store_secret", str),
    "DTI_GC_YOUNG_THRESHOLD": ("gc_young_threshold", int),
    "DTI_KAFKA_SESSION_TIMEOUT_S": ("kafka_session_timeout_s", float),
    "DTI_WATCH_INTERVAL_S": ("watch_interval_s", float),
    "DTI_HEALTH_STALL_S": ("health_stall_s", float),
    "DTI_JUDGE_GRANULARITY_S": ("judge_granularity_s", float),
    "DTI_JUDGE_WARM_LEAD_S": ("judge_warm_lead_s", float),
    "DTI_RANKING_CACHE": ("ranking_cache", parse_bool),
    "DTI_DAY_SNAPSHOTS": ("day_snapshots", parse_bool),
    "DTI_SNAPSHOT_INTERVAL_S": ("snapshot_interval_s", float),
    "DTI_RANKING_ADDRESS": ("ranking_address", str),
    "DTI_CONSOLE_HOST": ("console_host", str),
    "DTI_CONSOLE_PORT": ("console_port", int),
    "DTI_CONSOLE_VIEWERS": ("console_viewers", parse_viewers),
    "DTI_CONSOLE_TOKENS": ("console_tokens", parse_tokens),
    "DTI_CONSOLE_SECRET": ("console_secret", str),
    "DTI_CONSOLE_SESSION_HOURS": ("console_session_hours", float),
    "DTI_CONSOLE_HEARTBEAT_S": ("console_heartbeat_s", float),
    "DTI_CONSOLE_SECURE_COOKIES": ("console_secure_cookies", parse_bool),
    "DTI_CONSOLE_ASSETS": ("console_assets", Path),
}


# Every variable in one group. The first four are what an operator sets (README's table);
# "tuning" has measured defaults few deployments change (docs/operations.md); "internal" is
# what `up` sets for its children. tests/unit/test_config_docs.py holds the docs to this.
VARIABLE_GROUPS: dict[str, tuple[str, ...]] = {
    "system": ("DTI_DATA_DIR", "DTI_KAFKA_BOOTSTRAP", "DTI_CLICKHOUSE_DSN", "DTI_AGENCIES", "DTI_RULES_DIR",
               "DTI_RULES_VERSION", "DTI_EVENTS_TOPIC", "DTI_DLQ_TOPIC"),
    "ingest": ("DTI_INGEST_TOKENS", "DTI_HTTP_HOST", "DTI_HTTP_PORT", "DTI_INGEST_MAX_FUTURE_S"),
    "ranking": ("DTI_GRPC_HOST", "DTI_GRPC_PORT"),
    "console": ("DTI_CONSOLE_HOST", "DTI_CONSOLE_PORT", "DTI_CONSOLE_VIEWERS", "DTI_CONSOLE_TOKENS",
                "DTI_CONSOLE_SECRET", "DTI_RANKING_ADDRESS", "DTI_CONSOLE_ASSETS"),
    "tuning": ("DTI_TOPIC_PARTITIONS", "DTI_TOPIC_REPLICATION", "DTI_INGEST_DELIVERY_TIMEOUT_MS", "DTI_INGEST_WORKERS",
               "DTI_INGEST_CONNECTION_MAX_AGE_S", "DTI_INGEST_DEDUP_CAPACITY", "DTI_INGEST_MAX_BODY_BYTES",
               "DTI_INGEST_MAX_EVENTS", "DTI_AGGREGATOR_GROUP", "DTI_AGGREGATOR_BATCH", "DTI_AGGREGATOR_BATCH_SECONDS",
               "DTI_AGGREGATOR_BATCH_BYTES", "DTI_AGGREGATOR_LINGER_MS", "DTI_AGGREGATOR_FETCH_WAIT_MS",
               "DTI_AGGREGATOR_CACHE_ENTITIES", "DTI_AGGREGATOR_COMMIT_INTERVAL_S", "DTI_AGGREGATOR_PROCESSES",
               "DTI_KAFKA_SESSION_TIMEOUT_S", "DTI_GC_YOUNG_THRESHOLD", "DTI_WATCH_INTERVAL_S", "DTI_HEALTH_STALL_S",
               "DTI_JUDGE_GRANULARITY_S", "DTI_JUDGE_WARM_LEAD_S", "DTI_RANKING_CACHE", "DTI_DAY_SNAPSHOTS",
               "DTI_SNAPSHOT_INTERVAL_S", "DTI_CONSOLE_SESSION_HOURS", "DTI_CONSOLE_HEARTBEAT_S",
               "DTI_CONSOLE_SECURE_COOKIES"),
    "internal": ("DTI_AGGREGATOR_INDEX", "DTI_STATE_STORE_ADDRESS", "DTI_STATE_STORE_SECRET"),
}
# Read where Settings are not (the broker launcher), documented with the tuning group.
OTHER_VARIABLES = {"DTI_KAFKA_LIBS": "tuning"}


_SECRET_VARIABLES = {"DTI_INGEST_TOKENS", "DTI_CONSOLE_VIEWERS", "DTI_CONSOLE_TOKENS", "DTI_CONSOLE_SECRET",
                     "DTI_STATE_STORE_SECRET"}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values = {}
    for name, (attr, convert) in _ENV.items():
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[attr] = convert(raw)
        except ValueError as exc:
            shown = "..." if name in _SECRET_VARIABLES else repr(raw)  # never echo a secret into a log
            raise ConfigError(f"{name}={shown}: {exc}") from None
    return Settings(**values)


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load these same settings."""
    env = {}
    for name, (attr, _) in _ENV.items():
        value = getattr(settings, attr)
        if attr in ("ingest_tokens", "console_tokens"):
            value = ",".join(f"{source}={token}" for token, source in value.items())
        elif attr == "console_viewers":
            value = ",".join(f"{name}={encoded}" for name, encoded in value.items())
        env[name] = str(value)
    return env

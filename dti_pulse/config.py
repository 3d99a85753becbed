"""Settings from the environment, with defaults that run everything on one machine."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from dti_pulse.scopes import parse_scopes

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_AGENCIES = PACKAGE_DIR / "data" / "agencies-thanh-hoa.csv"
DEFAULT_RULES_DIR = PACKAGE_DIR.parent / "services" / "ranking" / "rules"
DEFAULT_ALERT_RULES = PACKAGE_DIR.parent / "services" / "ranking" / "alert-rules.toml"
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


def parse_log_format(raw: str) -> str:
    from dti_pulse.logs import FORMATS

    if raw not in FORMATS:
        raise ValueError(f"expected one of {', '.join(FORMATS)}")
    return raw


def parse_log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def variable(name: str, default, convert=None, **kwargs):
    """A setting read from the environment variable `name` (converted by `convert`, or by the
    field's type when that is str, int, float or Path)."""
    if "default_factory" in kwargs:
        return field(metadata={"env": name, "convert": convert}, **kwargs)
    return field(default=default, metadata={"env": name, "convert": convert})


@dataclass(frozen=True)
class IngestSettings:
    tokens: Mapping[str, str] = variable("DTI_INGEST_TOKENS", None, parse_tokens, default_factory=dict)  # token -> source
    # source -> agency codes / prefixes it may send for; empty: every source, every agency
    source_agencies: Mapping[str, tuple[str, ...]] = variable("DTI_INGEST_SOURCE_AGENCIES", None,
                                                              parse_scopes, default_factory=dict)
    host: str = variable("DTI_HTTP_HOST", "127.0.0.1")
    port: int = variable("DTI_HTTP_PORT", 8080)
    # an event may say it happened at most this far ahead of the clock
    max_future_s: float = variable("DTI_INGEST_MAX_FUTURE_S", 86_400.0)


def parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class AlertSettings:
    """Where ranking's alert loop reads its rules and sends its notices (docs/operations.md, Alerts)."""
    rules: Path = variable("DTI_ALERT_RULES", DEFAULT_ALERT_RULES, Path)
    interval_s: float = variable("DTI_ALERT_INTERVAL_S", 60.0)  # 0: no alert loop
    webhook_url: str = variable("DTI_ALERT_WEBHOOK_URL", "")
    smtp_host: str = variable("DTI_ALERT_SMTP_HOST", "")
    smtp_port: int = variable("DTI_ALERT_SMTP_PORT", 25)
    smtp_username: str = variable("DTI_ALERT_SMTP_USERNAME", "")
    smtp_password: str = variable("DTI_ALERT_SMTP_PASSWORD", "")
    smtp_starttls: bool = variable("DTI_ALERT_SMTP_STARTTLS", False, parse_bool)
    mail_from: str = variable("DTI_ALERT_MAIL_FROM", "dti-pulse@localhost")
    mail_to: tuple[str, ...] = variable("DTI_ALERT_MAIL_TO", None, parse_list, default_factory=tuple)


@dataclass(frozen=True)
class RankingSettings:
    host: str = variable("DTI_GRPC_HOST", "127.0.0.1")
    port: int = variable("DTI_GRPC_PORT", 50051)
    tokens: Mapping[str, str] = variable("DTI_GRPC_TOKENS", None, parse_tokens, default_factory=dict)  # token -> caller
    # caller -> agency codes / prefixes / cohort:NAME it may see; a caller not listed sees everything
    token_scopes: Mapping[str, tuple[str, ...]] = variable("DTI_GRPC_TOKEN_SCOPES", None, parse_scopes,
                                                           default_factory=dict)


@dataclass(frozen=True)
class ConsoleSettings:
    host: str = variable("DTI_CONSOLE_HOST", "127.0.0.1")
    port: int = variable("DTI_CONSOLE_PORT", 8090)
    viewers: Mapping[str, str] = variable("DTI_CONSOLE_VIEWERS", None, parse_viewers,
                                          default_factory=dict)  # name -> password hash
    tokens: Mapping[str, str] = variable("DTI_CONSOLE_TOKENS", None, parse_tokens, default_factory=dict)  # token -> name
    secret: str = variable("DTI_CONSOLE_SECRET", "")  # signs session cookies; empty: random at each start
    ranking_address: str = variable("DTI_RANKING_ADDRESS", "")  # empty: the ranking settings' host:port
    ranking_token: str = variable("DTI_RANKING_TOKEN", "")  # the console's bearer token for ranking
    assets: Path = variable("DTI_CONSOLE_ASSETS", DEFAULT_CONSOLE_ASSETS)


@dataclass(frozen=True)
class Tuning:
    """Measured defaults few deployments change (docs/operations.md says what each does)."""
    topic_partitions: int = variable("DTI_TOPIC_PARTITIONS", 8)
    topic_replication: int = variable("DTI_TOPIC_REPLICATION", 1)  # 3 on a cluster of three brokers or more
    ingest_max_body_bytes: int = variable("DTI_INGEST_MAX_BODY_BYTES", 32 * 1024 * 1024)
    ingest_max_events: int = variable("DTI_INGEST_MAX_EVENTS", 10_000)
    ingest_delivery_timeout_ms: int = variable("DTI_INGEST_DELIVERY_TIMEOUT_MS", 10_000)
    ingest_dedup_capacity: int = variable("DTI_INGEST_DEDUP_CAPACITY", 1_000_000)
    ingest_workers: int = variable("DTI_INGEST_WORKERS", 1)
    # then a keep-alive connection is closed: workers share the load
    ingest_connection_max_age_s: float = variable("DTI_INGEST_CONNECTION_MAX_AGE_S", 1.0)
    aggregator_group: str = variable("DTI_AGGREGATOR_GROUP", "dti-aggregator")
    aggregator_batch: int = variable("DTI_AGGREGATOR_BATCH", 10_000)
    aggregator_batch_seconds: float = variable("DTI_AGGREGATOR_BATCH_SECONDS", 0.15)
    # ~130k events: a fold holds the loop ~1.5-3 s
    aggregator_batch_bytes: int = variable("DTI_AGGREGATOR_BATCH_BYTES", 16 * 1024 * 1024)
    aggregator_linger_ms: int = variable("DTI_AGGREGATOR_LINGER_MS", 5)
    aggregator_fetch_wait_ms: int = variable("DTI_AGGREGATOR_FETCH_WAIT_MS", 100)
    aggregator_cache_entities: int = variable("DTI_AGGREGATOR_CACHE_ENTITIES", 500_000)
    aggregator_commit_interval_s: float = variable("DTI_AGGREGATOR_COMMIT_INTERVAL_S", 1.0)
    # `up` and bench: 0 folds in the process that owns chDB (and answers gRPC); N runs N fold
    # processes apart, writing through that process's state store (remote_store.py).
    aggregator_processes: int = variable("DTI_AGGREGATOR_PROCESSES", 0)
    kafka_session_timeout_s: float = variable("DTI_KAFKA_SESSION_TIMEOUT_S", 10.0)
    gc_young_threshold: int = variable("DTI_GC_YOUNG_THRESHOLD", 10_000)  # 0: Python's default (700)
    watch_interval_s: float = variable("DTI_WATCH_INTERVAL_S", 0.25)
    # the aggregator behind and not moving this long: health says NOT_SERVING
    health_stall_s: float = variable("DTI_HEALTH_STALL_S", 60.0)
    judge_granularity_s: float = variable("DTI_JUDGE_GRANULARITY_S", 60.0)
    judge_warm_lead_s: float = variable("DTI_JUDGE_WARM_LEAD_S", 10.0)  # 0: no warming before the instant turns
    ranking_cache: bool = variable("DTI_RANKING_CACHE", True, parse_bool)
    day_snapshots: bool = variable("DTI_DAY_SNAPSHOTS", True, parse_bool)
    snapshot_interval_s: float = variable("DTI_SNAPSHOT_INTERVAL_S", 1.0)
    console_session_hours: float = variable("DTI_CONSOLE_SESSION_HOURS", 12.0)
    console_heartbeat_s: float = variable("DTI_CONSOLE_HEARTBEAT_S", 2.0)
    console_secure_cookies: bool = variable("DTI_CONSOLE_SECURE_COOKIES", False, parse_bool)


@dataclass(frozen=True)
class Settings:
    """What the whole system shares, then a group per service, then the tuning knobs: the
    groups are README's configuration table and docs/operations.md's tuning table."""
    data_dir: Path = variable("DTI_DATA_DIR", Path("data"))
    kafka_bootstrap: str = variable("DTI_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    # How every Kafka client authenticates (dti_pulse/kafka.py KafkaSecurity)
    kafka_security_protocol: str = variable("DTI_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    kafka_sasl_mechanism: str = variable("DTI_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    kafka_username: str = variable("DTI_KAFKA_USERNAME", "")
    kafka_password: str = variable("DTI_KAFKA_PASSWORD", "")
    kafka_ca: Path | None = variable("DTI_KAFKA_CA", None, Path)
    clickhouse_dsn: str = variable("DTI_CLICKHOUSE_DSN", "")  # empty: chDB under data_dir
    clickhouse_password: str = variable("DTI_CLICKHOUSE_PASSWORD", "")  # a server's, kept out of the DSN
    agencies_path: Path = variable("DTI_AGENCIES", DEFAULT_AGENCIES)
    rules_dir: Path = variable("DTI_RULES_DIR", DEFAULT_RULES_DIR)
    rules_version: str = variable("DTI_RULES_VERSION", "dti-pulse-2026")
    # TLS for what this process serves (ingest, console: HTTPS; ranking: gRPC over TLS), and
    # the CA it trusts as a client of ranking; a client CA makes ranking require client certs.
    tls_cert: Path | None = variable("DTI_TLS_CERT", None, Path)
    tls_key: Path | None = variable("DTI_TLS_KEY", None, Path)
    tls_ca: Path | None = variable("DTI_TLS_CA", None, Path)
    tls_client_ca: Path | None = variable("DTI_TLS_CLIENT_CA", None, Path)
    log_format: str = variable("DTI_LOG_FORMAT", "text", parse_log_format)  # "json": a JSON object a line
    log_level: str = variable("DTI_LOG_LEVEL", "INFO", parse_log_level)
    access_log: bool = variable("DTI_ACCESS_LOG", True, parse_bool)  # a line per HTTP request (dti_pulse.access)
    # /metrics of the processes that serve no HTTP (aggregator, ranking, store); `up` gives fold
    # processes apart the ports after it. Ingest and the console serve /metrics on their own port.
    metrics_host: str = variable("DTI_METRICS_HOST", "127.0.0.1")
    metrics_port: int = variable("DTI_METRICS_PORT", 9464)  # 0: none
    events_topic: str = variable("DTI_EVENTS_TOPIC", "dti.events.v1")
    dead_letter_topic: str = variable("DTI_DLQ_TOPIC", "dti.events.dlq")
    ingest: IngestSettings = field(default_factory=IngestSettings)
    ranking: RankingSettings = field(default_factory=RankingSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    tuning: Tuning = field(default_factory=Tuning)

    @property
    def effective_clickhouse_dsn(self) -> str:
        """The DSN to connect with: DTI_CLICKHOUSE_PASSWORD put in a server's DSN."""
        dsn = self.clickhouse_dsn or f"chdb://{(self.data_dir / 'chdb').resolve()}"
        if not self.clickhouse_password or dsn.startswith("chdb://"):
            return dsn
        parts = urlsplit(dsn)
        user = unquote(parts.username or "default")
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{quote(user, safe='')}:{quote(self.clickhouse_password, safe='')}@{host}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def shown_clickhouse_dsn(self) -> str:
        """The DSN to print: any password masked."""
        parts = urlsplit(self.effective_clickhouse_dsn)
        if parts.password is None:
            return self.effective_clickhouse_dsn
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))

    @property
    def effective_ranking_address(self) -> str:
        host = "127.0.0.1" if self.ranking.host in ("0.0.0.0", "::", "") else self.ranking.host
        return self.console.ranking_address or f"{host}:{self.ranking.port}"

    @property
    def kafka_security(self):
        from dti_pulse.kafka import KafkaSecurity

        return KafkaSecurity(self.kafka_security_protocol, self.kafka_sasl_mechanism, self.kafka_username,
                             self.kafka_password, self.kafka_ca)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    def with_overrides(self, **changes) -> "Settings":
        """Top-level settings by name, a group's as `group={"name": value}`; None keeps the value."""
        values = {}
        for name, value in changes.items():
            if isinstance(value, dict) and name in GROUPS:
                value = replace(getattr(self, name), **{k: v for k, v in value.items() if v is not None})
            if value is not None:
                values[name] = value
        return replace(self, **values)


GROUPS = ("ingest", "ranking", "console", "alerts", "tuning")


def _variables() -> dict[str, tuple[str | None, str, object]]:
    """{environment variable: (group or None for the top level, attribute, converter)}."""
    found = {}
    for group, cls in ((None, Settings), *((g, Settings.__dataclass_fields__[g].default_factory) for g in GROUPS)):
        for f in fields(cls):
            if "env" in f.metadata:
                convert = f.metadata["convert"] or {"str": str, "int": int, "float": float, "Path": Path}[f.type]
                found[f.metadata["env"]] = (group, f.name, convert)
    return found


_ENV = _variables()

# Every variable in one group: "system" (the top level) and the services' are what an
# operator sets (README's table); "tuning" is docs/operations.md's. What `up` tells its
# children is passed as `serve` arguments, not environment a user might set.
# tests/unit/test_config_docs.py holds the docs to this.
VARIABLE_GROUPS: dict[str, tuple[str, ...]] = {
    group or "system": tuple(name for name, (g, _, _) in _ENV.items() if g == group) for group in (None, *GROUPS)}
# Read where Settings are not (the broker launcher), documented with the tuning group.
OTHER_VARIABLES = {"DTI_KAFKA_LIBS": "tuning", "DTI_REPORT_FONT": "tuning"}  # the PDF report's font: services/console/reports.py


_SECRET_VARIABLES = {"DTI_KAFKA_PASSWORD", "DTI_CLICKHOUSE_PASSWORD", "DTI_CLICKHOUSE_DSN", "DTI_INGEST_TOKENS",
                     "DTI_GRPC_TOKENS", "DTI_CONSOLE_VIEWERS", "DTI_CONSOLE_TOKENS", "DTI_CONSOLE_SECRET",
                     "DTI_RANKING_TOKEN", "DTI_ALERT_SMTP_PASSWORD"}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict = {group: {} for group in GROUPS}
    for name, (group, attr, convert) in _ENV.items():
        raw = environ.get(name)
        from_file = environ.get(f"{name}_FILE")
        if from_file:  # Docker / Kubernetes secrets: the value in a file, not in the environment
            if raw:
                raise ConfigError(f"set {name} or {name}_FILE, not both")
            try:
                raw = Path(from_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE={from_file}: {exc.strerror}") from None
        if raw is None or raw == "":
            continue
        try:
            value = convert(raw)
        except ValueError as exc:
            shown = "..." if name in _SECRET_VARIABLES else repr(raw)  # never echo a secret into a log
            raise ConfigError(f"{name}={shown}: {exc}") from None
        (values[group] if group else values)[attr] = value
    settings = Settings().with_overrides(**values)
    try:
        settings.kafka_security  # noqa: B018  (refused here, with the variables' names, rather than at first use)
    except ValueError as exc:
        raise ConfigError(f"DTI_KAFKA_SECURITY_PROTOCOL / DTI_KAFKA_USERNAME / DTI_KAFKA_PASSWORD: {exc}") from None
    return settings


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load these same settings."""
    env = {}
    for name, (group, attr, convert) in _ENV.items():
        value = getattr(getattr(settings, group) if group else settings, attr)
        if convert is parse_tokens:
            value = ",".join(f"{source}={token}" for token, source in value.items())
        elif convert is parse_scopes:
            value = ",".join(f"{source}={'|'.join(patterns)}" for source, patterns in value.items())
        elif convert is parse_list:
            value = ",".join(value)
        elif convert is parse_viewers:
            value = ",".join(f"{name}={encoded}" for name, encoded in value.items())
        env[name] = "" if value is None else str(value)
    return env

"""The composition root: builds each service from settings with its real adapters.

`serve ingest|aggregator|ranking` (or a comma-separated set) runs components in this
process; `up` (dti_pulse.supervisor) runs them as a process tree on one machine.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from dti_pulse.config import Settings
from dti_pulse.registry import load_registry

log = logging.getLogger(__name__)
TARGETS = ("ingest", "aggregator", "ranking", "store", "console")
ALONE = ("ingest", "console")  # HTTP servers that run under uvicorn in a process of their own


def tune_gc(young_threshold: int) -> None:
    """Keep what start-up built (~140,000 objects: modules, descriptors) out of every later
    collection, and collect the young generation every young_threshold allocations instead
    of 700. A collection pauses the whole process (ranking's answers too), for as long as the
    objects it walks: at 50,000, the young collections walked ~30,000 of grpc's per-call
    garbage cycles and paused the core process 50-120 ms (bench/README.md).
    Reference counting still frees everything that is not a cycle at once. 0 keeps
    Python's threshold."""
    gc.collect()
    gc.freeze()
    if young_threshold > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)


def ingest_service(settings: Settings):
    """Ingest's use case and its Kafka publisher, as the HTTP entrypoint and `dti-pulse load` use them."""
    from services.ingest.publisher import KafkaPublisher
    from services.ingest.service import IngestService
    from services.ingest.sources import SourceScope

    publisher = KafkaPublisher(settings.kafka_bootstrap, settings.events_topic, settings.tuning.ingest_delivery_timeout_ms,
                               security=settings.kafka_security)
    service = IngestService(load_registry(settings.agencies_path), publisher, settings.tuning.ingest_dedup_capacity,
                            max_future_ms=int(settings.ingest.max_future_s * 1000),
                            sources=SourceScope(settings.ingest.source_agencies))
    return service, publisher


def build_ingest(settings: Settings):
    from services.ingest.http import create_app

    service, publisher = ingest_service(settings)
    return create_app(service, settings.ingest.tokens, publisher.ready, settings.tuning.ingest_max_body_bytes,
                      settings.tuning.ingest_max_events, on_shutdown=publisher.close,
                      connection_max_age_s=settings.tuning.ingest_connection_max_age_s)


def load_files(settings: Settings, files: list[Path], source: str | None, restart: bool) -> int:
    """`dti-pulse load`: the files through ingest's validation and Kafka path, with a progress bar."""
    import asyncio

    from tqdm import tqdm

    from services.ingest.backfill import Loader, LoadError, summary
    from services.ingest.publisher import NotAcknowledged

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"dti-pulse load: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    source = source or next(iter(settings.ingest.tokens.values()), "lgsp")
    ensure_service_topics(settings)
    service, publisher = ingest_service(settings)
    bars: dict[Path, tqdm] = {}

    def progress(done: int, total: int | None, path: Path) -> None:
        bar = bars.get(path)
        if bar is None:
            bar = bars[path] = tqdm(total=total, desc=path.name, unit=" records", unit_scale=True, file=sys.stderr,
                                    disable=None)  # no bar when stderr is not a terminal
        bar.update(done - bar.n)

    async def run():
        try:
            return await Loader(service, source, settings.data_dir, progress=progress).load(files, restart)
        finally:
            await publisher.close()

    try:
        outcome = asyncio.run(run())
    except LoadError as exc:
        print(f"dti-pulse load: {exc}", file=sys.stderr)
        return 2
    except NotAcknowledged as exc:
        print(f"dti-pulse load: {exc}; run it again to go on from the last acknowledged chunk", file=sys.stderr)
        return 1
    finally:
        for bar in bars.values():
            bar.close()
    print(summary(outcome))
    return 0


def ingest_app_from_env():
    """uvicorn's app factory: each ingest worker process builds its own app and producer."""
    from dti_pulse import logs
    from dti_pulse.config import load_settings

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format, settings.access_log)  # a worker is a fresh process
    app = build_ingest(settings)
    tune_gc(settings.tuning.gc_young_threshold)
    return app


def ensure_service_topics(settings: Settings) -> None:
    """The events topic and the dead letters, as the settings size them."""
    from dti_pulse.kafka import ensure_topics

    ensure_topics(settings.kafka_bootstrap, {settings.events_topic: settings.tuning.topic_partitions,
                                             settings.dead_letter_topic: 1}, replication=settings.tuning.topic_replication,
                  security=settings.kafka_security)


def clickhouse_client(settings: Settings, purpose: str):
    from dti_pulse.clickhouse import get_client
    from dti_pulse.schema import migrate

    client = get_client(settings.effective_clickhouse_dsn, purpose)
    migrate(client)
    return client


def state_store(settings: Settings, fold_index: int | None = None):
    """The ClickHouse store of a fold process's states: its own connections (a fold process
    apart gets its index in their names), and its writes told to ranking in this process."""
    from dti_pulse.clickhouse import get_client, write_signal
    from services.aggregator.store import ClickHouseStateStore

    suffix = "" if fold_index is None else f"-{fold_index}"
    dsn = settings.effective_clickhouse_dsn
    return ClickHouseStateStore(clickhouse_client(settings, f"aggregator{suffix}"),
                                on_write=write_signal(dsn).notify,
                                document_client=get_client(dsn, f"aggregator-documents{suffix}"),
                                activity_client=get_client(dsn, f"aggregator-activity{suffix}"))


@dataclass(frozen=True)
class StoreWiring:
    """How a fold process apart and the process that owns chDB find each other: `up` passes
    it as `serve` arguments (--state-store, --state-store-secret-file, --fold-index), not as
    environment, and keeps the secret in a file only its user reads."""
    address: str
    secret: bytes
    fold_index: int = 0

    @classmethod
    def from_arguments(cls, address: str, secret_file: Path | None, fold_index: int = 0) -> "StoreWiring":
        if not secret_file:
            raise SystemExit("--state-store needs --state-store-secret-file (dti-pulse up writes one for you)")
        try:
            secret = secret_file.read_bytes().strip()
        except OSError as exc:
            raise SystemExit(f"cannot read the state store's secret: {exc}") from None
        if not secret:
            raise SystemExit(f"the state store's secret file {secret_file} is empty")
        return cls(address, secret, fold_index)


def build_store_server(settings: Settings, wiring: StoreWiring | None):
    """Serves this process's ClickHouse to fold processes apart (chDB: only this process
    may open the data path)."""
    from services.aggregator.remote_store import StoreServer

    if wiring is None:
        raise SystemExit("the store target needs --state-store (host:port or a socket path) "
                         "and --state-store-secret-file")
    return StoreServer(wiring.address, wiring.secret, lambda fold_index: state_store(settings, fold_index))


def owner_targets(fold_processes: int, ranking: bool = True) -> str:
    """What the process that owns chDB serves, as `up` and the bench run it: ranking (when
    asked) and the aggregator's fold, or, with fold processes apart, the state store they
    write through."""
    if fold_processes:
        return "ranking,store" if ranking else "store"
    return "aggregator,ranking" if ranking else "aggregator"


def default_state_store_address(data_dir: Path) -> str:
    return str((data_dir / "state-store.sock").resolve())


def write_private_file(path: Path, content: bytes) -> Path:
    """A file only this user may read (0600 from its creation, not chmod-ed after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    return path.resolve()


def aggregation_layout(fold_processes: int, ranking: bool = True, data_dir: Path = Path("data"),
                       metrics_port: int = 0) -> list[tuple[str, list[str]]]:
    """The processes that fold (and, with ranking, answer gRPC), as `up` and the bench start
    them: (name, `dti-pulse` arguments). The chDB owner first; with fold processes apart,
    each with its index, all told where the owner serves the state store and where its
    secret is (a fresh one, written here), and given the metrics ports after metrics_port
    (0: none)."""
    import secrets

    owner = owner_targets(fold_processes, ranking)
    if not fold_processes:
        return [(owner.replace(",", "+"), ["serve", owner])]
    secret_file = write_private_file(data_dir / "state-store.secret", secrets.token_urlsafe(32).encode())
    wiring = ["--state-store", default_state_store_address(data_dir), "--state-store-secret-file", str(secret_file)]
    return [(owner.replace(",", "+"), ["serve", owner, *wiring]),
            *((f"aggregator-{index}", ["serve", "aggregator", *wiring, "--fold-index", str(index),
                                       "--metrics-port", str(metrics_port + 1 + index if metrics_port else 0)])
              for index in range(fold_processes))]


def folds_apart(targets: list[str], wiring: StoreWiring | None) -> bool:
    """An aggregator alone, given a state store, is a fold process apart: it writes through
    the store. One beside ranking or the store is in the process that owns the data."""
    return targets == ["aggregator"] and wiring is not None


def build_aggregator(settings: Settings, through_store: StoreWiring | None = None):
    """through_store: the states are written through the state store of the process that
    owns chDB (a fold process apart); None: to ClickHouse from this process."""
    from services.aggregator.app import StreamConfig, create_app
    from services.aggregator.processor import Aggregator
    from services.ingest.validation import EventRules

    ensure_service_topics(settings)
    fold_index = through_store.fold_index if through_store else 0
    if through_store is None:
        store = state_store(settings)
    else:
        from services.aggregator.remote_store import RemoteStateStore

        store = RemoteStateStore(through_store.address, through_store.secret, fold_index)
    rules = EventRules(load_registry(settings.agencies_path), int(settings.ingest.max_future_s * 1000))
    stream = StreamConfig(
        group=settings.tuning.aggregator_group, bootstrap=settings.kafka_bootstrap, events_topic=settings.events_topic,
        dead_letter_topic=settings.dead_letter_topic, partitions=settings.tuning.topic_partitions,
        replication=settings.tuning.topic_replication, datadir=settings.data_dir / "faust" / str(fold_index),
        session_timeout_s=settings.tuning.kafka_session_timeout_s, commit_interval_s=settings.tuning.aggregator_commit_interval_s,
        fetch_wait_ms=settings.tuning.aggregator_fetch_wait_ms, batch=settings.tuning.aggregator_batch,
        batch_seconds=settings.tuning.aggregator_batch_seconds, linger_ms=settings.tuning.aggregator_linger_ms,
        batch_bytes=settings.tuning.aggregator_batch_bytes, security=settings.kafka_security)
    return create_app(stream, lambda dead_letter: Aggregator(store, dead_letter, settings.tuning.aggregator_cache_entities,
                                                             rules=rules))


def build_ranking(settings: Settings):
    from dti_pulse.clickhouse import get_client, write_signal
    from services.ranking.grpc_server import RankingServer
    from services.ranking.rules import RulesCatalog
    from services.ranking.cache import CachedMeasures
    from services.ranking.service import RankingService
    from services.ranking.store import ClickHouseMeasures

    # Lookups, the data-version poll and the snapshot rebuilds each on a connection of its
    # own: none waits behind another's calls, nor behind the aggregator's writes. The schema
    # is migrated once, through the lookups' connection.
    dsn = settings.effective_clickhouse_dsn
    measures = ClickHouseMeasures(clickhouse_client(settings, "ranking"), day_snapshots=settings.tuning.day_snapshots,
                                  snapshot_interval_s=settings.tuning.snapshot_interval_s,
                                  version_client=get_client(dsn, "ranking-version", background=True),
                                  keeper_client=get_client(dsn, "ranking-snapshots", background=True))
    if settings.tuning.day_snapshots:
        measures.snapshots.ensure_definitions()
    if settings.tuning.ranking_cache:
        # The next minute's answers are counted on a connection of their own, one thread a
        # query: a lookup that must count does not wait behind them, nor lose a core to them.
        warm_store = ClickHouseMeasures(get_client(dsn, "ranking-warm", background=True),
                                        day_snapshots=settings.tuning.day_snapshots)
        warming = {"judge_step_ms": int(settings.tuning.judge_granularity_s * 1000),
                   "warm_lead_ms": int(settings.tuning.judge_warm_lead_s * 1000), "warm_store": warm_store}
        if dsn.startswith("chdb://"):
            # Every writer of a chDB path is in this process and signals its writes: the
            # slow poll is only a safety net (the system.parts query costs ~5-15 ms).
            measures = CachedMeasures(measures, version_ttl_s=2.0, changes=write_signal(dsn), **warming)
        else:
            measures = CachedMeasures(measures, **warming)
    service = RankingService(load_registry(settings.agencies_path), RulesCatalog(settings.rules_dir),
                             settings.rules_version, measures,
                             judge_granularity_ms=int(settings.tuning.judge_granularity_s * 1000))
    if not settings.ranking.tokens:
        raise SystemExit("DTI_GRPC_TOKENS is empty: set caller=token pairs (dti-pulse up makes one for you)")
    credentials = None
    if settings.tls:
        from dti_pulse.grpc_channel import server_credentials

        credentials = server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    return RankingServer(service, settings.ranking.host, settings.ranking.port, settings.ranking.tokens, credentials,
                         scopes=settings.ranking.token_scopes,
                         watch_interval_s=settings.tuning.watch_interval_s,
                         monitor=pipeline_monitor(settings), alerts=alert_loop(settings, service))


def alert_loop(settings: Settings, service):
    """Ranking's alert loop from DTI_ALERT_*: its rules (a malformed file stops the start
    with its reason), and a notice by webhook and / or e-mail where configured."""
    from dti_pulse.clickhouse import get_client
    from services.ranking.alerting import AlertLoop, MailNotifier, WebhookNotifier
    from services.ranking.alerts import AlertRulesError, load_alert_rules
    from services.ranking.store import ClickHouseAlertRecords

    alerts = settings.alerts
    if alerts.interval_s <= 0:
        return None
    indicators = {i.code for rules in service.rules.rulesets().values() for i in rules.indicators}
    try:
        rules = load_alert_rules(alerts.rules, indicators)
    except AlertRulesError as exc:
        raise SystemExit(f"alert rules refused: {exc}") from None
    notifiers = []
    if alerts.webhook_url:
        notifiers.append(WebhookNotifier(alerts.webhook_url))
    if alerts.smtp_host:
        if not alerts.mail_to:
            raise SystemExit("DTI_ALERT_SMTP_HOST is set but DTI_ALERT_MAIL_TO names no recipient")
        notifiers.append(MailNotifier(alerts.smtp_host, alerts.smtp_port, alerts.mail_from, list(alerts.mail_to),
                                      alerts.smtp_username, alerts.smtp_password, alerts.smtp_starttls))
    # On a connection of its own: the loop's thread never waits behind the lookups.
    records = ClickHouseAlertRecords(get_client(settings.effective_clickhouse_dsn, "ranking-alerts", background=True))
    return AlertLoop(service, rules, notifiers, alerts.interval_s, records=records)


def pipeline_monitor(settings: Settings):
    """Ranking's view of the pipeline (health, GetPipelineStatus): ClickHouse on a connection
    of its own, and the aggregator's consumer group on the events topic."""
    from dti_pulse.clickhouse import get_client
    from dti_pulse.kafka import KafkaWatch
    from services.ranking.pipeline import PipelineMonitor

    probe = get_client(settings.effective_clickhouse_dsn, "ranking-health", background=True)
    kafka = KafkaWatch(settings.kafka_bootstrap, settings.tuning.aggregator_group, settings.events_topic,
                       settings.dead_letter_topic, security=settings.kafka_security)
    return PipelineMonitor(lambda: probe.query("SELECT 1"), kafka, stall_after_s=settings.tuning.health_stall_s)


def build_console(settings: Settings):
    import secrets

    from services.console.auth import Authenticator
    from services.console.gateway import VendorAssets, create_app
    from services.console.ranking_client import RankingClient

    assets = VendorAssets(settings.console.assets)
    if assets.missing():
        raise SystemExit(f"console assets not installed ({', '.join(assets.missing())}): "
                         "run `npm ci --prefix services/console/web` (make install does)")
    if not settings.console.viewers and not settings.console.tokens:
        raise SystemExit("no console accounts: set DTI_CONSOLE_VIEWERS (name=hash from `dti-pulse hash-password`) "
                         "or DTI_CONSOLE_TOKENS (dti-pulse up makes one for you)")
    secret = settings.console.secret.encode() or secrets.token_bytes(32)
    auth = Authenticator(settings.console.viewers, settings.console.tokens, secret,
                         session_s=settings.tuning.console_session_hours * 3600)
    if not settings.console.ranking_token:
        raise SystemExit("DTI_RANKING_TOKEN is empty: the console needs one of ranking's DTI_GRPC_TOKENS "
                         "(dti-pulse up sets it for you)")
    client = RankingClient(settings.effective_ranking_address, settings.console.ranking_token,
                           tls=ranking_client_tls(settings))
    return create_app(client, auth, assets,
                      heartbeat_s=settings.tuning.console_heartbeat_s, secure_cookies=settings.tuning.console_secure_cookies)


def console_app_from_env():
    from dti_pulse.config import load_settings

    return build_console(load_settings())


def ranking_client_tls(settings: Settings):
    """How a client of ranking (the console, the shell's score and probe) reaches it: with
    DTI_TLS_CA, over TLS trusting that CA and presenting this process's certificate (mTLS);
    else None, plain."""
    if not settings.tls_ca:
        return None
    from dti_pulse.grpc_channel import channel_credentials

    return channel_credentials(settings.tls_ca, settings.tls_cert, settings.tls_key)


def https(settings: Settings) -> dict:
    """uvicorn's TLS options: HTTPS when a certificate and its key are configured."""
    if not settings.tls:
        return {}
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def serve_metrics(settings: Settings, port: int | None):
    """/metrics of a process that serves no HTTP: on port (`serve --metrics-port`), else
    DTI_METRICS_PORT; over TLS when this process has a certificate."""
    from dti_pulse.metrics import serve_metrics as start

    port = settings.metrics_port if port is None else port
    try:
        return start(settings.metrics_host, port, settings.tls_cert, settings.tls_key)
    except OSError as exc:
        raise SystemExit(f"cannot serve metrics on {settings.metrics_host}:{port}: {exc}") from None


def serve(targets: list[str], settings: Settings, wiring: StoreWiring | None = None,
          metrics_port: int | None = None) -> None:
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise SystemExit(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    for alone in ALONE:
        if alone in targets and len(targets) > 1:
            raise SystemExit(f"run {alone} in its own process (dti-pulse up does this)")
    if targets == ["console"]:
        import uvicorn

        build_console(settings)  # fails here, with its reason, on a bad configuration
        uvicorn.run("dti_pulse.bootstrap:console_app_from_env", factory=True, host=settings.console.host,
                    port=settings.console.port, loop="uvloop", http="httptools", log_level="warning",
                    timeout_graceful_shutdown=3, **https(settings))
        return
    if targets == ["ingest"]:
        import uvicorn

        if not settings.ingest.tokens:
            raise SystemExit("DTI_INGEST_TOKENS is empty: set source=token pairs (dti-pulse up makes one for you)")
        ensure_service_topics(settings)
        if settings.tuning.ingest_workers > 1:
            from dti_pulse.metrics import prepare_multiprocess

            prepare_multiprocess(settings.data_dir / "metrics" / f"ingest-{settings.ingest.port}")
        # Workers are processes (an ingest worker is CPU-bound); they read the same environment.
        uvicorn.run("dti_pulse.bootstrap:ingest_app_from_env", factory=True, workers=settings.tuning.ingest_workers,
                    host=settings.ingest.host, port=settings.ingest.port, loop="uvloop", http="httptools",
                    log_level="warning", timeout_graceful_shutdown=5, **https(settings))
        return

    metrics_server = serve_metrics(settings, metrics_port)
    ranking = build_ranking(settings) if "ranking" in targets else None
    if ranking:
        ranking.start_in_thread()
    store_server = build_store_server(settings, wiring).start() if "store" in targets else None
    try:
        if "aggregator" in targets:
            import faust
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            app = build_aggregator(settings, wiring if folds_apart(targets, wiring) else None)
            tune_gc(settings.tuning.gc_young_threshold)
            worker = faust.Worker(app, loglevel="WARNING", redirect_stdouts=False, override_logging=False)
            if not sys.stdout.isatty():
                worker.spinner = None  # its terminal escape codes would land in log files
            try:
                worker.execute_from_commandline()
            except SystemExit:
                pass
        else:
            tune_gc(settings.tuning.gc_young_threshold)  # ranking's and the store's Python, as in the aggregator's process
            _wait_for_signal()
    finally:
        if metrics_server:
            metrics_server.shutdown()
        if store_server:
            store_server.stop()
        if ranking:
            ranking.stop()
        from dti_pulse.clickhouse import close_client

        close_client(settings.effective_clickhouse_dsn)

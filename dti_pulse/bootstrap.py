"""The composition root: builds each service from settings with its real adapters.

`serve ingest|aggregator|ranking` (or a comma-separated set) runs components in this
process; `up` (dti_pulse.supervisor) runs them as a process tree on one machine.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
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
    garbage cycles and paused the core process 50-120 ms (bench/README.md, 2026-11-30).
    Reference counting still frees everything that is not a cycle at once. 0 keeps
    Python's threshold."""
    gc.collect()
    gc.freeze()
    if young_threshold > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)


def build_ingest(settings: Settings):
    from services.ingest.dedup import RecentIds
    from services.ingest.http import create_app
    from services.ingest.publisher import KafkaPublisher
    from services.ingest.service import IngestService

    publisher = KafkaPublisher(settings.kafka_bootstrap, settings.events_topic, settings.ingest_delivery_timeout_ms)
    service = IngestService(load_registry(settings.agencies_path), publisher, RecentIds(settings.ingest_dedup_capacity),
                            max_future_ms=int(settings.ingest_max_future_s * 1000))
    return create_app(service, settings.ingest_tokens, publisher.ready, settings.ingest_max_body_bytes,
                      settings.ingest_max_events, on_shutdown=publisher.close,
                      connection_max_age_s=settings.ingest_connection_max_age_s)


def ingest_app_from_env():
    """uvicorn's app factory: each ingest worker process builds its own app and producer."""
    from dti_pulse.config import load_settings

    settings = load_settings()
    app = build_ingest(settings)
    tune_gc(settings.gc_young_threshold)
    return app


def ensure_service_topics(settings: Settings) -> None:
    """The events topic and the dead letters, as the settings size them."""
    from dti_pulse.kafka import ensure_topics

    ensure_topics(settings.kafka_bootstrap, {settings.events_topic: settings.topic_partitions,
                                             settings.dead_letter_topic: 1}, replication=settings.topic_replication)


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


def build_store_server(settings: Settings):
    """Serves this process's ClickHouse to fold processes apart (chDB: only this process
    may open the data path)."""
    from services.aggregator.remote_store import StoreServer

    if not settings.state_store_address:
        raise SystemExit("the store target needs DTI_STATE_STORE_ADDRESS (host:port or a socket path)")
    if not settings.state_store_secret:
        raise SystemExit("the store target needs DTI_STATE_STORE_SECRET (dti-pulse up makes one for you)")
    return StoreServer(settings.state_store_address, settings.state_store_secret.encode(),
                       lambda fold_index: state_store(settings, fold_index))


def owner_targets(fold_processes: int, ranking: bool = True) -> str:
    """What the process that owns chDB serves, as `up` and the bench run it: ranking (when
    asked) and the aggregator's fold, or, with fold processes apart, the state store they
    write through."""
    if fold_processes:
        return "ranking,store" if ranking else "store"
    return "aggregator,ranking" if ranking else "aggregator"


def default_state_store_address(data_dir: Path) -> str:
    return str((data_dir / "state-store.sock").resolve())


def aggregation_layout(fold_processes: int, ranking: bool = True,
                       store_address: str = "", store_secret: str = "", data_dir: Path = Path("data")
                       ) -> list[tuple[str, list[str], dict[str, str]]]:
    """The processes that fold (and, with ranking, answer gRPC), as `up` and the bench start
    them: (name, `dti-pulse` arguments, environment of its own). The chDB owner first; with
    fold processes apart, each with its index, all told where the owner serves the state
    store and its secret (made here unless given)."""
    owner = owner_targets(fold_processes, ranking)
    if not fold_processes:
        return [(owner.replace(",", "+"), ["serve", owner], {})]
    import secrets

    wiring = {"DTI_STATE_STORE_ADDRESS": store_address or default_state_store_address(data_dir),
              "DTI_STATE_STORE_SECRET": store_secret or secrets.token_urlsafe(32)}
    return [(owner.replace(",", "+"), ["serve", owner], wiring),
            *((f"aggregator-{index}", ["serve", "aggregator"], {**wiring, "DTI_AGGREGATOR_INDEX": str(index)})
              for index in range(fold_processes))]


def folds_apart(targets: list[str], settings: Settings) -> bool:
    """An aggregator alone, given a store address, is a fold process apart: it writes through
    the store. One beside ranking or the store is in the process that owns the data."""
    return targets == ["aggregator"] and bool(settings.state_store_address)


def build_aggregator(settings: Settings, writes_clickhouse: bool = True):
    """writes_clickhouse False: the states are written through the state store at
    DTI_STATE_STORE_ADDRESS (a fold process apart from the process that owns chDB)."""
    from services.aggregator.app import StreamConfig, create_app
    from services.aggregator.processor import Aggregator
    from services.ingest.validation import EventRules

    ensure_service_topics(settings)
    if writes_clickhouse:
        store = state_store(settings)
    else:
        from services.aggregator.remote_store import RemoteStateStore

        if not settings.state_store_secret:
            raise SystemExit("DTI_STATE_STORE_ADDRESS is set but DTI_STATE_STORE_SECRET is empty")
        store = RemoteStateStore(settings.state_store_address, settings.state_store_secret.encode(),
                                 settings.aggregator_index)
    rules = EventRules(load_registry(settings.agencies_path), int(settings.ingest_max_future_s * 1000))
    stream = StreamConfig(
        group=settings.aggregator_group, bootstrap=settings.kafka_bootstrap, events_topic=settings.events_topic,
        dead_letter_topic=settings.dead_letter_topic, partitions=settings.topic_partitions,
        replication=settings.topic_replication, datadir=settings.data_dir / "faust" / str(settings.aggregator_index),
        session_timeout_s=settings.kafka_session_timeout_s, commit_interval_s=settings.aggregator_commit_interval_s,
        fetch_wait_ms=settings.aggregator_fetch_wait_ms, batch=settings.aggregator_batch,
        batch_seconds=settings.aggregator_batch_seconds, linger_ms=settings.aggregator_linger_ms,
        batch_bytes=settings.aggregator_batch_bytes)
    return create_app(stream, lambda dead_letter: Aggregator(store, dead_letter, settings.aggregator_cache_entities,
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
    measures = ClickHouseMeasures(clickhouse_client(settings, "ranking"), day_snapshots=settings.day_snapshots,
                                  snapshot_interval_s=settings.snapshot_interval_s,
                                  version_client=get_client(dsn, "ranking-version", background=True),
                                  keeper_client=get_client(dsn, "ranking-snapshots", background=True))
    if settings.day_snapshots:
        measures.ensure_day_snapshot_definitions()
    if settings.ranking_cache:
        # The next minute's answers are counted on a connection of their own, one thread a
        # query: a lookup that must count does not wait behind them, nor lose a core to them.
        warm_store = ClickHouseMeasures(get_client(dsn, "ranking-warm", background=True),
                                        day_snapshots=settings.day_snapshots)
        warming = {"judge_step_ms": int(settings.judge_granularity_s * 1000),
                   "warm_lead_ms": int(settings.judge_warm_lead_s * 1000), "warm_store": warm_store}
        if dsn.startswith("chdb://"):
            # Every writer of a chDB path is in this process and signals its writes: the
            # slow poll is only a safety net (the system.parts query costs ~5-15 ms).
            measures = CachedMeasures(measures, version_ttl_s=2.0, changes=write_signal(dsn), **warming)
        else:
            measures = CachedMeasures(measures, **warming)
    service = RankingService(load_registry(settings.agencies_path), RulesCatalog(settings.rules_dir),
                             settings.rules_version, measures,
                             judge_granularity_ms=int(settings.judge_granularity_s * 1000))
    return RankingServer(service, settings.grpc_host, settings.grpc_port, watch_interval_s=settings.watch_interval_s,
                         monitor=pipeline_monitor(settings))


def pipeline_monitor(settings: Settings):
    """Ranking's view of the pipeline (health, GetPipelineStatus): ClickHouse on a connection
    of its own, and the aggregator's consumer group on the events topic."""
    from dti_pulse.clickhouse import get_client
    from dti_pulse.kafka import KafkaWatch
    from services.ranking.pipeline import PipelineMonitor

    probe = get_client(settings.effective_clickhouse_dsn, "ranking-health", background=True)
    kafka = KafkaWatch(settings.kafka_bootstrap, settings.aggregator_group, settings.events_topic,
                       settings.dead_letter_topic)
    return PipelineMonitor(lambda: probe.query("SELECT 1"), kafka, stall_after_s=settings.health_stall_s)


def build_console(settings: Settings):
    import secrets

    from services.console.auth import Authenticator
    from services.console.gateway import VendorAssets, create_app
    from services.console.ranking_client import RankingClient

    assets = VendorAssets(settings.console_assets)
    if assets.missing():
        raise SystemExit(f"console assets not installed ({', '.join(assets.missing())}): "
                         "run `npm ci --prefix services/console/web` (make install does)")
    if not settings.console_viewers and not settings.console_tokens:
        raise SystemExit("no console accounts: set DTI_CONSOLE_VIEWERS (name=hash from `dti-pulse hash-password`) "
                         "or DTI_CONSOLE_TOKENS (dti-pulse up makes one for you)")
    secret = settings.console_secret.encode() or secrets.token_bytes(32)
    auth = Authenticator(settings.console_viewers, settings.console_tokens, secret,
                         session_s=settings.console_session_hours * 3600)
    return create_app(RankingClient(settings.effective_ranking_address), auth, assets,
                      heartbeat_s=settings.console_heartbeat_s, secure_cookies=settings.console_secure_cookies)


def console_app_from_env():
    from dti_pulse.config import load_settings

    return build_console(load_settings())


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


def serve(targets: list[str], settings: Settings) -> None:
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise SystemExit(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    for alone in ALONE:
        if alone in targets and len(targets) > 1:
            raise SystemExit(f"run {alone} in its own process (dti-pulse up does this)")
    if targets == ["console"]:
        import uvicorn

        build_console(settings)  # fails here, with its reason, on a bad configuration
        uvicorn.run("dti_pulse.bootstrap:console_app_from_env", factory=True, host=settings.console_host,
                    port=settings.console_port, loop="uvloop", http="httptools", log_level="warning",
                    timeout_graceful_shutdown=3)
        return
    if targets == ["ingest"]:
        import uvicorn

        if not settings.ingest_tokens:
            raise SystemExit("DTI_INGEST_TOKENS is empty: set source=token pairs (dti-pulse up makes one for you)")
        ensure_service_topics(settings)
        # Workers are processes (an ingest worker is CPU-bound); they read the same environment.
        uvicorn.run("dti_pulse.bootstrap:ingest_app_from_env", factory=True, workers=settings.ingest_workers,
                    host=settings.http_host, port=settings.http_port, loop="uvloop", http="httptools",
                    log_level="warning", timeout_graceful_shutdown=5)
        return

    ranking = build_ranking(settings) if "ranking" in targets else None
    if ranking:
        ranking.start_in_thread()
    store_server = build_store_server(settings).start() if "store" in targets else None
    try:
        if "aggregator" in targets:
            import faust
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            app = build_aggregator(settings, writes_clickhouse=not folds_apart(targets, settings))
            tune_gc(settings.gc_young_threshold)
            worker = faust.Worker(app, loglevel="WARNING", redirect_stdouts=False, override_logging=False)
            try:
                worker.execute_from_commandline()
            except SystemExit:
                pass
        else:
            tune_gc(settings.gc_young_threshold)  # ranking's and the store's Python, as in the aggregator's process
            _wait_for_signal()
    finally:
        if store_server:
            store_server.stop()
        if ranking:
            ranking.stop()
        from dti_pulse.clickhouse import close_client

        close_client(settings.effective_clickhouse_dsn)

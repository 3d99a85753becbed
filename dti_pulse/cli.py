"""The `dti-pulse` command: up | serve TARGETS | migrate | dlq list|replay | score | ranking | simulate |
hash-password."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dti_pulse.config import ConfigError, load_settings, parse_log_level


def probe_health(kind: str, target: str, service: str, timeout_s: float, settings) -> int:
    """0 when healthy, 1 otherwise, with the reason on stderr; TLS as the settings say."""
    if kind == "http":
        import ssl
        import urllib.request

        context = ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)
        try:
            with urllib.request.urlopen(target, timeout=timeout_s, context=context) as answer:
                return 0 if answer.status == 200 else 1
        except OSError as exc:  # URLError, HTTPError (not 2xx), timeouts
            print(f"dti-pulse probe: {target}: {exc}", file=sys.stderr)
            return 1
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from dti_pulse.bootstrap import ranking_client_tls
    from dti_pulse.grpc_channel import ranking_channel

    channel = ranking_channel(target, "", ranking_client_tls(settings))  # health needs no token
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                          timeout=timeout_s)
    except grpc.RpcError as exc:
        print(f"dti-pulse probe: {target} {service}: {exc.code().name}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"dti-pulse probe: {target} {service}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}",
              file=sys.stderr)
        return 1
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dti-pulse")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def check_registry(path: Path) -> int:
    from datetime import date

    from dti_pulse.registry import COHORTS, RegistryError, load_registry

    try:
        registry = load_registry(path)
    except (OSError, RegistryError) as exc:
        print(f"dti-pulse registry: {exc}", file=sys.stderr)
        return 1
    problems = registry.problems()
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    today = date.today()
    in_service = {kind: len(registry.cohort(kind, today, today)) for kind in COHORTS}
    merged = sum(1 for a in registry.all() if a.successor)
    print(f"{path}: {len(registry)} agencies; in service today: "
          + ", ".join(f"{n} {kind}s" for kind, n in in_service.items()) + f"; {merged} merged into a successor"
          + (f"; {len(problems)} problem(s)" if problems else "; no problem"))
    return 1 if problems else 0


def needs_clickhouse(args) -> bool:
    if args.command == "serve":
        return bool({t.strip() for t in args.targets.split(",")} & {"aggregator", "ranking", "store"})
    return args.command in ("up", "migrate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dti-pulse", description=__doc__)
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING... (default: DTI_LOG_LEVEL, else INFO)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole system on this machine (local Apache Kafka and chDB)")
    up.add_argument("--data-dir", type=Path, help="chDB data and logs (default ./data, or DTI_DATA_DIR)")
    up.add_argument("--http-port", type=int, help="ingest HTTP port (default 8080)")
    up.add_argument("--grpc-port", type=int, help="ranking gRPC port (default 50051)")
    up.add_argument("--console-port", type=int, help="operations-centre console port (default 8090)")
    up.add_argument("--kafka-port", type=int, default=9092,
                    help="the local Apache Kafka's port (default 9092; unused when DTI_KAFKA_BOOTSTRAP is set)")
    up.add_argument("--no-simulator", action="store_true", help="do not feed the built-in bus simulator")
    up.add_argument("--simulator-rate", type=float, help="simulated events per second (default: the "
                    "province's real volume in working hours, ~2/s; more is a load test)")

    serve = commands.add_parser("serve", help="run components in this process against external Kafka / ClickHouse")
    serve.add_argument("targets", help="ingest | console | aggregator | ranking | aggregator,ranking | ranking,store")
    serve.add_argument("--state-store", metavar="ADDRESS",
                       help="with store: where to serve fold processes apart; with aggregator alone: the state "
                            "store to write through (host:port or a socket path; `up` sets it)")
    serve.add_argument("--state-store-secret-file", type=Path, metavar="PATH",
                       help="the file holding the state store's shared secret")
    serve.add_argument("--fold-index", type=int, default=0, help="which fold process apart this is")
    serve.add_argument("--metrics-port", type=int, help="where /metrics is served by a process that serves no "
                                                        "HTTP (default: DTI_METRICS_PORT; 0: nowhere)")

    cluster = commands.add_parser("cluster-schema", help="print the schema for a ClickHouse cluster (Replicated "
                                  "tables ON CLUSTER, Distributed over them), made from the single-node migrations")
    cluster.add_argument("--cluster", default="dti", help="the cluster's name in remote_servers (default dti)")

    migrate = commands.add_parser("migrate", help="apply ClickHouse schema migrations, then exit (run once, "
                                                  "before the services, where they run apart)")
    migrate.add_argument("--cluster", metavar="NAME", help="apply the cluster schema (Replicated tables ON CLUSTER "
                                                           "NAME, Distributed over them) instead")
    migrate.add_argument("--wait", action="store_true", help="apply nothing: wait until every migration is "
                                                             "applied (an init container's job), exit 1 at --timeout")
    migrate.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)")

    simulate = commands.add_parser("simulate", help="push simulated bus events to an ingest endpoint")
    simulate.add_argument("--url", default="http://127.0.0.1:8080", help="https://... when ingest serves TLS")
    simulate.add_argument("--token", help="bearer token (default: the first of DTI_INGEST_TOKENS)")
    simulate.add_argument("--rate", type=float, help="events per second (default: the province's real "
                                                      "volume in working hours, ~2/s)")

    load = commands.add_parser("load", help="past events (JSONL, CSV, Parquet) through ingest's validation to "
                                            "Kafka; resumable, and loading again adds nothing")
    load.add_argument("files", nargs="+", type=Path, metavar="FILE")
    load.add_argument("--source", help="the source the events came from, as the bus's token names it (default: "
                                       "the first of DTI_INGEST_TOKENS, else lgsp)")
    load.add_argument("--restart", action="store_true", help="ignore the checkpoints: read every file from its start")

    sample = commands.add_parser("sample-year", help="write a year of the province's traffic at its real volumes "
                                                     "as JSONL, for `dti-pulse load`")
    sample.add_argument("year", type=int)
    sample.add_argument("--out", type=Path, required=True)
    sample.add_argument("--scale", type=float, default=1.0, help="a fraction of the real volumes (default 1)")

    dlq = commands.add_parser("dlq", help="the dead letters: list them, or replay the ones not replayed yet "
                                          "(once the cause is fixed) to the events topic")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("--json", action="store_true", help="one JSON object a line")

    for name, subject, example in (("score", "agency_code", "000.00.05.H56"), ("ranking", "cohort", "department")):
        ask = commands.add_parser(name, help=f"ask ranking (gRPC) for {'an agency score' if name == 'score' else 'a ranking'}"
                                             f", e.g. `dti-pulse {name} {example} 2026-11`")
        ask.add_argument("subject", metavar=subject.upper())
        ask.add_argument("period", nargs="?", default="month",
                         help="YYYY, YYYY-Qn, YYYY-MM, YYYY-MM-DD or last:Nd (default: this month)")
        ask.add_argument("--json", action="store_true", help="the gRPC answer as JSON")
        ask.add_argument("--token", help="bearer token (default: DTI_RANKING_TOKEN, else the first DTI_GRPC_TOKENS)")

    reconcile = commands.add_parser("reconcile", help="the portal's published figures (CSV: agency_code, period, "
                                                      "indicator, published) beside ours, with leads where they differ")
    reconcile.add_argument("file", type=Path)
    reconcile.add_argument("--tolerance", type=float, default=0.5, help="percentage points (default 0.5)")
    reconcile.add_argument("--json", action="store_true")
    reconcile.add_argument("--token", help="bearer token (default: DTI_RANKING_TOKEN, else the first DTI_GRPC_TOKENS)")

    report = commands.add_parser("report", help="a cohort's ranking for a period as the province files it "
                                                "(PDF and XLSX), e.g. `dti-pulse report department previous_month`")
    report.add_argument("cohort")
    report.add_argument("period", help="YYYY-MM, YYYY-Qn, YYYY, or previous_month, previous_quarter...")
    report.add_argument("--out", type=Path, default=Path("reports"))
    report.add_argument("--lang", choices=["vi", "en"], default="vi")
    report.add_argument("--token", help="bearer token (default: DTI_RANKING_TOKEN, else the first DTI_GRPC_TOKENS)")

    probe = commands.add_parser("probe", help="exit 0 when a part answers healthy (container healthchecks): "
                                              "`probe http URL` (200) or `probe grpc HOST:PORT [SERVICE]` (SERVING)")
    probe.add_argument("kind", choices=["http", "grpc"])
    probe.add_argument("target")
    probe.add_argument("service", nargs="?", default="dti.ranking.v1.RankingService",
                       help="the gRPC health service name (default: RankingService; '' for all)")
    probe.add_argument("--timeout", type=float, default=3.0)

    registry = commands.add_parser("registry", help="`registry check FILE`: read a new agency registry as the "
                                                    "services would, and say what is wrong with it")
    registry.add_argument("action", choices=["check"])
    registry.add_argument("file", type=Path)

    commands.add_parser("hash-password", help="read a console password (prompt or stdin), print its hash "
                                              "for DTI_CONSOLE_VIEWERS")

    args = parser.parse_args(argv)
    if args.command == "registry":
        return check_registry(args.file)
    if args.command == "hash-password":
        import getpass

        from services.console.auth import hash_password

        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        if not password:
            print("dti-pulse hash-password: empty password", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"dti-pulse: {exc}", file=sys.stderr)
        return 2
    from dti_pulse import logs

    if args.log_level:
        try:
            settings = settings.with_overrides(log_level=parse_log_level(args.log_level))
        except ValueError as exc:
            print(f"dti-pulse: --log-level: {exc}", file=sys.stderr)
            return 2
    logs.configure(settings.log_level, settings.log_format, settings.access_log)
    if needs_clickhouse(args) and settings.effective_clickhouse_dsn.startswith("chdb://"):
        from dti_pulse.clickhouse import ChdbMissing, require_chdb

        try:
            require_chdb()
        except ChdbMissing as exc:
            print(f"dti-pulse: {exc}", file=sys.stderr)
            return 2

    if args.command == "up":
        from dti_pulse.supervisor import up as run_up

        settings = settings.with_overrides(data_dir=args.data_dir, ingest={"port": args.http_port},
                                           ranking={"port": args.grpc_port}, console={"port": args.console_port})
        from dti_pulse.simulator import REAL_RATE

        return run_up(settings, None if args.no_simulator else args.simulator_rate or REAL_RATE, args.kafka_port)
    if args.command == "serve":
        from dti_pulse.bootstrap import StoreWiring, serve as run_serve

        wiring = (StoreWiring.from_arguments(args.state_store, args.state_store_secret_file, args.fold_index)
                  if args.state_store else None)
        run_serve([t.strip() for t in args.targets.split(",") if t.strip()], settings, wiring, args.metrics_port)
        return 0
    if args.command == "cluster-schema":
        from dti_pulse import cluster_schema

        return cluster_schema.main(args.cluster)
    if args.command == "migrate":
        from dti_pulse import schema

        return schema.main(settings.effective_clickhouse_dsn, args.cluster, args.wait, args.timeout)
    if args.command == "load":
        from dti_pulse.bootstrap import load_files

        return load_files(settings, args.files, args.source, args.restart)
    if args.command == "sample-year":
        from dti_pulse.registry import load_registry
        from dti_pulse.simulator import sample_year

        with open(args.out, "wb") as out:
            written = sample_year(args.year, out, load_registry(settings.agencies_path), args.scale)
        print(f"dti-pulse sample-year: {written:,} events of {args.year} in {args.out}")
        return 0
    if args.command == "dlq":
        from dti_pulse import dead_letters

        return dead_letters.main(args.action, settings.kafka_bootstrap, settings.dead_letter_topic,
                                 settings.events_topic, args.json, settings.kafka_security)
    if args.command == "probe":
        return probe_health(args.kind, args.target, args.service, args.timeout, settings)
    if args.command == "report":
        from dti_pulse import ask

        from services.console.views import resolve_period

        return ask.report(args.cohort, resolve_period(args.period), args.out, args.lang, settings, args.token)
    if args.command == "reconcile":
        from dti_pulse import ask

        return ask.reconcile(args.file, settings, args.tolerance, args.json, args.token)
    if args.command in ("score", "ranking"):
        from dti_pulse import ask

        from services.console.views import resolve_period

        return ask.main(args.command, args.subject, resolve_period(args.period), settings, args.json, args.token)
    if args.command == "simulate":
        from dti_pulse import simulator
        from dti_pulse.registry import load_registry

        token = args.token or next(iter(settings.ingest.tokens), None)
        if not token:
            print("dti-pulse simulate: give --token or set DTI_INGEST_TOKENS", file=sys.stderr)
            return 2
        try:
            simulator.run(args.url, token, load_registry(settings.agencies_path), args.rate or simulator.REAL_RATE,
                          verify=str(settings.tls_ca) if settings.tls_ca else True)
        except KeyboardInterrupt:
            pass
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())

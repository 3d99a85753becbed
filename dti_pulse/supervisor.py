"""`dti-pulse up`: the whole system on one machine as one process tree that heals.

Apache Kafka (unless DTI_KAFKA_BOOTSTRAP names a broker; its log under the data dir),
ingest, aggregator + ranking (one process: chDB lets one process own a data path), the
operations-centre console, and the bus simulator. A child that dies is started again after
a backoff, with a log line; only Ctrl-C / SIGTERM stops the tree. Every child dies with
`up` (PR_SET_PDEATHSIG), so a kill -9 of `up` leaves nothing running.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from dti_pulse.bootstrap import aggregation_layout, default_state_store_address
from dti_pulse.broker import KafkaBroker, die_with_parent, wait_for_port
from dti_pulse.config import Settings, settings_to_env

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 10.0  # a child that keeps dying is tried every 10 s, and said so each time
STABLE_AFTER_S = 30.0  # a child that ran this long starts its next backoff from the first step again


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} up: {message}", file=sys.stderr, flush=True)


@dataclass
class Child:
    """A process of the tree and how to start it again."""
    name: str
    start: object  # () -> subprocess.Popen
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff_s: float = FIRST_BACKOFF_S
    restart_at: float | None = None  # when a dead child is due to start again
    restarts: int = 0

    def launch(self) -> None:
        self.process = self.start()
        self.started_at = time.monotonic()
        self.restart_at = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    def __init__(self, settings: Settings, simulator_rate: float | None, embedded_broker: bool,
                 console_login: tuple[str, str] | None = None, kafka_port: int = 9092):
        self.settings = settings
        self.console_login = console_login  # (name, password) made for this run, to print
        self.simulator_rate = simulator_rate
        self.embedded_broker = embedded_broker
        self.kafka_port = kafka_port
        self.broker: KafkaBroker | None = None
        self.children: list[Child] = []
        self.owner: Child | None = None  # the process that owns chDB, stopped after the rest
        self._stopping = False

    def _spawn(self, args: list[str]) -> subprocess.Popen:
        env = {**os.environ, **settings_to_env(self.settings), "PYTHONUNBUFFERED": "1"}
        # A session of its own: a Ctrl-C or a SIGTERM to the tree reaches the supervisor only,
        # which stops the children in order (stop); they die with it if it is killed.
        return subprocess.Popen([sys.executable, "-m", "dti_pulse.cli", *args], env=env,
                                start_new_session=True, preexec_fn=die_with_parent)

    def _add(self, name: str, args: list[str]) -> Child:
        child = Child(name, lambda: self._spawn(args))
        child.launch()
        self.children.append(child)
        return child

    def _start_broker(self) -> subprocess.Popen:
        self.broker.start()
        return self.broker.process

    def start(self) -> None:
        s = self.settings
        scheme = "https" if s.tls else "http"
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if self.embedded_broker:
            self.broker = KafkaBroker(s.data_dir / "kafka", port=self.kafka_port, partitions=s.tuning.topic_partitions)
            broker = Child("kafka", self._start_broker)
            broker.launch()
            self.children.append(broker)
            self.settings = s = s.with_overrides(kafka_bootstrap=self.broker.bootstrap)
        folds = s.tuning.aggregator_processes
        (owner, owner_args), *fold_processes = aggregation_layout(folds, data_dir=s.data_dir,
                                                                    metrics_port=s.metrics_port)
        self.owner = core = self._add(owner, owner_args)
        ingest = self._add("ingest", ["serve", "ingest"])
        wait_for_port(s.ranking.host, s.ranking.port, timeout_s=120, process=core.process)
        for name, args in fold_processes:  # they wait for the store, up with the gRPC port
            self._add(name, args)
        console = None
        missing_assets = console_assets_missing(s)
        if missing_assets:
            log(f"console not started: its assets are not installed ({missing_assets}); run `make install` "
                "(npm ci --prefix services/console/web). The pipeline runs without it.")
        else:
            console = self._add("console", ["serve", "console"])
        self._wait_ready("ingest", f"{scheme}://{s.ingest.host}:{s.ingest.port}/readyz", ingest.process)
        if console:
            self._wait_ready("console", f"{scheme}://{s.console.host}:{s.console.port}/healthz", console.process)
        token, source = next(iter(s.ingest.tokens.items()))
        if self.simulator_rate:
            self._add("simulator", ["simulate", "--url", f"{scheme}://{s.ingest.host}:{s.ingest.port}",
                                    "--rate", str(self.simulator_rate)])  # token from the environment
        kafka = (f"{s.kafka_bootstrap} (Apache Kafka, log in {self.broker.data_dir / 'log'})" if self.broker
                 else s.kafka_bootstrap)
        console_line = (f"{scheme}://{s.console.host}:{s.console.port}/   {self._login_line()}" if console
                        else "not started (assets missing: make install)")
        print(f"""
dti-pulse is up
  ingest (HTTP)   {scheme}://{s.ingest.host}:{s.ingest.port}/v1/events   (OpenAPI: /openapi.json)
  ranking (gRPC)  {s.ranking.host}:{s.ranking.port}   (dti.ranking.v1.RankingService, reflection on)
  aggregator      {f'{folds} fold processes, writing through {default_state_store_address(s.data_dir)}' if folds else 'in the ranking process'}
  Kafka           {kafka}
  ClickHouse      {s.shown_clickhouse_dsn}
  console (web)   {console_line}
  metrics         {self._metrics_line(scheme)}
  ingest token    source={source} token={token}
  ranking token   {self._ranking_token_line()}
  simulator       {f'{self.simulator_rate:g} events/s' if self.simulator_rate else 'off'}
A process that dies is started again. Ctrl-C stops everything.""", flush=True)

    def _metrics_line(self, scheme: str) -> str:
        s = self.settings
        served = [f"{scheme}://{s.ingest.host}:{s.ingest.port}/metrics"]
        if s.metrics_port:
            served.append(f"{scheme}://{s.metrics_host}:{s.metrics_port}/metrics"
                          + (f" (+{s.tuning.aggregator_processes} ports after it)" if s.tuning.aggregator_processes else ""))
        return "   ".join(served) + "   (and the console's /metrics)"

    def _ranking_token_line(self) -> str:
        mine = self.settings.console.ranking_token
        caller, token = next(((c, t) for t, c in self.settings.ranking.tokens.items() if t != mine),
                             (self.settings.ranking.tokens.get(mine, ""), mine))
        return f"caller={caller} token={token}   (authorization: Bearer <token>)"

    def _login_line(self) -> str:
        if self.console_login:
            return f"(user {self.console_login[0]}, password {self.console_login[1]})"
        return "(accounts from DTI_CONSOLE_VIEWERS / DTI_CONSOLE_TOKENS)"

    def _wait_ready(self, name: str, url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stopping:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                # A local probe: the CA when one is configured, else the certificate is not checked.
                verify = str(self.settings.tls_ca) if self.settings.tls_ca else False
                if httpx.get(url, timeout=2, verify=verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if not self._stopping:
            raise TimeoutError(f"{url} not ready after {timeout_s}s")

    def wait(self) -> int:
        """Blocks until a signal; a child that dies meanwhile is started again after its
        backoff (doubling up to MAX_BACKOFF_S, back to the first step once it ran
        STABLE_AFTER_S). Returns the exit code."""
        while not self._stopping:
            now = time.monotonic()
            for child in self.children:
                if child.alive:
                    continue
                if child.restart_at is None:
                    if now - child.started_at >= STABLE_AFTER_S:
                        child.backoff_s = FIRST_BACKOFF_S
                    child.restart_at = now + child.backoff_s
                    log(f"{child.name} exited with {child.process.returncode}; "
                        f"starting it again in {child.backoff_s:g}s")
                    child.backoff_s = min(MAX_BACKOFF_S, child.backoff_s * 2)
                elif now >= child.restart_at:
                    try:
                        child.launch()
                        child.restarts += 1
                        log(f"{child.name} started again (pid {child.process.pid}, restart {child.restarts})")
                    except Exception as exc:  # the broker's start can fail: its dead process stays, tried again later
                        log(f"{child.name} could not start: {exc}")
                        child.started_at, child.restart_at = now, None
            time.sleep(0.2)
        return 0

    def stop(self, grace_s: float = 15.0) -> None:
        self._stopping = True
        # Producers first, the broker last, so that nothing accepted is cut off mid-write; and
        # the process that owns chDB after the rest: fold processes apart write through it, and
        # one whose write is in flight finishes it before it stops.
        python = [c for c in self.children if c.name != "kafka"]
        self._stop_all([c for c in python if c is not self.owner], grace_s)
        self._stop_all([c for c in python if c is self.owner], grace_s)
        if self.broker:
            self.broker.stop()

    @staticmethod
    def _stop_all(children: list[Child], grace_s: float) -> None:
        running = [c for c in reversed(children) if c.alive]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in running:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{child.name} did not stop in {grace_s:g}s; killing it")
                child.process.kill()
                child.process.wait()


def console_assets_missing(settings: Settings) -> str:
    from services.console.gateway import VendorAssets

    return ", ".join(VendorAssets(settings.console.assets).missing())


def up(settings: Settings, simulator_rate: float | None, kafka_port: int = 9092) -> int:
    embedded = not os.environ.get("DTI_KAFKA_BOOTSTRAP")
    if not settings.ingest.tokens:
        settings = settings.with_overrides(ingest={"tokens": {secrets.token_urlsafe(24): "simulator"}})
    if not settings.ranking.tokens:
        settings = settings.with_overrides(ranking={"tokens": {secrets.token_urlsafe(24): "operator"}})
    if not settings.console.ranking_token:
        console_token = secrets.token_urlsafe(24)
        settings = settings.with_overrides(ranking={"tokens": {**settings.ranking.tokens, console_token: "console"}},
                                           console={"ranking_token": console_token})
    console_login = None
    if not settings.console.viewers and not settings.console.tokens:
        from services.console.auth import hash_password

        console_login = ("operator", secrets.token_urlsafe(12))
        settings = settings.with_overrides(console={"viewers": {console_login[0]: hash_password(console_login[1])},
                                                    "secret": secrets.token_urlsafe(32)})
    supervisor = Supervisor(settings, simulator_rate, embedded, console_login, kafka_port)

    def on_signal(signum, frame):
        supervisor._stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        supervisor.start()
        code = supervisor.wait()
    except Exception as exc:
        print(f"dti-pulse up failed: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        supervisor.stop()
    print("dti-pulse stopped", flush=True)
    return code

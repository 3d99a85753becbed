"""`dti-pulse up`: the whole system on one machine as one process tree.

tansu (unless DTI_KAFKA_BOOTSTRAP names a broker), ingest, aggregator + ranking (one
process: chDB lets one process own a data path), the operations-centre console, and the
bus simulator. Ctrl-C / SIGTERM
stops them all; if one dies, the rest are stopped too.
"""
from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time

import httpx

from dti_pulse.bootstrap import default_state_store_address, owner_targets
from dti_pulse.broker import EmbeddedBroker, wait_for_port
from dti_pulse.config import Settings, settings_to_env


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (Linux prctl
    PR_SET_PDEATHSIG), since a child in a session of its own no longer gets the terminal's
    signals."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (AttributeError, OSError):
        pass


class Supervisor:
    def __init__(self, settings: Settings, simulator_rate: float | None, embedded_broker: bool,
                 console_login: tuple[str, str] | None = None):
        self.settings = settings
        self.console_login = console_login  # (name, password) made for this run, to print
        self.simulator_rate = simulator_rate
        self.embedded_broker = embedded_broker
        self.broker: EmbeddedBroker | None = None
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.owner: subprocess.Popen | None = None  # the process that owns chDB, stopped after the rest
        self._stopping = False

    def _spawn(self, name: str, args: list[str], **overrides) -> subprocess.Popen:
        env = {**os.environ, **settings_to_env(self.settings.with_overrides(**overrides)), "PYTHONUNBUFFERED": "1"}
        # A session of its own: a Ctrl-C or a SIGTERM to the tree reaches the supervisor only,
        # which stops the children in order (stop); they die with it if it is killed.
        process = subprocess.Popen([sys.executable, "-m", "dti_pulse.cli", *args], env=env,
                                   start_new_session=True, preexec_fn=_die_with_parent)
        self.children.append((name, process))
        return process

    def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if self.embedded_broker:
            self.broker = EmbeddedBroker(log_path=s.data_dir / "tansu.log").start()
            self.settings = s = s.with_overrides(kafka_bootstrap=self.broker.bootstrap)
        folds = s.aggregator_processes
        targets = owner_targets(folds)
        core = self.owner = self._spawn(targets.replace(",", "+"), ["serve", targets])
        ingest = self._spawn("ingest", ["serve", "ingest"])
        wait_for_port(s.grpc_host, s.grpc_port, timeout_s=120, process=core)
        for index in range(folds):  # they wait for the store, which is up with the gRPC port
            self._spawn(f"aggregator-{index}", ["serve", "aggregator"], aggregator_index=index)
        console = self._spawn("console", ["serve", "console"])
        self._wait_ready("ingest", f"http://{s.http_host}:{s.http_port}/readyz", ingest)
        self._wait_ready("console", f"http://{s.console_host}:{s.console_port}/healthz", console)
        token, source = next(iter(s.ingest_tokens.items()))
        if self.simulator_rate:
            self._spawn("simulator", ["simulate", "--url", f"http://{s.http_host}:{s.http_port}",
                                      "--rate", str(self.simulator_rate)])  # token from the environment
        print(f"""
dti-pulse is up
  ingest (HTTP)   http://{s.http_host}:{s.http_port}/v1/events   (OpenAPI: /openapi.json)
  ranking (gRPC)  {s.grpc_host}:{s.grpc_port}   (dti.ranking.v1.RankingService, reflection on)
  aggregator      {f'{folds} fold processes, writing through {s.state_store_address}' if folds else 'in the ranking process'}
  Kafka           {s.kafka_bootstrap}{' (embedded tansu, in memory)' if self.broker else ''}
  ClickHouse      {s.effective_clickhouse_dsn}
  console (web)   http://{s.console_host}:{s.console_port}/   {self._login_line()}
  ingest token    source={source} token={token}
  simulator       {f'{self.simulator_rate:g} events/s' if self.simulator_rate else 'off'}
Ctrl-C stops everything.""", flush=True)

    def _login_line(self) -> str:
        if self.console_login:
            return f"(user {self.console_login[0]}, password {self.console_login[1]})"
        return "(accounts from DTI_CONSOLE_VIEWERS / DTI_CONSOLE_TOKENS)"

    @staticmethod
    def _wait_ready(name: str, url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{url} not ready after {timeout_s}s")

    def wait(self) -> int:
        """Blocks until a signal or a child's death; returns the exit code."""
        while not self._stopping:
            for name, process in self.children:
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping the rest", file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.2)
        return 0

    def stop(self, grace_s: float = 15.0) -> None:
        self._stopping = True
        # Producers first, the broker last, so that nothing accepted is cut off mid-write; and
        # the process that owns chDB after the rest: fold processes apart write through it, and
        # one whose write is in flight finishes it before it stops.
        self._stop_all([child for child in self.children if child[1] is not self.owner], grace_s)
        self._stop_all([child for child in self.children if child[1] is self.owner], grace_s)
        if self.broker:
            self.broker.stop()

    @staticmethod
    def _stop_all(children: list[tuple[str, subprocess.Popen]], grace_s: float) -> None:
        for _, process in reversed(children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, process in reversed(children):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {grace_s:g}s; killing it", file=sys.stderr, flush=True)
                process.kill()
                process.wait()


def up(settings: Settings, simulator_rate: float | None) -> int:
    embedded = not os.environ.get("DTI_KAFKA_BOOTSTRAP")
    if not settings.ingest_tokens:
        settings = settings.with_overrides(ingest_tokens={secrets.token_urlsafe(24): "simulator"})
    console_login = None
    if not settings.console_viewers and not settings.console_tokens:
        from services.console.auth import hash_password

        console_login = ("operator", secrets.token_urlsafe(12))
        settings = settings.with_overrides(console_viewers={console_login[0]: hash_password(console_login[1])},
                                           console_secret=secrets.token_urlsafe(32))
    if settings.aggregator_processes:
        # Fold processes apart write through the process that owns chDB (services/aggregator/remote_store.py).
        settings = settings.with_overrides(
            state_store_address=settings.state_store_address or default_state_store_address(settings.data_dir),
            state_store_secret=settings.state_store_secret or secrets.token_urlsafe(32))
    supervisor = Supervisor(settings, simulator_rate, embedded, console_login)

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

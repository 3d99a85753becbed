"""The local Kafka broker for `up`, the tests and the bench: Apache Kafka itself, one KRaft
node (broker and controller in one JVM) whose log lives on disk under the data directory,
so that what it acknowledged survives a kill -9 of everything. Its jars come from Maven
Central through deploy/kafka/pom.xml (`make install`)."""
from __future__ import annotations

import base64
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_KAFKA_LIBS = REPO_DIR / "build" / "kafka" / "libs"
LOG4J_CONFIG = REPO_DIR / "deploy" / "kafka" / "log4j2.properties"
INSTALL_HINT = ("Apache Kafka needs Java 17 and its jars: `apt-get install openjdk-17-jre-headless maven`, then "
                "`make install` (it runs `mvn -f deploy/kafka/pom.xml dependency:copy-dependencies`)")


class BrokerUnavailable(RuntimeError):
    """Java or Kafka's jars are missing; the message says what to install."""


def die_with_parent() -> None:
    """In a child, before exec: SIGTERM when the process that started it dies (Linux prctl
    PR_SET_PDEATHSIG), so that a kill -9 of `up` or of a test leaves nothing behind; a
    child in a session of its own no longer gets the terminal's signals."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (AttributeError, OSError):
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float = 15.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args[0]} exited with {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


def java_command() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise BrokerUnavailable(f"java not found. {INSTALL_HINT}")
    return java


def kafka_libs() -> Path:
    libs = Path(os.environ.get("DTI_KAFKA_LIBS", DEFAULT_KAFKA_LIBS))
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise BrokerUnavailable(f"no Kafka jars in {libs}. {INSTALL_HINT}")
    return libs


class KafkaBroker:
    """One Apache Kafka KRaft node on loopback. Its log is data_dir/log: a broker started
    again on the same data_dir finds its topics, records and committed offsets there."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1",
                 heap_mb: int = 512, partitions: int = 8, log_path: Path | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.heap_mb = heap_mb
        self.partitions = partitions
        self.log_path = log_path or self.data_dir / "broker.log"
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _write_config(self, controller_port: int) -> Path:
        # The controller's port may change from one start to the next: with a static voter
        # set the quorum is named by node id, not by address.
        config = self.data_dir / "server.properties"
        config.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{self.host}:{controller_port}",
            f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.data_dir / 'log'}",
            f"num.partitions={self.partitions}",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]))
        return config

    def _java(self, main_class: str, *args: str, heap: bool = False) -> list[str]:
        options = [f"-Xms{min(256, self.heap_mb)}m", f"-Xmx{self.heap_mb}m", "-XX:+UseG1GC",
                   "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"] if heap else ["-Xmx256m"]
        return [java_command(), *options, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "-cp", str(kafka_libs() / "*"), main_class, *args]

    def start(self, timeout_s: float = 90.0) -> "KafkaBroker":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config(free_port(self.host))
        if not (self.data_dir / "log" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            # --cluster-id=ID in one argument: an id may begin with "-".
            formatted = subprocess.run(self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                                                  f"--config={config}"), capture_output=True, text=True)
            if formatted.returncode != 0:
                raise RuntimeError(f"formatting Kafka's log dir failed: {formatted.stderr or formatted.stdout}")
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(self._java("kafka.Kafka", str(config), heap=True), stdout=output,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=die_with_parent, cwd=self.data_dir)
        try:
            wait_for_port(self.host, self.port, timeout_s=timeout_s, process=self.process)
            wait_until_serving(self.bootstrap, timeout_s=timeout_s)
        except Exception:
            self.stop()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def wait_until_serving(bootstrap: str, timeout_s: float = 60.0, security=None) -> None:
    """Until the broker answers metadata with itself in it (the port opens before that)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                     client_id="dti-pulse-probe", **(security.client_options() if security else {}))
            try:
                if admin.describe_cluster().get("brokers"):
                    return
            finally:
                admin.close()
        except (KafkaError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"Kafka at {bootstrap} does not serve after {timeout_s}s: {last}")

"""Kafka plumbing shared by the services: topic creation and client settings."""
from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)
# The header that says why a message went to the dead-letter topic.
DEAD_LETTER_REASON_HEADER = "dti-reason"


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of the system authenticates: PLAINTEXT (the default, a broker
    on a private network), SASL_PLAINTEXT / SASL_SSL with SCRAM, or SSL; ca_file: the CA
    the broker's certificate is checked against (None: the system's roots)."""
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = ""
    ca_file: Path | None = None

    PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

    def __post_init__(self):
        if self.protocol not in self.PROTOCOLS:
            raise ValueError(f"Kafka security protocol {self.protocol!r} is not one of {', '.join(self.PROTOCOLS)}")
        if self.sasl and not (self.username and self.password):
            raise ValueError(f"{self.protocol} needs a Kafka username and password")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None) if self.tls else None

    def client_options(self) -> dict:
        """Keyword arguments that kafka-python's and aiokafka's clients both take."""
        options = {"security_protocol": self.protocol}
        if self.sasl:
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password)
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        return options

    def faust_credentials(self):
        """Faust's broker_credentials (None for PLAINTEXT)."""
        import faust

        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password, mechanism=self.mechanism,
                                         ssl_context=self.ssl_context())
        return faust.SSLCredentials(self.ssl_context()) if self.tls else None


PLAINTEXT = KafkaSecurity()


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 30.0, replication: int = 1,
                  security: KafkaSecurity = PLAINTEXT) -> None:
    """Creates missing topics ({name: partitions}, each with `replication` replicas); waits
    for the broker up to timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="dti-pulse-admin", request_timeout_ms=5000,
                                     **security.client_options())
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {bootstrap} is not reachable: {exc}") from exc
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, num_partitions=n, replication_factor=replication) for name, n in topics.items() if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
                log.info("created topics %s", [t.name for t in missing])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


@dataclass(frozen=True)
class GroupProgress:
    lag: int  # messages of the topic the group has not committed past
    committed: int  # the sum of its committed offsets: moves when the group makes progress
    dead_letters: int  # messages in the dead-letter topic
    lag_by_partition: tuple[tuple[int, int], ...] = ()  # (partition, lag) of each partition of the topic


class KafkaWatch:
    """What ranking tells of Kafka: whether the broker answers, how far a consumer group (the
    aggregator's) is behind on the events topic, and how many dead letters wait. read() asks
    the broker each time; it raises when the broker does not answer."""

    def __init__(self, bootstrap: str, group: str, topic: str, dead_letter_topic: str, timeout_ms: int = 5000,
                 security: KafkaSecurity = PLAINTEXT):
        self.bootstrap, self.group, self.topic, self.dead_letter_topic = bootstrap, group, topic, dead_letter_topic
        self.security = security
        self.timeout_ms = timeout_ms
        self._admin = None
        self._consumer = None

    def _clients(self):
        from kafka import KafkaConsumer

        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="dti-pulse-watch",
                                           request_timeout_ms=self.timeout_ms, bootstrap_timeout_ms=self.timeout_ms,
                                           reconnect_backoff_max_ms=1000, **self.security.client_options())
        if self._consumer is None:
            self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, client_id="dti-pulse-watch",
                                           request_timeout_ms=self.timeout_ms, session_timeout_ms=self.timeout_ms - 1000,
                                           heartbeat_interval_ms=1000, enable_auto_commit=False,
                                           bootstrap_timeout_ms=self.timeout_ms, reconnect_backoff_max_ms=1000,
                                           **self.security.client_options())
        return self._admin, self._consumer

    def _partitions(self, consumer, topic: str) -> list:
        from kafka import TopicPartition

        return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]

    def read(self) -> GroupProgress:
        try:
            admin, consumer = self._clients()
            events = self._partitions(consumer, self.topic)
            letters = self._partitions(consumer, self.dead_letter_topic)
            starts = consumer.beginning_offsets(events + letters)
            ends = consumer.end_offsets(events + letters)
            offsets = self._committed(admin, events)
            committed = {tp: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}
            lags = tuple((tp.partition, max(0, ends[tp] - committed.get(tp, starts[tp]))) for tp in events)
            return GroupProgress(sum(lag for _, lag in lags), sum(committed.values()),
                                 sum(ends[tp] - starts[tp] for tp in letters), lags)
        except Exception:
            self.close()  # the next read starts afresh (the broker may have come back elsewhere)
            raise

    def _committed(self, admin, partitions, tries: int = 3) -> dict:
        """The group's committed offsets; the coordinator may still be on its way (a broker's
        first group, or just after it moved), which a short wait outlasts."""
        for attempt in range(tries):
            try:
                return admin.list_group_offsets({self.group: partitions}).get(self.group, {})
            except KafkaError as exc:
                if not exc.retriable or attempt == tries - 1:
                    raise
                time.sleep(0.5)
        return {}

    def close(self) -> None:
        for client in (self._admin, self._consumer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # a client that never connected may fail to close
                    pass
        self._admin = self._consumer = None

"""Kafka plumbing shared by the services: topic creation and client settings."""
from __future__ import annotations

import logging
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)
# The header that says why a message went to the dead-letter topic.
DEAD_LETTER_REASON_HEADER = "dti-reason"


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 30.0, replication: int = 1) -> None:
    """Creates missing topics ({name: partitions}, each with `replication` replicas); waits
    for the broker up to timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="dti-pulse-admin", request_timeout_ms=5000)
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

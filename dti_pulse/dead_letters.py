"""`dti-pulse dlq list|replay`: what the aggregator set aside, and sending it back once fixed.

A dead letter is the message (or the one event) that could not be folded, with its reason in
the `dti-reason` header. Replay publishes the events of the dead letters not yet replayed
back to the events topic, each to its entity's partition as ingest does, then remembers how
far it got (the committed offset of the consumer group `dti-dead-letter-replay`), so that a
dead letter is replayed once. One that is still bad comes back as a new dead letter.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Iterator

from google.protobuf.message import DecodeError

from dti.events.v1.events_pb2 import EventBatch
from dti_pulse.events import envelopes_by_partition
from dti_pulse.kafka import DEAD_LETTER_REASON_HEADER, PLAINTEXT, KafkaSecurity

REPLAY_GROUP = "dti-dead-letter-replay"


@dataclass
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    reason: str
    value: bytes

    def events(self) -> list:
        """Its events, or [] when it holds none that can be read (empty, undecodable)."""
        if not self.value:
            return []
        try:
            return list(EventBatch.FromString(self.value).events)
        except DecodeError:
            return []

    def as_json(self) -> dict:
        events = self.events()
        return {"partition": self.partition, "offset": self.offset,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.timestamp_ms / 1000)),
                "reason": self.reason, "bytes": len(self.value), "events": len(events),
                "event_ids": [event.event_id for event in events[:5]]}


def _consumer(bootstrap: str, group_id: str | None, security: KafkaSecurity = PLAINTEXT):
    from kafka import KafkaConsumer

    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
                         auto_offset_reset="earliest", consumer_timeout_ms=3000, fetch_max_bytes=64 * 2 ** 20,
                         **security.client_options())


def read(consumer, topic: str, from_committed: bool) -> Iterator[DeadLetter]:
    """Every dead letter up to the topic's end as it is now (from the group's committed
    offsets, or from the beginning)."""
    from kafka import TopicPartition

    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not partitions:
        return
    consumer.assign(partitions)
    ends = consumer.end_offsets(partitions)
    for tp in partitions:
        committed = consumer.committed(tp) if from_committed else None
        consumer.seek(tp, committed or 0)
    remaining = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
    while remaining:
        batches = consumer.poll(timeout_ms=3000)
        if not batches:
            break
        for tp, records in batches.items():
            for record in records:
                if record.offset >= ends[tp]:
                    continue
                headers = dict(record.headers or ())
                yield DeadLetter(tp.partition, record.offset, record.timestamp,
                                 headers.get(DEAD_LETTER_REASON_HEADER, b"").decode(errors="replace"),
                                 record.value or b"")
            if consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)


def list_dead_letters(bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> list[DeadLetter]:
    consumer = _consumer(bootstrap, None, security)
    try:
        return list(read(consumer, topic, from_committed=False))
    finally:
        consumer.close()


def replay(bootstrap: str, dead_letter_topic: str, events_topic: str, security: KafkaSecurity = PLAINTEXT) -> dict:
    """Publishes the events of the dead letters not replayed before; returns counts."""
    from kafka import KafkaProducer, OffsetAndMetadata, TopicPartition

    consumer = _consumer(bootstrap, REPLAY_GROUP, security)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=64 * 2 ** 20,
                             **security.client_options())
    counts = {"dead_letters": 0, "events": 0, "not_replayable": 0}
    try:
        partitions = len(producer.partitions_for(events_topic))
        last: dict[int, int] = {}
        for letter in read(consumer, dead_letter_topic, from_committed=True):
            counts["dead_letters"] += 1
            events = letter.events()
            if not events:
                counts["not_replayable"] += 1  # empty or undecodable: nothing in it can ever count
            for partition, envelope in envelopes_by_partition(events, partitions):
                producer.send(events_topic, value=envelope, partition=partition)
            counts["events"] += len(events)
            last[letter.partition] = letter.offset
        producer.flush()  # acks=all: every event is durable before the offsets move on
        if last:
            consumer.commit({TopicPartition(dead_letter_topic, partition): OffsetAndMetadata(offset + 1, "", -1)
                             for partition, offset in last.items()})
    finally:
        producer.close()
        consumer.close()
    return counts


def main(command: str, bootstrap: str, dead_letter_topic: str, events_topic: str, as_json: bool,
         security: KafkaSecurity = PLAINTEXT) -> int:
    if command == "list":
        letters = list_dead_letters(bootstrap, dead_letter_topic, security)
        for letter in letters:
            entry = letter.as_json()
            if as_json:
                print(json.dumps(entry, ensure_ascii=False))
            else:
                print(f"{entry['partition']}:{entry['offset']}  {entry['at']}  {entry['events']} event(s)  "
                      f"{entry['reason']}")
        if not as_json:
            print(f"{len(letters)} dead letter(s) in {dead_letter_topic}")
        return 0
    counts = replay(bootstrap, dead_letter_topic, events_topic, security)
    print(json.dumps(counts) if as_json else
          f"replayed {counts['events']} event(s) of {counts['dead_letters']} dead letter(s) to {events_topic}; "
          f"{counts['not_replayable']} held no readable event")
    return 0

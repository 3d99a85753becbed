"""`dti-pulse load FILE...`: past events (JSONL, CSV or Parquet) through ingest's own
validation and Kafka path, so that trends, year rankings and `as_of` have a history.

- Each chunk of records is validated as a request would be (every refusal written, with
  its line and reason, to FILE.rejected.jsonl) and published only once Kafka acknowledged
  the one before; then the file's checkpoint (under DATA_DIR/load) moves past it. A run
  that stops, however it stops, resumes after the last acknowledged chunk.
- Loading again adds nothing: the aggregator keeps each event once per (source, event id),
  so give the source the events came from (`--source`, as the bus's token names it).

CSV columns are the JSON fields (docs/domain.md, Events); `to_agencies` holds codes
separated by '|', flags are true/false (or 1/0). Parquet needs pyarrow (`pip install
'dti-pulse[local]'`).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Iterator

import orjson
from google.protobuf.descriptor import FieldDescriptor

from dti.events.v1.events_pb2 import Event
from services.ingest.service import IngestService

log = logging.getLogger(__name__)
CHUNK = 5_000  # records a chunk: ~5 Kafka requests over 8 partitions, a few ms to validate
FORMATS = ("jsonl", "csv", "parquet")


def _body_fields_of_type(proto_type: int) -> frozenset[str]:
    """The names of the event bodies' fields of one protobuf type: a CSV cell of such a
    field is read as that type (the JSON names of flags and codes are the fields' own)."""
    bodies = [field.message_type for field in Event.DESCRIPTOR.oneofs_by_name["body"].fields]
    return frozenset(field.name for body in bodies for field in body.fields if field.type == proto_type)


_FLAGS = _body_fields_of_type(FieldDescriptor.TYPE_BOOL)
_INTEGERS = _body_fields_of_type(FieldDescriptor.TYPE_INT32)  # channel, status, business_type


class LoadError(ValueError):
    pass


def file_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    for name, found in (("jsonl", {".jsonl", ".ndjson"}), ("csv", {".csv"}), ("parquet", {".parquet"})):
        if found & set(suffixes):
            return name
    raise LoadError(f"{path}: cannot tell the format from its name (.jsonl, .csv or .parquet)")


def _csv_value(name: str, raw: str):
    if raw == "":
        return None
    if name in _FLAGS:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return raw  # validation says what is wrong with it
    if name in _INTEGERS and raw.strip().lstrip("-").isdigit():
        return int(raw)
    if name == "to_agencies":
        return [code.strip() for code in raw.split("|") if code.strip()]
    return raw


def _plain(value):
    """Parquet's values as JSON would carry them."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def records(path: Path, kind: str) -> Iterator[tuple[int, object]]:
    """(record number from 1, the event as bytes of JSON (jsonl) or a dict), in file order."""
    if kind == "jsonl":
        with open(path, "rb") as file:
            for number, line in enumerate(file, start=1):
                if line.strip():
                    yield number, line.strip()
    elif kind == "csv":
        with open(path, newline="", encoding="utf-8-sig") as file:
            for number, row in enumerate(csv.DictReader(file), start=1):
                yield number, {k: v for k, v in ((name, _csv_value(name, raw or "")) for name, raw in row.items()
                                                 if name) if v is not None}
    else:
        try:
            import pyarrow.parquet as parquet
        except ImportError:
            raise LoadError("Parquet needs pyarrow: pip install 'dti-pulse[local]'") from None
        number = 0
        for batch in parquet.ParquetFile(path).iter_batches(batch_size=CHUNK):
            for row in batch.to_pylist():
                number += 1
                yield number, {k: _plain(v) for k, v in row.items() if v is not None}


def record_count(path: Path, kind: str) -> int | None:
    if kind == "parquet":
        import pyarrow.parquet as parquet

        return parquet.ParquetFile(path).metadata.num_rows
    return None


@dataclass
class Checkpoint:
    """How far a file has been loaded: records acknowledged by Kafka. Keyed by the file's
    path, size and modification time: a changed file starts again."""
    path: Path
    done: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0

    @classmethod
    def of(cls, data_dir: Path, source_file: Path, source: str) -> "Checkpoint":
        stat = source_file.stat()
        identity = f"{source_file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{source}"
        path = data_dir / "load" / f"{hashlib.sha256(identity.encode()).hexdigest()[:24]}.json"
        checkpoint = cls(path)
        if path.exists():
            saved = json.loads(path.read_text())
            checkpoint.done, checkpoint.accepted = saved["done"], saved["accepted"]
            checkpoint.duplicates, checkpoint.rejected = saved["duplicates"], saved["rejected"]
        return checkpoint

    def save(self, source_file: Path) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps({"file": str(source_file.resolve()), "done": self.done,
                                       "accepted": self.accepted, "duplicates": self.duplicates,
                                       "rejected": self.rejected}))
        os.replace(scratch, self.path)  # a crash leaves the old checkpoint or the new, never half


@dataclass
class Outcome:
    files: list[tuple[Path, Checkpoint]] = field(default_factory=list)
    seconds: float = 0.0
    sent_now: int = 0  # records this run read (not skipped by a checkpoint)

    @property
    def accepted(self) -> int:
        return sum(c.accepted for _, c in self.files)

    @property
    def rejected(self) -> int:
        return sum(c.rejected for _, c in self.files)


class Loader:
    """Reads and validates a chunk while Kafka acknowledges the one before (one in flight);
    the checkpoint moves in file order, each time a chunk is acknowledged."""

    def __init__(self, service: IngestService, source: str, data_dir: Path, chunk: int = CHUNK, progress=None):
        self.service, self.source, self.data_dir, self.chunk = service, source, data_dir, chunk
        self.progress = progress  # (records done, total or None, file) -> None

    async def load(self, paths: list[Path], restart: bool = False) -> Outcome:
        outcome, started = Outcome(), time.perf_counter()
        for path in paths:
            kind = file_format(path)
            checkpoint = Checkpoint.of(self.data_dir, path, self.source)
            if restart:
                checkpoint = Checkpoint(checkpoint.path)
            outcome.files.append((path, checkpoint))
            total = record_count(path, kind)
            rejects_path = path.with_name(path.name + ".rejected.jsonl")
            in_flight = None
            with open(rejects_path, "ab" if checkpoint.done else "wb") as rejects:
                async def settle():
                    if in_flight is not None:
                        await self._settled(*in_flight, checkpoint, path, rejects)
                        if self.progress:
                            self.progress(checkpoint.done, total, path)

                chunk: list[tuple[int, object]] = []
                for number, record in records(path, kind):
                    if number <= checkpoint.done:
                        continue
                    chunk.append((number, record))
                    if len(chunk) >= self.chunk:
                        publishing = await self._start(chunk)  # validated while the previous chunk is in flight
                        await settle()
                        in_flight, chunk = publishing, []
                        outcome.sent_now += self.chunk
                if chunk:
                    publishing = await self._start(chunk)
                    await settle()
                    in_flight = publishing
                    outcome.sent_now += len(chunk)
                await settle()
            if not checkpoint.rejected:
                rejects_path.unlink(missing_ok=True)
            if self.progress:
                self.progress(checkpoint.done, total, path)
        outcome.seconds = time.perf_counter() - started
        return outcome

    async def _start(self, chunk: list[tuple[int, object]]):
        """Validates a chunk and starts publishing it: (task, chunk, refusals known now)."""
        import asyncio

        as_json = [record if isinstance(record, bytes) else orjson.dumps(record) for _, record in chunk]
        body = b'{"events":[' + b",".join(as_json) + b"]}"
        valid = self.service.valid_batch(body, self.source)
        refusals: list[tuple[int, str]] = []
        if valid is not None:  # every event valid: validated at once
            return asyncio.ensure_future(self.service.ingest_valid(valid)), chunk, refusals, None
        events, numbers = [], []
        for (number, _), line in zip(chunk, as_json):
            try:
                events.append(orjson.loads(line))
                numbers.append(number)
            except orjson.JSONDecodeError as exc:
                refusals.append((number, f"not JSON: {exc}"))
        return asyncio.ensure_future(self.service.ingest(events, self.source)), chunk, refusals, numbers

    async def _settled(self, task, chunk, refusals, numbers, checkpoint: Checkpoint, path: Path, rejects) -> None:
        """Once Kafka acknowledged a chunk (the publisher's NotAcknowledged propagates: the
        checkpoint then stays before it), its refusals are written and the checkpoint moves."""
        result = await task
        if numbers is not None:
            refusals = refusals + [(numbers[r["index"]], r["reason"]) for r in result.rejected]
        for number, reason in sorted(refusals):
            rejects.write(orjson.dumps({"record": number, "reason": reason}) + b"\n")
        rejects.flush()
        checkpoint.done = chunk[-1][0]
        checkpoint.accepted += result.accepted
        checkpoint.duplicates += result.duplicates
        checkpoint.rejected += len(refusals)
        checkpoint.save(path)


def summary(outcome: Outcome) -> str:
    lines = []
    for path, c in outcome.files:
        rejected = f", {c.rejected:,} refused (see {path.name}.rejected.jsonl)" if c.rejected else ""
        lines.append(f"{path}: {c.done:,} records, {c.accepted:,} accepted ({c.duplicates:,} already seen){rejected}")
    rate = outcome.sent_now / outcome.seconds if outcome.seconds > 0 else 0.0
    lines.append(f"{outcome.sent_now:,} records read in {outcome.seconds:.1f} s ({rate:,.0f}/s); "
                 f"{outcome.accepted:,} accepted, {outcome.rejected:,} refused in all")
    return "\n".join(lines)

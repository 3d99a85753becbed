"""The aggregator's state store across processes.

chDB lets one process own a data path, and one Python process folds ~30-37k events/s on
this machine (bench/README.md). Fold processes apart (`serve aggregator` with
DTI_STATE_STORE_ADDRESS) each consume their share of the partitions and fold it, and call
the process that owns the data (`serve ...,store`) for the StateStore's few calls: load the
rare stored state a fold misses, write the rows it prepared, list the stored ids. A call
returns once the owner has done it, so a fold process caches a state only after it is
written, as it does in process. With a ClickHouse server each fold process writes on its
own, and needs none of this.

The transport is multiprocessing.connection's framing on a local socket, the peer
authenticated by a shared secret (an HMAC challenge), and every frame a protobuf message
of proto/dti/store/v1/store.proto: nothing received is ever unpickled.
"""
from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from multiprocessing.connection import Client, Listener
from typing import Callable

from dti.store.v1 import store_pb2 as pb
from dti_pulse.state import PER_AGENCY
from services.aggregator.processor import RowsRejected, StateStore

log = logging.getLogger(__name__)

IDS_PER_MESSAGE = 50_000  # stored_ids streams: a national store holds tens of millions


def rows_message(rows: list, message: pb.Rows) -> pb.Rows:
    """Rows (tuples of int / bool / str / bytes / float / list of int) column by column: a column's values
    extend one typed list at once, which costs far less than a message per value."""
    message.count = len(rows)
    for values in zip(*rows):
        column = message.columns.add()
        first = values[0]
        if isinstance(first, (bool, int)):
            column.integers.extend(values)
        elif isinstance(first, str):
            column.texts.extend(values)
        elif isinstance(first, (bytes, bytearray, memoryview)):
            column.blobs.extend(bytes(v) for v in values)
        elif isinstance(first, float):
            column.reals.extend(values)
        elif isinstance(first, list):
            for value in values:
                column.integer_lists.add().values.extend(value)
        else:
            raise TypeError(f"a row value of type {type(first).__name__} has no column type")
    return message


def rows_of(message: pb.Rows) -> list[tuple]:
    columns = [column.integers or column.texts or column.blobs or column.reals
               or [list(values.values) for values in column.integer_lists] for column in message.columns]
    if any(len(column) != message.count for column in columns):
        raise ValueError("a column's length differs from the row count")
    return list(zip(*columns)) if columns else [()] * message.count


def keys_message(keys, message: pb.Keys) -> pb.Keys:
    for key in keys:
        message.kinds.append(key[0])
        message.ids.append(key[1])
        message.agencies.append(key[2] if len(key) > 2 else "")
    return message


def keys_of(message: pb.Keys) -> list[tuple]:
    return [(kind, id_, agency) if kind in PER_AGENCY else (kind, id_)
            for kind, id_, agency in zip(message.kinds, message.ids, message.agencies)]


def pairs_message(pairs, message: pb.DayPairs) -> pb.DayPairs:
    for agency, day in pairs:
        message.agency_codes.append(agency)
        message.days.append(day)
    return message


def pairs_of(message: pb.DayPairs) -> set[tuple[str, int]]:
    return set(zip(message.agency_codes, message.days))


class StoreUnavailable(Exception):
    """The owning process failed the call or is away: the aggregator waits and retries, as
    for ClickHouse being away."""


def parse_address(address: str):
    """`host:port` (TCP) or a path (a Unix socket, for processes on one machine)."""
    if "/" in address:
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port or a socket path, got {address!r}")
    return host or "127.0.0.1", int(port)


class StoreServer:
    """Serves StateStores to fold processes: a thread per connection, and a store per fold
    process (its index), so that two processes' inserts run on connections of their own."""

    def __init__(self, address: str, secret: bytes, store_for: Callable[[int], StateStore]):
        if not secret:
            raise ValueError("the state store needs a secret (DTI_STATE_STORE_SECRET)")
        where = parse_address(address)
        if isinstance(where, str):
            os.makedirs(os.path.dirname(where) or ".", exist_ok=True)
            if os.path.exists(where) and stat.S_ISSOCK(os.stat(where).st_mode):
                os.unlink(where)  # left by a process that did not stop cleanly; chDB keeps out a second owner
        self._listener = Listener(where, authkey=secret)
        self._store_for = store_for
        self._stores: dict[int, StateStore] = {}
        self._lock = threading.Lock()
        self._connections: set = set()
        self._stopping = False

    def start(self) -> "StoreServer":
        threading.Thread(target=self._accept, name="state-store-accept", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # its thread may be closing it too
                connection.close()

    def _store(self, fold_index: int) -> StateStore:
        with self._lock:
            store = self._stores.get(fold_index)
            if store is None:
                store = self._stores[fold_index] = self._store_for(fold_index)
            return store

    def _accept(self) -> None:
        while not self._stopping:
            try:
                connection = self._listener.accept()
            except Exception as exc:  # a peer without the secret, or the listener closed
                if not self._stopping:
                    log.warning("state store refused a connection: %s", exc)
                continue
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=self._serve, args=(connection,), name="state-store", daemon=True).start()

    def _serve(self, connection) -> None:
        try:
            store = self._store(pb.Hello.FromString(connection.recv_bytes()).fold_index)
            while True:
                self._answer(connection, store, pb.Request.FromString(connection.recv_bytes()))
        except (EOFError, OSError):
            pass  # the fold process left or is stopping
        except Exception as exc:
            log.exception("state store connection dropped: %s", exc)
        finally:
            with self._lock:
                self._connections.discard(connection)
            with contextlib.suppress(OSError):  # stop() may have closed it first
                connection.close()

    @staticmethod
    def _answer(connection, store: StateStore, request: pb.Request) -> None:
        call = request.WhichOneof("call")
        answer = pb.Reply()
        try:
            if call == "load":
                found = store.load(keys_of(request.load.keys))
                keys_message(found, answer.keys)
                answer.events.extend(found.values())
            elif call == "stored_ids":
                chunk = []
                for item in store.stored_ids():
                    chunk.append(item)
                    if len(chunk) >= IDS_PER_MESSAGE:
                        part = pb.Reply(status=pb.Reply.MORE)
                        keys_message(chunk, part.keys)
                        connection.send_bytes(part.SerializeToString())
                        chunk = []
                keys_message(chunk, answer.keys)
            elif call == "document_day_pairs":
                pairs_message(store.document_day_pairs(list(request.document_day_pairs.document_ids)),
                              answer.day_pairs)
            elif call == "write":
                write = request.write
                changed = ({family: set(agencies.codes) for family, agencies in write.changed.items()}
                           if write.changed_known else None)
                store.write({family: rows_of(rows) for family, rows in write.rows.items()}, pairs_of(write.day_pairs),
                            changed)
            elif call == "write_activity":
                store.write_activity(rows_of(request.write_activity.rows))
            else:
                raise ValueError(f"unknown call {call!r}")
        except RowsRejected as exc:
            answer = pb.Reply(status=pb.Reply.REJECTED, message=str(exc))
        except Exception as exc:
            log.warning("state store call %s failed: %s", call, exc)
            answer = pb.Reply(status=pb.Reply.FAILED, message=f"{type(exc).__name__}: {exc}")
        connection.send_bytes(answer.SerializeToString())


class RemoteStateStore:
    """A StateStore whose calls run in the process that owns the data. The aggregator calls
    it from several threads at once (a batch's states and activity are written together, the
    next batch's loads meanwhile): each call takes a connection no other call is using."""

    def __init__(self, address: str, secret: bytes, fold_index: int = 0):
        self._address = parse_address(address)
        self._secret = secret
        self._fold_index = fold_index
        self._idle: list = []
        self._lock = threading.Lock()

    def _connection(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        connection = Client(self._address, authkey=self._secret)
        connection.send_bytes(pb.Hello(fold_index=self._fold_index).SerializeToString())
        return connection

    def _release(self, connection) -> None:
        with self._lock:
            self._idle.append(connection)

    def _answers(self, request: pb.Request):
        """Yields the answer's parts (several for stored_ids); raises what the owner raised."""
        try:
            connection = self._connection()
        except OSError as exc:
            raise StoreUnavailable(f"state store at {self._address} unreachable: {exc}") from exc
        try:
            connection.send_bytes(request.SerializeToString())
            while True:
                reply = pb.Reply.FromString(connection.recv_bytes())
                if reply.status != pb.Reply.MORE:
                    break
                yield reply
        except (EOFError, OSError) as exc:
            connection.close()  # half a conversation: never reuse it
            raise StoreUnavailable(f"state store at {self._address} went away: {exc}") from exc
        except BaseException:
            connection.close()  # a caller that stopped reading stored_ids midway
            raise
        self._release(connection)
        if reply.status == pb.Reply.REJECTED:
            raise RowsRejected(reply.message)
        if reply.status != pb.Reply.OK:
            raise StoreUnavailable(reply.message)
        yield reply

    def _call(self, request: pb.Request) -> pb.Reply:
        *_, reply = self._answers(request)
        return reply

    def load(self, keys) -> dict[tuple, bytes]:
        request = pb.Request()
        keys_message(keys, request.load.keys)
        reply = self._call(request)
        return dict(zip(keys_of(reply.keys), reply.events))

    def stored_ids(self):
        for reply in self._answers(pb.Request(stored_ids=pb.StoredIdsRequest())):
            yield from keys_of(reply.keys)

    def document_day_pairs(self, document_ids) -> set[tuple[str, int]]:
        request = pb.Request()
        request.document_day_pairs.document_ids.extend(document_ids)
        return pairs_of(self._call(request).day_pairs)

    def write(self, rows: dict[str, list], day_pairs=(), changed=None) -> None:
        request = pb.Request()
        write = request.write
        for family, family_rows in rows.items():
            if family_rows:
                rows_message(family_rows, write.rows[family])
        pairs_message(day_pairs, write.day_pairs)
        write.changed_known = changed is not None
        for family, agencies in (changed or {}).items():
            write.changed[family].codes.extend(agencies)
        self._call(request)

    def write_activity(self, activity_rows: list) -> None:
        request = pb.Request()
        rows_message(activity_rows, request.write_activity.rows)
        self._call(request)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

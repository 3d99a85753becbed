"""The aggregator's state store across processes.

chDB lets one process own a data path, and one Python process folds ~30-37k events/s on
this machine (bench/README.md). Fold processes apart (`serve aggregator` with
DTI_STATE_STORE_ADDRESS) each consume their share of the partitions and fold it, and call
the process that owns the data (`serve ...,store`) for the StateStore's few calls: load the
rare stored state a fold misses, write the rows it prepared, list the stored ids. A call
returns once the owner has done it, so a fold process caches a state only after it is
written, as it does in process. With a ClickHouse server each fold process writes on its
own, and needs none of this.

The transport is multiprocessing.connection: pickled calls on a local socket, the peer
authenticated by a shared secret (an HMAC challenge) before anything is unpickled.
"""
from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from multiprocessing.connection import Client, Listener
from typing import Callable

from services.aggregator.processor import RowsRejected, StateStore

log = logging.getLogger(__name__)

CALLS = frozenset({"load", "stored_ids", "document_day_pairs", "write", "write_activity"})
IDS_PER_MESSAGE = 50_000  # stored_ids streams: a national store holds tens of millions


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
            kind, fold_index = connection.recv()
            if kind != "hello" or not isinstance(fold_index, int):
                raise ValueError(f"expected a hello, got {kind!r}")
            store = self._store(fold_index)
            while True:
                call, args = connection.recv()
                self._answer(connection, store, call, args)
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
    def _answer(connection, store: StateStore, call: str, args: tuple) -> None:
        if call not in CALLS:
            connection.send(("failed", f"unknown call {call!r}"))
            return
        try:
            if call == "stored_ids":
                chunk = []
                for item in store.stored_ids():
                    chunk.append(item)
                    if len(chunk) >= IDS_PER_MESSAGE:
                        connection.send(("more", chunk))
                        chunk = []
                answer = ("ok", chunk)
            else:
                answer = ("ok", getattr(store, call)(*args))
        except RowsRejected as exc:
            answer = ("rejected", str(exc))
        except Exception as exc:
            log.warning("state store call %s failed: %s", call, exc)
            answer = ("failed", f"{type(exc).__name__}: {exc}")
        connection.send(answer)


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
        connection.send(("hello", self._fold_index))
        return connection

    def _release(self, connection) -> None:
        with self._lock:
            self._idle.append(connection)

    def _answers(self, call: str, *args):
        """Yields the answer's parts (several for stored_ids); raises what the owner raised."""
        try:
            connection = self._connection()
        except OSError as exc:
            raise StoreUnavailable(f"state store at {self._address} unreachable: {exc}") from exc
        try:
            connection.send((call, args))
            while True:
                status, value = connection.recv()
                if status != "more":
                    break
                yield value
        except (EOFError, OSError) as exc:
            connection.close()  # half a conversation: never reuse it
            raise StoreUnavailable(f"state store at {self._address} went away: {exc}") from exc
        except BaseException:
            connection.close()  # a caller that stopped reading stored_ids midway
            raise
        self._release(connection)
        if status == "rejected":
            raise RowsRejected(value)
        if status != "ok":
            raise StoreUnavailable(value)
        yield value

    def _call(self, call: str, *args):
        *_, answer = self._answers(call, *args)
        return answer

    def load(self, keys) -> dict[tuple, bytes]:
        return self._call("load", list(keys))

    def stored_ids(self):
        for chunk in self._answers("stored_ids"):
            yield from chunk

    def document_day_pairs(self, document_ids) -> set[tuple[str, int]]:
        return self._call("document_day_pairs", list(document_ids))

    def write(self, dossier_rows: list, document_rows: list, day_pairs=(), changed=None) -> None:
        self._call("write", dossier_rows, document_rows, day_pairs, changed)

    def write_activity(self, activity_rows: list) -> None:
        self._call("write_activity", activity_rows)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

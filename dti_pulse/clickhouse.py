"""One way to reach ClickHouse: a server over HTTP or chDB in-process, same Client."""
from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect

# No JIT compilation of expressions: our queries are small and their constants (a period,
# the judgement minute) change, so ClickHouse compiled again and again: a 100-250 ms stall
# on a lookup that otherwise takes ~25 ms (bench/README.md, 2026-11-29 night).
QUERY_SETTINGS = {"compile_expressions": 0, "compile_aggregate_expressions": 0}
# Background work (the data-version poll, day-snapshot rebuilds, the next minute's warming)
# queries on one thread: on 2 cores a query on both starved ranking's gRPC thread for its
# length (a 106 ms warming query held ~90 lookups over 10 ms, bench/README.md 2026-11-30).
BACKGROUND_SETTINGS = {**QUERY_SETTINGS, "max_threads": 1}

_clients: dict[tuple[str, str], object] = {}
_signals: dict[str, "WriteSignal"] = {}
_lock = threading.Lock()


class WriteSignal:
    """Tells this process's listeners that the aggregates were just written. With chDB every
    writer of a data path is in its one process, so ranking learns of a change at once
    instead of finding it by polling ClickHouse."""

    def __init__(self):
        self._listeners: list = []

    def subscribe(self, listener) -> None:
        self._listeners.append(listener)

    def notify(self, kind: str, changed=None) -> None:
        """kind: what was written, "measures" (entity states) or "activity". changed: for
        each family of states ("dossier", "document"), the agencies whose counts of it the
        write may change; None: anything may have changed."""
        for listener in list(self._listeners):
            listener(kind, changed)


def write_signal(dsn: str) -> WriteSignal:
    """The process-wide signal of a DSN's writes."""
    with _lock:
        return _signals.setdefault(dsn, WriteSignal())


class ChdbMissing(RuntimeError):
    pass


def require_chdb() -> None:
    """chDB is an extra (`pip install 'dti-pulse[local]'`); the service image has none."""
    import importlib.util

    if importlib.util.find_spec("chdb") is None:
        raise ChdbMissing("chDB is not installed here (pip install 'dti-pulse[local]'): set DTI_CLICKHOUSE_DSN "
                          "to a ClickHouse server, http://user@host:8123/database")


def get_client(dsn: str, purpose: str = "main", background: bool = False):
    """A process-wide client per DSN and purpose. chDB lets one process own a data path; a
    client is one connection to it, and serialises its calls: a purpose that must not wait
    behind another's calls (the aggregator's writes, ranking's lookups, its background
    rebuilds) gets a connection of its own. A background purpose queries on one thread."""
    with _lock:
        client = _clients.get((dsn, purpose))
        if client is None:
            if dsn.startswith("chdb://"):
                require_chdb()
                if dsn != "chdb://memory":
                    Path(urlparse(dsn).path).mkdir(parents=True, exist_ok=True)
            # Several threads share the client (aggregator writes, ranking reads): a
            # shared HTTP session would serialise them and fail with "session locked".
            options = {} if dsn.startswith("chdb://") else {"autogenerate_session_id": False}
            client = clickhouse_connect.get_client(
                dsn=dsn, settings=BACKGROUND_SETTINGS if background else QUERY_SETTINGS, **options)
            _clients[(dsn, purpose)] = client
        return client


def close_client(dsn: str) -> None:
    """Closes this process's clients of a DSN, every purpose (before exit: chDB must not be
    torn down while a client still holds it)."""
    with _lock:
        clients = [_clients.pop(key) for key in list(_clients) if key[0] == dsn]
    for client in clients:
        client.close()

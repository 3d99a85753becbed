"""One way to reach ClickHouse: a server over HTTP or chDB in-process, same Client."""
from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect

_clients: dict[str, object] = {}
_lock = threading.Lock()


def get_client(dsn: str):
    """A process-wide client per DSN: chDB lets one process own a data path, once."""
    with _lock:
        client = _clients.get(dsn)
        if client is None:
            if dsn.startswith("chdb://") and dsn != "chdb://memory":
                Path(urlparse(dsn).path).mkdir(parents=True, exist_ok=True)
            # Several threads share the client (aggregator writes, ranking reads): a
            # shared HTTP session would serialise them and fail with "session locked".
            options = {} if dsn.startswith("chdb://") else {"autogenerate_session_id": False}
            client = clickhouse_connect.get_client(dsn=dsn, **options)
            _clients[dsn] = client
        return client



def close_client(dsn: str) -> None:
    """Closes this process's client of a DSN (before exit: chDB must not be torn down while
    a client still holds it)."""
    with _lock:
        client = _clients.pop(dsn, None)
    if client is not None:
        client.close()

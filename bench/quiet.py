"""The bench's own processes kept from pausing while they time the services.

The probes and load generators are Python too: a collection of their own heap during a
timed call counts against the server. In the runner, holding the simulated events, a
full collection took 0.43 s and landed in the live scenario's Kafka baseline (p99 431 ms
against 12 ms in the run before); in a gRPC load generator, 5-9 ms against a 10 ms target."""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def no_collector_pauses():
    """What exists now is frozen out of the collector, which is off inside the block (a
    timed part of seconds to minutes: the cycles it leaves are collected after)."""
    gc.collect()
    gc.freeze()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.unfreeze()

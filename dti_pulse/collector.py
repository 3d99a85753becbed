"""Python's cycle collector held off for a block: one way for the services and the bench.

A collection pauses the whole process for as long as the objects it walks; where a block
makes many objects and no garbage cycles worth collecting at once, it is cheaper to let the
collector run after."""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def collector_paused(freeze_existing: bool = False):
    """The collector off inside the block and, after it, as it was. freeze_existing: what
    exists now is also kept out of its walks until the block ends (gc.freeze), so that the
    first collection after the block does not walk it either. gc.unfreeze() thaws every
    frozen object, so where some were frozen before the block (a service's start-up,
    bootstrap.tune_gc) what it froze stays frozen rather than thaw theirs."""
    thaw_after = freeze_existing and gc.get_freeze_count() == 0
    if freeze_existing:
        gc.collect()
        gc.freeze()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        if thaw_after:
            gc.unfreeze()

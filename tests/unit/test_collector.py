import gc

import pytest

from dti_pulse.collector import collector_paused


@pytest.mark.parametrize("freeze_existing", [False, True])
def test_the_collector_is_off_inside_and_as_it_was_after(freeze_existing):
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with collector_paused(freeze_existing):
        assert not gc.isenabled()
        assert (gc.get_freeze_count() > 0) is freeze_existing  # what existed is out of the walks
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with collector_paused(freeze_existing):
            pass
        assert not gc.isenabled()  # left off when it was off
    finally:
        gc.enable()


def test_the_collector_comes_back_when_the_block_raises():
    with pytest.raises(RuntimeError):
        with collector_paused(freeze_existing=True):
            raise RuntimeError("fold failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_what_was_frozen_before_the_block_stays_frozen():
    gc.freeze()  # as bootstrap.tune_gc does at a service's start-up
    try:
        frozen_at_start_up = gc.get_freeze_count()
        with collector_paused(freeze_existing=True):
            pass
        assert gc.get_freeze_count() >= frozen_at_start_up > 0 and gc.isenabled()
    finally:
        gc.unfreeze()

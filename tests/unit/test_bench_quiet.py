import gc

from bench.quiet import no_collector_pauses


def test_the_collector_is_off_inside_and_back_as_it_was_after():
    assert gc.isenabled()
    with no_collector_pauses():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # what existed before is out of the collector's walks
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with no_collector_pauses():
            pass
        assert not gc.isenabled()  # left off when it was off
    finally:
        gc.enable()

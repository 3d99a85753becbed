import asyncio
from collections import defaultdict

import pytest

from dti.events.v1.events_pb2 import Event, EventBatch
from dti_pulse.localtime import local_day
from services.aggregator.processor import Aggregator, KeyFilter
from dti_pulse.state import DossierSummary, placement
from tests.fakes import DeadLetters, FakeStore, envelope
from tests.factories import dossier_received, dossier_status, document_transfer, ms


def run(coroutine):
    return asyncio.run(coroutine)


RECEIVED = dossier_received("D1", "2026-10-01 08:00", "2026-10-03 17:00")
ACCEPTED = dossier_status("D1", 2, "2026-10-01 09:00")
RESOLVED = dossier_status("D1", 9, "2026-10-02 09:00")


def test_redelivery_after_a_restart_counts_nothing_twice():
    store, dead = FakeStore(), DeadLetters()
    first = Aggregator(store, dead)
    stats = run(first.process([envelope(RECEIVED, ACCEPTED)]))
    assert (stats.new_events, stats.states_written) == (2, 1)
    # a new process (empty cache) gets the same envelope again, plus the next status
    second = Aggregator(store, dead)
    stats = run(second.process([envelope(RECEIVED, ACCEPTED), envelope(RESOLVED, RESOLVED)]))
    assert (stats.duplicates, stats.new_events) == (3, 1)
    row = store.rows[("dossier", "D1")]
    assert row[-3] == 3  # event_count: the set holds three distinct events
    assert not dead


def test_an_undecodable_message_and_a_bodyless_event_go_to_dead_letters_without_blocking_the_rest():
    store, dead = FakeStore(), DeadLetters()
    stats = run(Aggregator(store, dead).process([b"\xff\xff not protobuf", envelope(Event(event_id="e1")),
                                                 envelope(RECEIVED)]))
    assert stats.dead_letters == 2 and stats.new_events == 1
    assert "undecodable" in dead[0][1] and "no body" in dead[1][1]
    assert ("dossier", "D1") in store.rows


def test_a_failed_write_is_retried_and_the_cache_only_holds_written_state():
    store, dead = FakeStore(fail_writes=2), DeadLetters()
    aggregator = Aggregator(store, dead, write_retry_s=0.01)
    run(aggregator.process([envelope(RECEIVED)]))
    assert ("dossier", "D1") in store.rows and store.fail_writes == 0


def test_document_sides_are_separate_states():
    store = FakeStore()
    run(Aggregator(store, DeadLetters()).process([envelope(
        document_transfer("document_sent", "DOC", "2026-10-01 08:00", agency="000.00.01.H56"),
        document_transfer("document_received", "DOC", "2026-10-01 08:05", agency="000.00.02.H56"))]))
    assert set(store.rows) == {("document", "DOC", "000.00.01.H56"), ("document", "DOC", "000.00.02.H56")}


def test_cache_smaller_than_a_batch_still_folds_every_entity():
    store = FakeStore()
    events = [dossier_received(f"D{i}", "2026-10-01 08:00", "2026-10-03 17:00") for i in range(10)]
    stats = run(Aggregator(store, DeadLetters(), cache_capacity=3).process([envelope(*events)]))
    assert stats.states_written == 10 and len(store.rows) == 10


def test_key_filter_has_no_false_negatives_and_few_false_positives():
    known = KeyFilter(10_000)
    known.add_all([("dossier", str(i)) for i in range(5_000)])
    known.add_all([("document", str(i)) for i in range(5_000, 10_000)])
    assert known.count == 10_000
    assert all(known.might_contain_all([("dossier", str(i)) for i in range(5_000)]))
    assert all(known.might_contain_all([("document", str(i)) for i in range(5_000, 10_000)]))
    false_positives = sum(known.might_contain_all([("dossier", f"other-{i}") for i in range(10_000)]))
    false_positives += sum(known.might_contain_all([("document", str(i)) for i in range(5_000)]))
    assert false_positives < 45  # 0.02 % planned
    assert known.might_contain_all([]) == [] and known.count == 10_000


def test_after_reset_new_entities_cost_no_lookup_but_stored_ones_are_loaded():
    store, dead = FakeStore(), DeadLetters()
    run(Aggregator(store, dead).process([envelope(RECEIVED, ACCEPTED)]))
    restarted = Aggregator(store, dead)
    assert run(restarted.reset()) == 1
    store.loads = 0
    new = dossier_received("D-new", "2026-10-01 08:00", "2026-10-03 17:00")
    run(restarted.process([envelope(new)]))
    assert store.loads == 0
    stats = run(restarted.process([envelope(ACCEPTED, RESOLVED)]))
    assert store.loads == 1 and store.loaded_keys == [("dossier", "D1")]
    assert stats.duplicates == 1 and store.rows[("dossier", "D1")][-3] == 3


def test_a_prepared_but_unwritten_state_is_seen_by_the_next_batch():
    store = FakeStore()
    aggregator = Aggregator(store, DeadLetters())
    run(aggregator.reset())
    first = run(aggregator.prepare([envelope(RECEIVED)]))
    second = run(aggregator.prepare([envelope(RECEIVED, ACCEPTED)]))
    assert second.stats.duplicates == 1 and second.stats.new_events == 1
    run(aggregator.commit(first))
    run(aggregator.commit(second))
    assert store.rows[("dossier", "D1")][-3] == 2


def test_activity_counts_new_events_once_by_arrival_minute_agency_and_type():
    store, dead = FakeStore(fail_writes=1), DeadLetters()
    received, accepted, resolved = (Event.FromString(e.SerializeToString()) for e in (RECEIVED, ACCEPTED, RESOLVED))
    for event, arrived in ((received, 60_000 * 100 + 5), (accepted, 60_000 * 100 + 59_999), (resolved, 60_000 * 101)):
        event.ingested_at_ms = arrived
    aggregator = Aggregator(store, dead, write_retry_s=0)
    run(aggregator.process([envelope(received, accepted, resolved)]))
    run(aggregator.process([envelope(received, resolved)]))  # redelivered: nothing new
    agency = RECEIVED.agency_code
    assert sorted(store.activity) == [(6_000_000, agency, "dossier.received", 1, 6_000_005),
                                      (6_000_000, agency, "dossier.status", 1, 6_059_999),
                                      (6_060_000, agency, "dossier.resolved", 1, 6_060_000)]


def test_written_states_mark_the_days_they_count_on_and_the_days_they_leave():
    from dti_pulse.localtime import local_day
    from tests.factories import ms

    store, dead = FakeStore(), DeadLetters()
    aggregator = Aggregator(store, dead)
    run(aggregator.process([envelope(ACCEPTED)]))  # a status before the received event: no day yet
    assert store.dirty_days == set()
    run(aggregator.process([envelope(RECEIVED)]))
    assert store.dirty_days == {("000.00.05.H56", local_day(ms("2026-10-01 08:00")))}
    # A corrected received event moves the dossier to another day: both days change.
    store.dirty_days.clear()
    moved = dossier_received("D1", "2026-10-05 08:00", "2026-10-07 17:00")
    run(Aggregator(store, dead).process([envelope(moved)]))
    assert store.dirty_days == {("000.00.05.H56", local_day(ms("2026-10-01 08:00"))),
                                ("000.00.05.H56", local_day(ms("2026-10-05 08:00")))}


def test_an_agreed_recall_marks_the_days_of_every_side_of_the_document():
    from dti_pulse.localtime import local_day
    from tests.factories import document_status, ms

    store, dead = FakeStore(), DeadLetters()
    aggregator = Aggregator(store, dead)
    run(aggregator.process([envelope(document_transfer("document_sent", "V1", "2026-10-01 08:00", agency="A"),
                                     document_transfer("document_received", "V1", "2026-10-03 08:00", agency="B"))]))
    store.dirty_days.clear()
    run(aggregator.process([envelope(document_status("V1", "15", "2026-10-04 08:00", agency="B"))]))
    assert store.dirty_days == {("A", local_day(ms("2026-10-01 08:00"))), ("B", local_day(ms("2026-10-03 08:00")))}


def test_cached_states_hold_no_objects_the_garbage_collector_walks():
    """The cache holds the entities' event bytes: Event objects there were walked by every
    older-generation collection (0.2-1.2 s pauses under load with millions cached)."""
    import gc

    store = FakeStore()
    aggregator = Aggregator(store, DeadLetters())
    run(aggregator.process([envelope(RECEIVED, ACCEPTED)]))
    run(aggregator.process([envelope(RESOLVED)]))
    entry = aggregator.cache.get(("dossier", "D1"))
    assert isinstance(entry, bytes) and not gc.is_tracked(entry)
    assert [e.event_id for e in EventBatch.FromString(entry).events] == [
        e.event_id for e in (RECEIVED, ACCEPTED, RESOLVED)]


def test_each_family_is_signalled_once_its_own_insert_is_done():
    """The dossier states' insert does not wait for the documents' (a connection each): here
    the documents' insert goes on only once the dossiers' change has been signalled."""
    import threading

    from services.aggregator.store import ClickHouseStateStore

    dossiers_told = threading.Event()

    class Client:
        def __init__(self, wait_for=None):
            self.wait_for, self.tables = wait_for, []

        def insert(self, table, rows, column_names):
            if self.wait_for is not None:
                assert self.wait_for.wait(5), "the dossiers' change was not signalled before the documents' insert ended"
            self.tables.append(table)

    signals = []

    def on_write(kind, changed=None):
        signals.append((kind, changed))
        if changed == {"dossier": {"A"}}:
            dossiers_told.set()

    dossier_client, document_client = Client(), Client(wait_for=dossiers_told)
    store = ClickHouseStateStore(dossier_client, on_write, document_client=document_client)
    store.write({"dossier": [("D1",)], "document": [("O1",)]}, changed={"dossier": {"A"}, "document": {"B"}})
    assert signals == [("measures", {"dossier": {"A"}}), ("measures", {"document": {"B"}})]
    assert dossier_client.tables == ["dossier_state"] and document_client.tables == ["document_state"]


@pytest.mark.parametrize("code, rows_at_fault", [(469, True), (53, True), (252, False), (60, False), (None, False)])
def test_only_a_server_error_that_blames_the_rows_refuses_them(code, rows_at_fault):
    """VIOLATED_CONSTRAINT or TYPE_MISMATCH refuse the rows (the aggregator sends them to the
    dead letters); TOO_MANY_PARTS, UNKNOWN_TABLE or no code at all (the server away) are
    raised as they are, for the aggregator to wait out."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    from services.aggregator.processor import RowsRejected
    from services.aggregator.store import ClickHouseStateStore

    class RefusingClient:
        def insert(self, table, rows, column_names):
            raise DatabaseError(f"Code: {code}. DB::Exception: refused", code=code)

    store = ClickHouseStateStore(RefusingClient())
    with pytest.raises(RowsRejected if rows_at_fault else DatabaseError) as raised:
        store.write({"dossier": [("D1",)]})
    assert isinstance(raised.value, RowsRejected) == rows_at_fault


def test_an_unreadable_stored_state_sends_its_new_events_to_dead_letters_and_the_rest_goes_on():
    store, dead = FakeStore(), DeadLetters()
    other = dossier_received("D2", "2026-10-01 08:00", "2026-10-03 17:00")
    store.rows[("dossier", "D1")] = ("D1", b"\xff\xff not an EventBatch")
    stats = run(Aggregator(store, dead).process([envelope(ACCEPTED, other)]))
    assert stats.dead_letters == 1 and "stored dossier state unreadable" in dead[0][1]
    assert EventBatch.FromString(dead[0][0]).events[0].event_id == ACCEPTED.event_id
    assert ("dossier", "D2") in store.rows and store.rows[("dossier", "D1")][-1].startswith(b"\xff")


def test_the_live_activity_is_written_beside_the_states():
    """The next batch's states wait for this batch's whole commit: the activity insert runs
    beside the states' write, not after it (here the states' write looks, for up to 2 s,
    whether the activity insert has begun)."""
    import threading

    activity_begun = threading.Event()
    seen_beside = []

    class BesideStore(FakeStore):
        def write(self, *args, **kwargs):
            # Not an assertion here: the aggregator retries whatever a write raises.
            seen_beside.append(activity_begun.wait(2))
            super().write(*args, **kwargs)

        def write_activity(self, activity_rows):
            activity_begun.set()
            super().write_activity(activity_rows)

    store = BesideStore()
    run(Aggregator(store, DeadLetters()).process([envelope(RECEIVED, ACCEPTED)]))
    assert seen_beside == [True], "the activity was not written beside the states"
    assert ("dossier", "D1") in store.rows and sum(row[-2] for row in store.activity) == 2


def test_a_state_the_store_rejects_sends_its_new_events_to_dead_letters_and_the_rest_is_written():
    """A value the store can never hold (ClickHouse refuses it in its column) must not make
    the aggregator retry the batch forever and block the partition."""
    store, dead = FakeStore(rejects=lambda row: row[0] == "BAD"), DeadLetters()
    good = [dossier_received(f"D{i}", "2026-10-01 08:00", "2026-10-03 17:00") for i in range(2, 10)]
    bad = [dossier_received("BAD", "2026-10-01 08:00", "2026-10-03 17:00", channel=300),
           dossier_status("BAD", 2, "2026-10-01 09:00")]
    document = document_transfer("document_sent", "DOC1", "2026-10-01 08:00")
    aggregator = Aggregator(store, dead, write_retry_s=0)
    # Within 10 s: a store error retried forever would never return.
    stats = run(asyncio.wait_for(aggregator.process([envelope(*good[:4], *bad, document, *good[4:])]), 10))
    assert {key[1] for key in store.rows} == {f"D{i}" for i in range(2, 10)} | {"DOC1"}
    assert [EventBatch.FromString(payload).events[0].event_id for payload, _ in dead] == [e.event_id for e in bad]
    assert all(reason.startswith("cannot store dossier state 'BAD': dossier_state: value out of range")
               for _, reason in dead)
    assert (stats.dead_letters, stats.new_events, stats.states_written) == (2, 9, 9)
    assert store.writes <= 2 * 4 + 1  # found by halving 10 rows, not row by row

    # The rejected events are in no state: the next event of BAD is folded onto what the store holds.
    store.rejects = lambda row: False
    later = dossier_status("BAD", 4, "2026-10-01 10:00")
    run(aggregator.process([envelope(later)]))
    assert [e.event_id for e in EventBatch.FromString(store.rows[("dossier", "BAD")][-1]).events] == [later.event_id]


def test_the_events_of_a_refused_state_are_taken_back_out_of_the_live_activity():
    """The activity is written beside the states, before the store refuses one: its events
    are withdrawn after that write (negative counts), so the activity counts stored events only."""
    store = FakeStore(rejects=lambda row: row[0] == "BAD")
    bad = [dossier_received("BAD", "2026-10-01 08:00", "2026-10-03 17:00", channel=300),
           dossier_status("BAD", 2, "2026-10-01 09:00")]
    run(asyncio.wait_for(Aggregator(store, DeadLetters(), write_retry_s=0).process([envelope(RECEIVED, *bad)]), 10))
    net = defaultdict(int)
    for minute, agency, kind, count, _ in store.activity:
        net[(kind, count > 0)] += count
    assert dict(net) == {("dossier.received", True): 2, ("dossier.status", True): 1,
                         ("dossier.received", False): -1, ("dossier.status", False): -1}
    # Withdrawn after the counts they correct were written: no reader sees a count below zero.
    signs = [count > 0 for *_, count, _ in store.activity]
    assert signs == sorted(signs, reverse=True)


def test_a_rejected_state_takes_its_events_of_a_batch_already_prepared_to_dead_letters():
    """Batch N+1 is folded while N is written: its row of the rejected state carries the
    rejected events too, so it is rejected and its events follow them (none are stored)."""
    store, dead = FakeStore(rejects=lambda row: row[0] == "BAD"), DeadLetters()
    aggregator = Aggregator(store, dead, write_retry_s=0)
    received = dossier_received("BAD", "2026-10-01 08:00", "2026-10-03 17:00", channel=300)
    accepted = dossier_status("BAD", 2, "2026-10-01 09:00")

    async def pipelined():
        first = await aggregator.prepare([envelope(received, RECEIVED)])
        second = await aggregator.prepare([envelope(accepted)])
        await aggregator.commit(first)
        await aggregator.commit(second)

    run(asyncio.wait_for(pipelined(), 10))
    assert [EventBatch.FromString(payload).events[0].event_id for payload, _ in dead] == \
        [received.event_id, accepted.event_id]
    assert set(store.rows) == {("dossier", "D1")}


def test_a_state_that_moves_leaves_a_tombstone_where_it_sat_in_the_same_write():
    """Rows sit by agency and the day they count on: when a state moves, its old row must be
    superseded there (a tombstone at the new version), in the insert of its new row."""
    store = FakeStore()
    aggregator = Aggregator(store, DeadLetters())
    run(aggregator.process([envelope(RECEIVED)]))
    run(aggregator.process([envelope(ACCEPTED)]))
    run(aggregator.process([envelope(dossier_received("D1", "2026-10-01 15:00", "2026-10-03 17:00"))]))
    assert store.tombstones == []  # received again on the same day: still in place
    writes = store.writes
    corrected = dossier_received("D1", "2026-10-02 08:00", "2026-10-04 17:00", agency="000.00.06.H56")
    run(aggregator.process([envelope(corrected)]))
    assert store.writes == writes + 1
    [tombstone] = store.tombstones
    previous, current = DossierSummary(*tombstone[:-2]), DossierSummary(*store.rows[("dossier", "D1")][:-2])
    assert placement(previous) == ("000.00.05.H56", local_day(ms("2026-10-01 08:00")))
    assert placement(current) == ("000.00.06.H56", local_day(ms("2026-10-02 08:00")))
    assert (previous.event_count, tombstone[-2:]) == (current.event_count, (1, b""))


def test_a_rejected_move_leaves_no_tombstone():
    store = FakeStore(rejects=lambda row: row[3] == 300 and not row[-2])
    dead = DeadLetters()
    aggregator = Aggregator(store, dead, write_retry_s=0)
    run(aggregator.process([envelope(RECEIVED)]))
    moved = dossier_received("D1", "2026-10-02 08:00", "2026-10-04 17:00", channel=300)
    run(asyncio.wait_for(aggregator.process([envelope(moved)]), 10))
    assert len(dead) == 1 and store.tombstones == []
    assert DossierSummary(*store.rows[("dossier", "D1")][:-2]).received_at_ms == ms("2026-10-01 08:00")


def test_the_cycle_collector_pauses_while_a_batch_is_folded_and_only_then():
    import gc

    class Watching(FakeStore):
        def load(self, keys):
            self.collecting = gc.isenabled()
            return super().load(keys)

    store = Watching()
    assert gc.isenabled()
    run(Aggregator(store, DeadLetters()).process([envelope(RECEIVED)]))  # no filter yet: the state is loaded
    assert store.collecting is False and gc.isenabled()

    async def failing(payload, reason):
        raise RuntimeError("dead letters unreachable")

    with pytest.raises(RuntimeError):
        run(Aggregator(FakeStore(), failing).prepare([b"not protobuf"]))
    assert gc.isenabled()
    gc.disable()  # a process that runs without the collector keeps running without it
    try:
        run(Aggregator(FakeStore(), DeadLetters()).prepare([envelope(RECEIVED)]))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_event_id_is_its_sources_own_so_no_source_pre_empts_another():
    store, dead = FakeStore(), DeadLetters()
    forged = Event()
    forged.CopyFrom(RESOLVED)
    forged.source = "other"
    stats = run(Aggregator(store, dead).process([envelope(RECEIVED, forged), envelope(RESOLVED)]))
    # The bus's RESOLVED is not taken for the other source's event of the same id.
    assert (stats.new_events, stats.duplicates) == (3, 0)
    stats = run(Aggregator(store, dead).process([envelope(RESOLVED, forged)]))
    assert (stats.new_events, stats.duplicates) == (0, 2)

"""Property: however the events of a dossier / document arrive (any order, any batches,
any duplicates, restarts in between), the stored state, and so the score, is the same."""
import asyncio

from hypothesis import given, settings, strategies as st

from services.aggregator.processor import Aggregator
from dti_pulse.events import decode_events
from tests.factories import (document_signed, document_status, document_transfer, dossier_paid, dossier_rated,
                             dossier_received, dossier_status)
from tests.fakes import DeadLetters, FakeStore, envelope

EVENTS = [
    dossier_received("P1", "2026-10-01 08:00", "2026-10-03 17:00", fee=True),
    dossier_status("P1", 2, "2026-10-01 09:00"), dossier_status("P1", 5, "2026-10-01 10:00"),
    dossier_status("P1", 4, "2026-10-02 10:00"), dossier_status("P1", 5, "2026-10-02 11:00"),
    dossier_status("P1", 9, "2026-10-04 10:00"), dossier_paid("P1", True, "2026-10-04 10:30"),
    dossier_rated("P1", False, "2026-10-05 08:00"),
    dossier_received("P2", "2026-10-02 08:00", "2026-10-09 17:00", channel=1, level="partial"),
    dossier_status("P2", 2, "2026-10-02 09:00"), dossier_status("P2", 10, "2026-10-05 09:00"),
    document_transfer("document_received", "DOC", "2026-10-03 08:00", due_at="2026-10-06 23:59"),
    document_status("DOC", "04", "2026-10-03 09:00"), document_status("DOC", "06", "2026-10-05 09:00"),
    document_transfer("document_sent", "DOC2", "2026-10-03 08:00"),
    document_signed("DOC2", "2026-10-03 08:01", True, True),
]


def deliver(deliveries, cuts, restarts) -> dict:
    store, dead = FakeStore(), DeadLetters()
    aggregator = Aggregator(store, dead)
    position, batch_number = 0, 0
    for size in cuts:
        batch = deliveries[position:position + size]
        position += size
        if batch:
            # several envelopes per batch, as Kafka delivers them
            asyncio.run(aggregator.process([envelope(*batch[i:i + 2]) for i in range(0, len(batch), 2)]))
        batch_number += 1
        if batch_number in restarts:  # a crash: a new process with an empty cache
            aggregator = Aggregator(store, dead)
            asyncio.run(aggregator.reset())
    if position < len(deliveries):
        asyncio.run(aggregator.process([envelope(*deliveries[position:])]))
    assert not dead
    return {key: (row[:-1], sorted(e.event_id for e in decode_events(row[-1]))) for key, row in store.rows.items()}


REFERENCE = deliver(EVENTS, [len(EVENTS)], set())


@settings(max_examples=150, deadline=None)
@given(order=st.permutations(EVENTS), duplicates=st.lists(st.sampled_from(EVENTS), max_size=12),
       cuts=st.lists(st.integers(1, 6), max_size=12), restarts=st.sets(st.integers(1, 12), max_size=3))
def test_any_order_batching_duplicates_and_restarts_give_the_same_state(order, duplicates, cuts, restarts):
    assert deliver(list(order) + duplicates, cuts, restarts) == REFERENCE

"""The state store across processes, over a real local socket, with fake stores behind it
(tests/e2e/test_crash.py runs it between processes on chDB and Apache Kafka)."""
import asyncio
import threading
from multiprocessing import AuthenticationError

import pytest

from services.aggregator import remote_store
from services.aggregator.processor import Aggregator, RowsRejected
from services.aggregator.remote_store import RemoteStateStore, StoreServer, StoreUnavailable
from tests.factories import dossier_received, dossier_status, procedure_listed
from tests.fakes import DeadLetters, FakeStore, envelope

SECRET = b"test-secret"


@pytest.fixture
def served(tmp_path):
    stores: dict[int, FakeStore] = {}

    def store_for(fold_index):
        stores[fold_index] = FakeStore()
        return stores[fold_index]

    server = StoreServer(str(tmp_path / "store.sock"), SECRET, store_for).start()
    clients = []

    def client(fold_index=0, secret=SECRET):
        clients.append(RemoteStateStore(str(tmp_path / "store.sock"), secret, fold_index))
        return clients[-1]

    yield client, stores, server
    for c in clients:
        c.close()
    server.stop()


def test_an_aggregator_folds_through_the_store_of_the_process_that_owns_it(served):
    client, stores, _ = served
    received = dossier_received("D1", "2026-10-01 08:00", "2026-10-03 17:00")
    accepted = dossier_status("D1", 2, "2026-10-01 09:00")
    aggregator = Aggregator(client(fold_index=1), DeadLetters())
    asyncio.run(aggregator.process([envelope(received, accepted)]))
    assert list(stores) == [1]
    assert stores[1].rows[("dossier", "D1")][-3] == 2  # event_count, before is_deleted and the events

    # Another fold process, after a rebalance, finds D1 stored: a redelivery counts nothing.
    async def after_rebalance():
        again = Aggregator(client(fold_index=1), DeadLetters())
        assert await again.reset() == 1
        return await again.process([envelope(accepted)])

    stats = asyncio.run(after_rebalance())
    assert (stats.duplicates, stats.new_events) == (1, 0)


def test_each_fold_process_gets_a_store_of_its_own(served):
    client, stores, _ = served
    client(fold_index=0).write_activity([("a",)])
    client(fold_index=2).write_activity([("b",)])
    client(fold_index=2).write_activity([("c",)])
    assert {index: store.activity for index, store in stores.items()} == {0: [("a",)], 2: [("b",), ("c",)]}


def test_rows_the_store_rejects_come_back_as_rows_rejected_and_other_failures_as_unavailable(served):
    client, stores, _ = served
    store = client()
    store.write_activity([])  # the fold process's store exists from here
    stores[0].rejects = lambda row: True
    with pytest.raises(RowsRejected, match="out of range"):
        store.write({"dossier": [("D1", 0, b"")]}, set(), {})
    stores[0].load = lambda keys: 1 / 0
    with pytest.raises(StoreUnavailable, match="ZeroDivisionError"):
        store.load([("dossier", "D1")])
    assert store.document_day_pairs(["X"]) == set()  # the connection is still good


def test_stored_ids_stream_in_parts(served, monkeypatch):
    monkeypatch.setattr(remote_store, "IDS_PER_MESSAGE", 3)
    client, stores, _ = served
    store = client()
    store.write_activity([])
    stores[0].rows = {("dossier", f"D{n}"): () for n in range(10)}
    assert list(store.stored_ids()) == [("dossier", f"D{n}") for n in range(10)]
    # A reader that stops midway leaves no half-read answer for the next call.
    ids = store.stored_ids()
    next(ids)
    ids.close()
    assert len(list(store.stored_ids())) == 10


def test_calls_at_once_run_at_once(served):
    """The aggregator writes a batch's states and activity together and loads the next
    batch's meanwhile: one call must not wait behind another."""
    client, stores, _ = served
    store = client()
    store.write_activity([])
    entered, release = threading.Barrier(2), threading.Event()

    def blocking_write(*args):
        entered.wait(5)
        release.wait(5)

    stores[0].write = blocking_write
    writer = threading.Thread(target=store.write, args=({}, set(), {}))
    writer.start()
    entered.wait(5)  # the write is inside the store
    assert store.load([("dossier", "D1")]) == {}
    release.set()
    writer.join(5)


def test_a_process_without_the_secret_is_refused(served):
    client, stores, _ = served
    with pytest.raises(AuthenticationError):
        client(secret=b"wrong").load([])
    assert stores == {}


def test_a_store_that_went_away_is_unavailable_until_it_is_back(served, tmp_path):
    client, stores, server = served
    store = client()
    store.write_activity([("a",)])
    server.stop()
    with pytest.raises(StoreUnavailable):
        store.write_activity([("b",)])
    with pytest.raises(StoreUnavailable):
        store.write_activity([("b",)])
    restarted = StoreServer(str(tmp_path / "store.sock"), SECRET, lambda index: stores[index]).start()
    try:
        store.write_activity([("b",)])
    finally:
        restarted.stop()
    assert stores[0].activity == [("a",), ("b",)]


def test_the_store_needs_a_secret(tmp_path):
    with pytest.raises(ValueError, match="needs a secret"):
        StoreServer(str(tmp_path / "store.sock"), b"", lambda index: None)


def test_only_an_aggregator_alone_writes_through_the_store():
    from dti_pulse.bootstrap import StoreWiring, folds_apart, owner_targets

    # What up and the bench run as the process that owns chDB.
    assert (owner_targets(0), owner_targets(0, ranking=False)) == ("aggregator,ranking", "aggregator")
    assert (owner_targets(2), owner_targets(2, ranking=False)) == ("ranking,store", "store")

    wired = StoreWiring("/run/dti/store.sock", b"secret")
    assert folds_apart(["aggregator"], wired)
    # The process that owns chDB is given the address too: it must still write the states itself.
    assert not folds_apart(["aggregator", "ranking"], wired)
    assert not folds_apart(["aggregator", "store"], wired)
    assert not folds_apart(["aggregator"], None)


def test_up_passes_the_store_wiring_as_arguments_and_the_secret_in_a_private_file(tmp_path):
    import stat

    from dti_pulse.bootstrap import StoreWiring, aggregation_layout

    assert aggregation_layout(0, data_dir=tmp_path) == [("aggregator+ranking", ["serve", "aggregator,ranking"])]
    (owner, owner_args), *folds = aggregation_layout(2, data_dir=tmp_path)
    assert owner == "ranking+store" and [name for name, _ in folds] == ["aggregator-0", "aggregator-1"]
    secret_file = tmp_path / "state-store.secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_bytes()
    assert len(secret) >= 32 and not any(secret.decode() in arg for _, args in folds for arg in args)
    fold_args = folds[1][1]
    assert fold_args[:2] == ["serve", "aggregator"] and fold_args[fold_args.index("--fold-index") + 1] == "1"
    wired = StoreWiring.from_arguments(fold_args[fold_args.index("--state-store") + 1], secret_file, 1)
    assert (wired.secret, wired.fold_index) == (secret, 1)
    assert owner_args[owner_args.index("--state-store") + 1] == wired.address
    # A second start makes a fresh secret: one that leaked is good until the next `up`.
    aggregation_layout(2, data_dir=tmp_path)
    assert secret_file.read_bytes() != secret
    with pytest.raises(SystemExit, match="secret-file"):
        StoreWiring.from_arguments(wired.address, None)


def test_rows_keys_and_pairs_cross_as_typed_protobuf_columns():
    from dti.store.v1 import store_pb2 as pb
    from dti_pulse.state import summarize
    from services.aggregator.processor import state_row

    events = [dossier_received("D-9", "2026-10-01 08:00", "2026-10-03 17:00"), dossier_status("D-9", 9, "2026-10-02 09:00")]
    summary = summarize(("dossier", "D-9"), events)
    rows = [state_row(summary, envelope(*events)), state_row(summary._replace(dossier_id="D-10"), b"")]
    wire = pb.Rows.FromString(remote_store.rows_message(rows, pb.Rows()).SerializeToString())
    assert remote_store.rows_of(wire) == [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows]
    assert remote_store.rows_of(remote_store.rows_message([], pb.Rows())) == []
    listings = [procedure_listed("1.001", "2026-09-01 08:00"), procedure_listed("1.001", "2026-10-01 08:00", withdrawn=True)]
    listing = summarize(("procedure", "1.001", "000.00.05.H56"), listings)
    rows = [state_row(listing, envelope(*listings)), state_row(listing._replace(versions_from_ms=[]), b"")]
    wire = pb.Rows.FromString(remote_store.rows_message(rows, pb.Rows()).SerializeToString())
    assert remote_store.rows_of(wire) == rows and wire.columns[2].integer_lists[0].values == listing.versions_from_ms
    keys = [("dossier", "D-9"), ("document", "V-1", "000.00.05.H56"), ("procedure", "1.001", "000.00.05.H56")]
    assert remote_store.keys_of(remote_store.keys_message(keys, pb.Keys())) == keys
    pairs = {("000.00.05.H56", 20_362), ("000.00.07.H56", 20_363)}
    assert remote_store.pairs_of(remote_store.pairs_message(pairs, pb.DayPairs())) == pairs
    with pytest.raises(TypeError, match="no column type"):
        remote_store.rows_message([(object(),)], pb.Rows())
    broken = remote_store.rows_message([(1, "a"), (2, "b")], pb.Rows())
    broken.columns[1].texts.pop()
    with pytest.raises(ValueError, match="row count"):
        remote_store.rows_of(broken)


def test_the_store_never_unpickles_what_a_peer_sends(served, tmp_path):
    """Even a peer with the secret cannot make the owner run code: frames are protobuf."""
    import os
    import pickle
    from multiprocessing.connection import Client

    client, stores, _ = served
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    peer = Client(str(tmp_path / "store.sock"), authkey=SECRET)
    peer.send_bytes(pickle.dumps(Payload()))  # where a Hello belongs
    with pytest.raises((EOFError, OSError)):
        peer.recv_bytes()  # the owner drops the connection
    assert not marker.exists()
    # ...and still serves the fold processes.
    client().write_activity([("a",)])
    assert stores[0].activity == [("a",)]

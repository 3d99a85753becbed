"""Day snapshots against the entity states they summarise, on chDB: for any period of whole
days and any judgement instant ranking can use, the measures read from snapshots (plus the
dirty days and the current day read from the states) equal the measures read from the
states alone."""
import itertools
import random
import time
from collections import defaultdict

import pytest

from dti_pulse.localtime import DAY_MS, LOCAL_OFFSET_MS, local_day
from services.aggregator.processor import state_row, tombstone_row
from dti_pulse.state import DocumentSummary, DossierSummary, PetitionSummary, PublicationSummary, day_pairs
from services.aggregator.store import ClickHouseStateStore
from dti_pulse.schema import (DOCUMENT_COLUMNS, DOSSIER_COLUMNS, PETITION_COLUMNS, PUBLICATION_COLUMNS, SPAN_DAYS,
                              place_span)
from services.ranking.measures import FAMILIES, MEASURE_DEFINITIONS, MEASURES_SQL, bind
from services.ranking.day_snapshots import DaySnapshotKeeper
from services.ranking.store import ClickHouseMeasures

pytestmark = pytest.mark.integration
AGENCIES = ["000.00.01.H56", "000.00.02.H56", "000.00.03.H56"]
MINUTE_MS = 60_000
EVERY_DAY_OVER = int(time.time() * 1000) + 30 * DAY_MS  # rebuild today's and future days too


def midnight(instant_ms: int) -> int:
    return instant_ms - (instant_ms + LOCAL_OFFSET_MS) % DAY_MS


def edgy(rng: random.Random, instant_ms: int) -> int:
    """Often exactly on a minute or a midnight, or a millisecond off one: where J <= t and
    J < t part."""
    choice = rng.random()
    if choice < 0.2:
        return midnight(instant_ms) + rng.choice([0, -1, 1])
    if choice < 0.4:
        return instant_ms - instant_ms % MINUTE_MS + rng.choice([0, -1, 1])
    return instant_ms


def random_dossier(rng: random.Random, dossier_id: str, around_ms: int, event_count: int) -> DossierSummary:
    received = around_ms + rng.randint(-40 * DAY_MS, 3 * DAY_MS)
    due = edgy(rng, received + rng.choice([0, 1, 3, 10]) * DAY_MS + rng.randint(-3_600_000, 3_600_000))
    paused = rng.choice([0, 0, rng.randint(0, 4 * DAY_MS)])
    has_end = rng.random() < 0.7
    end = rng.choice([due + paused, edgy(rng, received + rng.randint(0, 14 * DAY_MS))]) if has_end else 0
    has_fee = int(rng.random() < 0.5)
    return DossierSummary(
        dossier_id, rng.choice(AGENCIES), f"1.{rng.randint(1, 6)}", rng.choice([1, 2, 3]),
        rng.choice(["full_online", "partial"]), int(rng.random() < 0.95), received, due, due + paused, has_fee,
        int(has_end), end, paused, rng.choice([0, 0, 1, 2]), 0, 9 if has_end else 4, has_fee,
        int(has_fee and rng.random() < 0.5), int(rng.random() < 0.4), int(rng.random() < 0.7), 0,
        *(int(rng.random() < 0.5) for _ in range(4)), int(has_end), int(has_end and rng.random() < 0.6),
        int(rng.random() < 0.5), event_count)


def late_forced(summary: DossierSummary) -> DossierSummary:
    return summary._replace(late_forced=int(summary.supplement_count > 1))


def random_document(rng: random.Random, document_id: str, agency: str, around_ms: int, event_count: int,
                    recalled: int = 0) -> DocumentSummary:
    sent, received = rng.random() < 0.5, rng.random() < 0.6
    sent_at = around_ms + rng.randint(-40 * DAY_MS, 2 * DAY_MS) if sent else 0
    received_at = (sent_at + rng.choice([0, rng.randint(0, 3 * DAY_MS)]) if sent else
                   around_ms + rng.randint(-40 * DAY_MS, 2 * DAY_MS)) if received else 0
    has_due = received and rng.random() < 0.8
    due = edgy(rng, received_at + rng.randint(0, 10 * DAY_MS)) if has_due else 0
    completed = rng.random() < 0.6
    completed_at = edgy(rng, (received_at or sent_at) + rng.randint(0, 12 * DAY_MS)) if completed else 0
    return DocumentSummary(
        document_id, agency, int(sent), sent_at, int(received), received_at, int(rng.random() < 0.05),
        int(rng.random() < 0.9), rng.choice([0, 0, 0, 1, 2]), int(has_due), due, int(rng.random() < 0.8),
        int(rng.random() < 0.9), int(rng.random() < 0.9), int(completed), completed_at,
        "06" if completed else "03", recalled, event_count)


def random_petition(rng: random.Random, petition_id: str, around_ms: int, event_count: int) -> PetitionSummary:
    received = around_ms + rng.randint(-40 * DAY_MS, 3 * DAY_MS)
    due = edgy(rng, received + rng.choice([0, 5, 10]) * DAY_MS)
    answered = rng.random() < 0.6
    answered_at = rng.choice([due, edgy(rng, received + rng.randint(0, 15 * DAY_MS))]) if answered else 0
    rated = int(answered and rng.random() < 0.5)
    return PetitionSummary(petition_id, rng.choice(AGENCIES), int(rng.random() < 0.95), received, due, int(answered),
                           answered_at, rated, int(rated and rng.random() < 0.6), event_count)


def random_publication(rng: random.Random, publication_id: str, around_ms: int, event_count: int) -> PublicationSummary:
    decided = around_ms + rng.randint(-40 * DAY_MS, 3 * DAY_MS)
    due = edgy(rng, decided + rng.choice([0, 3, 5]) * DAY_MS)
    published = rng.random() < 0.7
    published_at = rng.choice([due, edgy(rng, decided + rng.randint(0, 8 * DAY_MS))]) if published else 0
    return PublicationSummary(publication_id, rng.choice(AGENCIES), f"1.{rng.randint(1, 6)}",
                              rng.choice(["new", "update"]), int(rng.random() < 0.95), decided, due, int(published),
                              published_at, event_count)


def span_start_ms(now_ms: int) -> int:
    """The first instant of the span of days (the tables' first sorting column) now falls in."""
    return place_span(local_day(now_ms)) * SPAN_DAYS * DAY_MS - LOCAL_OFFSET_MS


def store_states(store: ClickHouseStateStore, rng: random.Random, around_ms: int, count: int, prefix: str) -> list:
    """Stores random states, some in two versions; returns the newest version of each."""
    dossiers, documents, others = [], [], []
    for i in range(count // 2):  # petitions and publications, some in two versions, maybe on other days
        for make, letter in ((random_petition, "P"), (random_publication, "U")):
            first = make(rng, f"{prefix}{letter}{i}", around_ms, 1)
            others.append(first)
            if rng.random() < 0.3:
                others.append(make(rng, f"{prefix}{letter}{i}", around_ms, 2)._replace(agency_code=first.agency_code))
    for i in range(count):
        first = late_forced(random_dossier(rng, f"{prefix}D{i}", around_ms, 1))
        dossiers.append(first)
        if rng.random() < 0.3:  # a later version, maybe on other days
            dossiers.append(late_forced(random_dossier(rng, f"{prefix}D{i}", around_ms, 2))._replace(
                agency_code=first.agency_code))
    for i in range(2 * count):
        agency = rng.choice(AGENCIES)
        documents.append(random_document(rng, f"{prefix}O{i}", agency, around_ms, 1))
        if rng.random() < 0.3:
            documents.append(random_document(rng, f"{prefix}O{i}", agency, around_ms, 2))
        if rng.random() < 0.1:  # the recipient's side, which may agree to a recall
            other = next(a for a in AGENCIES if a != agency)
            documents.append(random_document(rng, f"{prefix}O{i}", other, around_ms, 1,
                                             recalled=int(rng.random() < 0.5)))
    # Versions one write at a time, the way the aggregator writes them: a version that moved
    # to another place with a tombstone where the previous one sat.
    previous = {}
    for version in (1, 2):
        rows_by_family = {"dossier": [], "document": [], "petition": [], "publication": []}
        for s in dossiers + documents + others:
            if s.event_count != version:
                continue
            key = (type(s), s[0], s[1])
            rows = rows_by_family[{DossierSummary: "dossier", DocumentSummary: "document",
                                   PetitionSummary: "petition", PublicationSummary: "publication"}[type(s)]]
            rows.append(state_row(s, b""))
            if key in previous and (tombstone := tombstone_row(previous[key], s)) is not None:
                rows.append(tombstone)
            previous[key] = s
        pairs = {p for s in dossiers + documents + others if s.event_count <= version for p in day_pairs(s)}
        store.write(rows_by_family, pairs)
    return list(previous.values())


def judgement_instants(rng: random.Random, now_ms: int, around_ms: int, count: int):
    """(start, end, J) as ranking asks: whole days from a midnight, judged at the period's
    end, or at the current minute while the period is open (everything received counts)."""
    now_minute = now_ms - now_ms % MINUTE_MS
    for _ in range(count):
        start = midnight(around_ms + rng.randint(-45 * DAY_MS, 2 * DAY_MS))
        end = start + rng.choice([1, 2, 7, 31, 92]) * DAY_MS
        yield start, end, min(end, now_minute)


def assert_same_measures(snapshots: ClickHouseMeasures, states: ClickHouseMeasures, rng, now_ms, around_ms, count):
    for start, end, judged_at in judgement_instants(rng, now_ms, around_ms, count):
        if judged_at <= start:
            continue
        expected = states.measures(AGENCIES, start, end, judged_at)
        got = snapshots.measures(AGENCIES, start, end, judged_at)
        zero = dict.fromkeys(MEASURE_DEFINITIONS, 0)
        for agency in AGENCIES:
            assert got.get(agency, zero) == expected.get(agency, zero), (start, end, judged_at, agency)


def test_day_snapshots_give_the_measures_of_the_states(clean_chdb):
    rng = random.Random(766)
    now_ms = int(time.time() * 1000)
    store = ClickHouseStateStore(clean_chdb)
    snapshots, keeper = ClickHouseMeasures(clean_chdb), DaySnapshotKeeper(clean_chdb, quiet_ms=0)
    states = ClickHouseMeasures(clean_chdb, day_snapshots=False)
    store_states(store, rng, now_ms, 300, "a")

    dirty = clean_chdb.query("SELECT count() FROM day_measures FINAL WHERE dirty = 1").result_rows[0][0]
    assert dirty > 0  # every day the states count on, until recomputed
    assert_same_measures(snapshots, states, rng, now_ms, now_ms, 15)  # everything read from the states

    assert keeper.recompute_dirty(now_ms=EVERY_DAY_OVER) == dirty
    assert clean_chdb.query("SELECT count() FROM day_measures FINAL WHERE dirty = 1").result_rows[0][0] == 0
    assert_same_measures(snapshots, states, rng, now_ms, now_ms, 60)

    # New states (another aggregator process): their days are dirty until the next round.
    store_states(ClickHouseStateStore(clean_chdb), rng, now_ms, 60, "b")
    assert_same_measures(snapshots, states, rng, now_ms, now_ms, 30)
    keeper.recompute_dirty(now_ms=EVERY_DAY_OVER)
    assert_same_measures(snapshots, states, rng, now_ms, now_ms, 30)


def test_snapshots_of_past_days_are_kept_to_the_day_and_stay_exact(clean_chdb):
    """States months old: their instants are kept to the local midnight, which is exact for
    the period ends (midnights) and for the current minute alike."""
    rng = random.Random(2022)
    now_ms = int(time.time() * 1000)
    long_ago = now_ms - 400 * DAY_MS
    store_states(ClickHouseStateStore(clean_chdb), rng, long_ago, 200, "old")
    snapshots, keeper = ClickHouseMeasures(clean_chdb), DaySnapshotKeeper(clean_chdb, quiet_ms=0)
    keeper.recompute_dirty(now_ms=EVERY_DAY_OVER)
    steps = clean_chdb.query("SELECT arrayJoin(steps['dossiers_on_time'].1) FROM day_measures FINAL").result_rows
    assert steps and all((t + LOCAL_OFFSET_MS) % DAY_MS == 0 for (t,) in steps)
    assert_same_measures(snapshots, ClickHouseMeasures(clean_chdb, day_snapshots=False), rng, now_ms, long_ago, 60)


def test_a_period_of_clean_days_reads_no_state(clean_chdb):
    rng = random.Random(5)
    now_ms = int(time.time() * 1000)
    store_states(ClickHouseStateStore(clean_chdb), rng, now_ms - 100 * DAY_MS, 50, "q")
    snapshots, keeper = ClickHouseMeasures(clean_chdb), DaySnapshotKeeper(clean_chdb, quiet_ms=0)
    keeper.recompute_dirty(now_ms=EVERY_DAY_OVER)
    start = midnight(now_ms - 150 * DAY_MS)
    end = midnight(now_ms - 10 * DAY_MS)
    expected = ClickHouseMeasures(clean_chdb, day_snapshots=False).measures(AGENCIES, start, end, end)
    # With the state tables emptied, only the snapshots can give the same answer.
    for table in ("dossier_state", "document_state"):
        clean_chdb.command(f"TRUNCATE TABLE {table}")
    assert snapshots.measures(AGENCIES, start, end, end) == expected
    assert sum(m["dossiers_received"] for m in expected.values()) > 0
    assert local_day(end) - local_day(start) == 140


def test_changed_measure_definitions_mark_every_day_dirty_once(clean_chdb):
    clean_chdb.command("TRUNCATE TABLE day_measure_definitions")
    rng = random.Random(9)
    store_states(ClickHouseStateStore(clean_chdb), rng, int(time.time() * 1000), 20, "f")
    keeper = DaySnapshotKeeper(clean_chdb, quiet_ms=0)
    keeper.recompute_dirty(now_ms=EVERY_DAY_OVER)
    assert keeper.ensure_definitions()  # never recorded: everything is rebuilt
    dirty = clean_chdb.query("SELECT count() FROM day_measures FINAL WHERE dirty = 1").result_rows[0][0]
    assert dirty == clean_chdb.query("SELECT count() FROM day_measures FINAL").result_rows[0][0] > 0
    keeper.recompute_dirty(now_ms=EVERY_DAY_OVER)
    assert not keeper.ensure_definitions()
    assert clean_chdb.query("SELECT count() FROM day_measures FINAL WHERE dirty = 1").result_rows[0][0] == 0


def test_the_current_day_is_rebuilt_only_once_it_is_over(clean_chdb):
    rng = random.Random(11)
    now_ms = int(time.time() * 1000)
    store_states(ClickHouseStateStore(clean_chdb), rng, now_ms, 40, "c")
    DaySnapshotKeeper(clean_chdb, quiet_ms=0).recompute_dirty(now_ms=now_ms)
    dirty_days = {day for (day,) in clean_chdb.query("SELECT day FROM day_measures FINAL WHERE dirty = 1").result_rows}
    assert dirty_days and min(dirty_days) >= local_day(now_ms - 10 * MINUTE_MS)


def test_states_that_moved_count_only_where_they_are_now(clean_chdb):
    """The state tables sort rows by the day they count on, and ranking reads only the rows
    placed on the days asked: the measures must be those of the newest states alone, held in
    a table of their own (no older version, no tombstone, no placement)."""
    rng = random.Random(2026)
    now_ms = int(time.time() * 1000)
    # Some around now, some around the start of the current span of days (the first column
    # of the tables' sorting key), so that periods cross from one span into the next.
    around_span_start = span_start_ms(now_ms) + 5 * DAY_MS
    store = ClickHouseStateStore(clean_chdb)
    newest = (store_states(store, rng, now_ms, 300, "m")
              + store_states(store, rng, around_span_start, 300, "s"))
    moved = clean_chdb.query("SELECT count() FROM dossier_state WHERE is_deleted = 1").result_rows[0][0]
    assert moved > 0
    tables = {"__DOSSIERS__": "newest_dossiers", "__DOCUMENTS__": "newest_documents",
              "__PETITIONS__": "newest_petitions", "__PUBLICATIONS__": "newest_publications",
              "__PROCEDURES__": "procedure_state",  # none here: listings count on no day
              "__RECALLS__": "newest_documents"}
    newest_tables = (("newest_dossiers", DOSSIER_COLUMNS, DossierSummary),
                     ("newest_documents", DOCUMENT_COLUMNS, DocumentSummary),
                     ("newest_petitions", PETITION_COLUMNS, PetitionSummary),
                     ("newest_publications", PUBLICATION_COLUMNS, PublicationSummary))
    try:
        for table, columns, family in newest_tables:
            clean_chdb.command(f"CREATE TABLE {table} ({columns}) ENGINE = Memory")
            clean_chdb.insert(table, [(*s, b"") for s in newest if isinstance(s, family)])
        states = ClickHouseMeasures(clean_chdb, day_snapshots=False)
        for start, end, judged_at in itertools.chain(judgement_instants(rng, now_ms, now_ms, 40),
                                                     judgement_instants(rng, now_ms, around_span_start, 40)):
            expected = defaultdict(lambda: dict.fromkeys(MEASURE_DEFINITIONS, 0))
            for family in FAMILIES:
                result = clean_chdb.query(bind(MEASURES_SQL[family], tables),
                                          parameters={"agencies": AGENCIES, "start": start, "end": end,
                                                      "judged_at": judged_at})
                for agency, *values in result.result_rows:
                    expected[agency].update(zip(result.column_names[1:], (int(v) for v in values)))
            got = states.measures(AGENCIES, start, end, judged_at)
            zero = dict.fromkeys(MEASURE_DEFINITIONS, 0)
            for agency in AGENCIES:
                assert got.get(agency, zero) == expected.get(agency, zero), (start, end, judged_at, agency)
    finally:
        for table, _, _ in newest_tables:
            clean_chdb.command(f"DROP TABLE IF EXISTS {table}")


def test_a_day_being_written_is_not_rebuilt_until_it_has_been_quiet(clean_chdb):
    rng = random.Random(12)
    now_ms = int(time.time() * 1000)
    store = ClickHouseStateStore(clean_chdb)
    store_states(store, rng, now_ms - 30 * DAY_MS, 20, "w")
    keeper = DaySnapshotKeeper(clean_chdb, quiet_ms=60_000)
    assert keeper.recompute_dirty() == 0  # marked a moment ago
    assert DaySnapshotKeeper(clean_chdb, quiet_ms=0).recompute_dirty() > 0


def test_the_aggregator_marks_a_day_once_while_its_mark_is_recent(clean_chdb):
    rng = random.Random(13)
    now_ms = int(time.time() * 1000)
    store = ClickHouseStateStore(clean_chdb)
    past = late_forced(random_dossier(rng, "M1", now_ms - 20 * DAY_MS, 1))._replace(has_received=1)
    today = late_forced(random_dossier(rng, "M2", now_ms, 1))._replace(has_received=1, received_at_ms=now_ms)
    for version in (1, 2, 3):
        rows = [state_row(s._replace(event_count=version), b"") for s in (past, today)]
        store.write({"dossier": rows}, {pair for s in (past, today) for pair in day_pairs(s)})
    assert clean_chdb.query("SELECT count() FROM day_measures").result_rows[0][0] == 2
    assert clean_chdb.query("SELECT count() FROM day_measures FINAL WHERE dirty = 1").result_rows[0][0] == 2

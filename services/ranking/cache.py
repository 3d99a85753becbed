"""Ranking's answers kept in memory until the data changes: the measures a question counts,
per data version (signalled writes, or the store's version poll), with the next minute's
questions warmed before the judgement minute turns."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Callable

from services.ranking.background import BackgroundLoop
from services.ranking.measures import FAMILIES, MEASURE_DEFINITIONS, DataVersion, measure_names

log = logging.getLogger(__name__)


class CachedMeasures:
    """Measures cached until the entity states change. The store's data version is read at
    most every version_ttl_s, so a lookup between changes costs no query; a change shows
    at most version_ttl_s later. With `changes` (this process's write signal) a signalled
    write changes the version at once, without a query; the poll is left to catch writers
    that do not signal.

    The version handed out is, per kind ("measures", "activity"), (epoch, writes): `writes`
    counts signalled writes, `epoch` the store versions the poll found changed with no
    signal since its last read. A store change that was signalled thus invalidates the
    cache once, not again when the poll sees it. (A writer that does not signal, in the same
    poll interval as one that does, is missed until the next change; under chDB, every
    writer of a data path is in its process, and the aggregator signals.)

    A signalled write that names, per family of states, the agencies it changed invalidates
    only those agencies' counts of that family: a batch of other agencies' events leaves a
    score, or a ranking of a cohort it did not touch, cached, and a batch of an agency's
    dossiers recounts its dossiers only (an entry remembers the write count it was computed
    after; a family of it is stale once a later write named one of its agencies for it).

    Open periods are judged at the start of the current judgement step (a minute): when it
    turns, every open question is a new entry, and every screen's lookups would miss at the
    same instant and count at once (~1 s of stalled answers each minute on this machine).
    With judge_step_ms set, a background round counts, warm_lead_ms before the turn, the
    questions asked during the step at the next step's instant; a write after the round
    leaves them stale as it would any entry."""

    _KINDS = DataVersion._fields

    def __init__(self, store, version_ttl_s: float = 0.1, capacity: int = 4096, clock=time.monotonic,
                 changes=None, judge_step_ms: int = 0, warm_lead_ms: int = 10_000,
                 wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000), warm_store=None):
        self.store = store
        self.warm_store = warm_store or store  # the same data, reached apart from the lookups
        self.judge_step_ms = judge_step_ms
        # 0 (no warming) also without a step: a positive lead implies one
        self.warm_lead_ms = max(0, min(warm_lead_ms, judge_step_ms // 2))
        self._wall_clock_ms = wall_clock_ms
        self._asked: dict[tuple, int] = {}  # open questions' keys -> the judgement instant they were last asked at
        self._warmed_for = None  # the step whose questions self._warmed are
        self._warmed: set[tuple] = set()  # questions already counted at the next step's instant
        # Several rounds within the lead: questions first asked after the first round are warmed too.
        self._warmer = BackgroundLoop("judgement-warmer", self.warm_next_judgement,
                                      max(0.05, min(1.0, self.warm_lead_ms / 4000)), "next judgement not warmed")
        self.version_ttl_s = version_ttl_s
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, tuple] = OrderedDict()  # key -> (basis, writes before, value)
        self._stored = None  # the store's version at the last read
        self._epochs = dict.fromkeys(self._KINDS, 0)
        self._writes = dict.fromkeys(self._KINDS, 0)
        self._writes_since_read = dict.fromkeys(self._KINDS, 0)
        self._unnamed_writes = 0  # signalled measures writes that named no agencies: they change every entry
        self._agency_written: dict[tuple, int] = {}  # (family, agency) -> the measures write count after its last write
        self._version = None
        self._version_read_at: float | None = None
        self._change_listeners: list = []
        # ClickHouse away: lookups fall back to the slow path
        self._behind_logged_at = float("-inf")
        self._refresher = BackgroundLoop("data-version", lambda: self._current_version(force=True),
                                         version_ttl_s / 2, "data version not readable")
        if changes is not None:
            changes.subscribe(self._written)

    def _handed_out(self) -> DataVersion:
        return DataVersion(*((self._epochs[kind], self._writes[kind]) for kind in self._KINDS))

    def on_change(self, listener) -> Callable[[], None]:
        """Calls listener(kind, {family: agencies} or None) from the writer's or the poll's thread at
        each change this cache learns of; returns the unsubscribe function."""
        self._change_listeners.append(listener)
        return lambda: self._change_listeners.remove(listener)

    def _changed(self, kind: str, changed) -> None:
        for listener in list(self._change_listeners):
            listener(kind, changed)

    def _written(self, kind: str, changed=None) -> None:
        """changed: {family: agencies} the write changed, or None (anything)."""
        with self._lock:
            self._writes[kind] += 1
            self._writes_since_read[kind] += 1
            if kind == "measures":
                if changed is None:
                    self._unnamed_writes += 1
                else:
                    for family, agencies in changed.items():
                        for agency in agencies:
                            self._agency_written[(family, agency)] = self._writes[kind]
            if self._version is not None:
                self._version = self._handed_out()
        self._changed(kind, changed)

    def _current_version(self, force: bool = False) -> DataVersion:
        now = self._clock()
        with self._lock:
            if not force and self._version_read_at is not None and now - self._version_read_at < self.version_ttl_s:
                return self._version
            if (not force and self._version_read_at is not None and self._refresher.running
                    and now - self._behind_logged_at >= 10):
                # The poll should keep it fresh: a lookup that reads it waits for a query, in
                # line with every other lookup doing the same (a suspect of a stalled turn).
                self._behind_logged_at = now
                log.warning("data version %.1f s old: lookups read it themselves (the background poll is behind)",
                            now - self._version_read_at)
        stored = self.store.data_version()
        with self._lock:
            found = []
            for kind in self._KINDS:
                if (self._stored is None or getattr(stored, kind) != getattr(self._stored, kind)) \
                        and not self._writes_since_read[kind]:
                    self._epochs[kind] += 1
                    found.append(kind)
                self._writes_since_read[kind] = 0
            first_read = self._stored is None
            self._stored = stored
            self._version, self._version_read_at = self._handed_out(), now
            version = self._version
        if not first_read:
            for kind in found:
                self._changed(kind, None)
        return version

    def _basis(self) -> tuple[tuple, int]:
        """What every entry depends on (the poll's epoch, the unnamed writes) and the count of
        measures writes so far: an entry computed now holds everything written until then."""
        self._current_version()
        with self._lock:
            return (self._epochs["measures"], self._unnamed_writes), self._writes["measures"]

    def _stale_families(self, entry, agency_codes, basis) -> tuple:
        """The families whose counts the entry no longer holds; called with the lock held."""
        if entry is None or entry[0] != basis:
            return FAMILIES
        written, since = self._agency_written, entry[1]
        return tuple(family for family in FAMILIES
                     if any(written.get((family, code), 0) > since for code in agency_codes))

    def refresh_in_background(self) -> None:
        """Keeps the data version fresh from a thread, so that no lookup waits for it, and
        (with judge_step_ms) the next judgement instant's answers counted before it comes."""
        self.store.refresh_in_background()
        self._refresher.start()
        if self.warm_lead_ms > 0:
            self._warmer.start()

    def stop_refreshing(self) -> None:
        """Stops the refresher; it must not query chDB while the process shuts chDB down."""
        self._refresher.stop(5)
        self._warmer.stop(30)
        self.store.stop_refreshing()

    def fresh_version(self):
        """The data version if it was read within the TTL, else None (without querying)."""
        with self._lock:
            if self._version_read_at is not None and self._clock() - self._version_read_at < self.version_ttl_s:
                return self._version
        return None

    def fresh_measures_stamp(self, agency_codes):
        """What these agencies' measures depend on: it changes when a write names one of them,
        or a write names none, or the poll finds a change; None unless the data version was
        read within the TTL (without querying)."""
        with self._lock:
            if self._version_read_at is None or self._clock() - self._version_read_at >= self.version_ttl_s:
                return None
            written = self._agency_written
            return (self._epochs["measures"], self._unnamed_writes,
                    max((written.get((family, code), 0) for family in FAMILIES for code in agency_codes), default=0))

    @staticmethod
    def _entry_key(agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms) -> tuple:
        return tuple(agency_codes), start_ms, end_ms, judged_at_ms, as_of_ms

    def _note_asked(self, key: tuple) -> None:
        """Remembers an open period's question (judged before its end, not as of an
        instant) for the next warming round; called with the lock held."""
        _, _, end_ms, judged_at_ms, as_of_ms = key
        if self.warm_lead_ms > 0 and as_of_ms is None and judged_at_ms < end_ms:
            self._asked.pop(key, None)  # to the end: the first key is the longest unasked
            self._asked[key] = judged_at_ms
            if len(self._asked) > self.capacity:
                del self._asked[next(iter(self._asked))]

    def warm_next_judgement(self) -> int:
        """One round: within warm_lead_ms of the next judgement step, counts each question
        asked during the current step at the next step's instant (the key a lookup will ask
        for then), once a step, also those first asked after the step's first round; returns
        how many it counted. Questions not asked during the current step are forgotten, and
        the round's own counting is not an asking."""
        step = self.judge_step_ms
        now = self._wall_clock_ms()
        current = now - now % step
        if current + step - now > self.warm_lead_ms:
            return 0
        if self._warmed_for != current:
            self._warmed_for, self._warmed = current, set()
        with self._lock:
            self._asked = {key: judged for key, judged in self._asked.items() if judged >= current}
            # One agency's question that a wider question asked this step covers (its
            # cohort's, which a lookup looks for first) is answered from the wider count: a
            # cohort counts in about the time of one of its agencies. When the cohort is
            # counted in the same round, the agency also gets an entry of its own, so that a
            # write to another agency of the cohort after the round leaves it fresh, as it
            # would a count of its own. (First asked after the cohort's round, it gets none:
            # its lookup takes the cohort's entry, or counts alone once that is stale.)
            covered: dict[tuple, set] = {}
            for codes, start_ms, end_ms, _, _ in self._asked:
                if len(codes) > 1:
                    covered.setdefault((start_ms, end_ms), set()).update(codes)
            alone = {(key[0][0], key[1], key[2]) for key in self._asked
                     if len(key[0]) == 1 and key[0][0] in covered.get(key[1:3], ())}
            # Most recently asked first: if the round runs past the turn, the rest are
            # counted by their own lookups, as without warming.
            asked = [key for key in reversed(self._asked) if key not in self._warmed
                     and (len(key[0]) > 1 or (key[0][0], key[1], key[2]) not in alone)]
        counted, started = 0, time.perf_counter()
        for key in asked:
            if self._wall_clock_ms() >= current + step:
                break
            codes, start_ms, end_ms, _, _ = key
            # Once a step: a busy agency's count goes stale at its next write, and is
            # counted again by the lookup after it, as it is all minute.
            self._warmed.add(key)
            split = [code for code in codes if (code, start_ms, end_ms) in alone] if len(codes) > 1 else []
            if self._count(self._entry_key(codes, start_ms, end_ms, min(end_ms, current + step), None),
                           self.warm_store, split)[0]:
                counted += 1
        if counted:
            log.info("next judgement warmed: %d of %d questions counted in %.0f ms", counted, len(asked),
                     1000 * (time.perf_counter() - started))
        return counted

    def measures(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
                 as_of_ms: int | None = None) -> dict[str, dict[str, int]]:
        key = self._entry_key(agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms)
        with self._lock:
            self._note_asked(key)
        return self._count(key)[1]

    def _count(self, key: tuple, store=None, split=()) -> tuple[bool, dict[str, dict[str, int]]]:
        """(whether the store was asked, the key's measures): from the entry while it is
        fresh, else counted by `store` (the lookups' by default; only the stale families,
        when the entry has the others). A count also enters each agency of `split` under
        its own question, as of the same writes (an agency's counts do not depend on the
        others asked with it)."""
        store = store or self.store
        agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms = key
        agency_codes = list(agency_codes)
        basis, writes = self._basis()
        with self._lock:
            entry = self._entries.get(key)
            stale = self._stale_families(entry, agency_codes, basis)
            if not stale:
                self._entries.move_to_end(key)
                return False, entry[2]
        if stale == FAMILIES:
            value = store.measures(agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms)
        else:  # the other family's counts are still the entry's: one query instead of two
            value = _with_families(entry[2], stale, store.measures(agency_codes, start_ms, end_ms, judged_at_ms,
                                                                    as_of_ms, families=stale))
        with self._lock:
            for code in split:
                alone = self._entry_key([code], start_ms, end_ms, judged_at_ms, as_of_ms)
                self._entries[alone] = (basis, writes, {code: value[code]} if code in value else {})
                self._entries.move_to_end(alone)
            self._entries[key] = (basis, writes, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return True, value

    def cached(self, agency_codes: list[str], start_ms: int, end_ms: int, judged_at_ms: int,
               as_of_ms: int | None = None) -> dict[str, dict[str, int]] | None:
        """What measures() would answer from memory now, else None (no query). Either way
        the question counts as asked: the caller would take this answer, so the next
        judgement warms it (and not the narrower questions it covers)."""
        basis, _ = self._basis()
        key = self._entry_key(agency_codes, start_ms, end_ms, judged_at_ms, as_of_ms)
        with self._lock:
            self._note_asked(key)
            entry = self._entries.get(key)
            if self._stale_families(entry, agency_codes, basis):
                return None
            return entry[2]

    def due_dossiers(self, *args, **kwargs):
        return self.store.due_dossiers(*args, **kwargs)

    def explain(self, *args, **kwargs):
        return self.store.explain(*args, **kwargs)

    def activity(self, *args, **kwargs):
        return self.store.activity(*args, **kwargs)


def _with_families(measures: dict, families, recounted: dict) -> dict:
    """measures with the counts of `families` replaced by the recounted ones."""
    replaced = set(measure_names(families))
    merged = {}
    for agency in measures.keys() | recounted.keys():
        counts = dict.fromkeys(MEASURE_DEFINITIONS, 0)
        counts.update((name, value) for name, value in measures.get(agency, {}).items() if name not in replaced)
        counts.update(recounted.get(agency, {}))
        merged[agency] = counts
    return merged

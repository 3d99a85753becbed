"""Test doubles for the aggregator's ports (unit tests only; integration tests use chDB)."""
from dti.events.v1.events_pb2 import EventBatch
from services.aggregator.processor import RowsRejected, row_key
from dti_pulse.events import decode_events


class FakeStore:
    def __init__(self, fail_writes: int = 0, rejects=lambda row: False):
        """rejects(row): whether the store refuses that state row, as ClickHouse does a value
        outside its column's type (the whole write fails, nothing of it is kept)."""
        self.rows: dict[tuple, tuple] = {}
        self.fail_writes = fail_writes
        self.rejects = rejects
        self.writes = 0
        self.loads = 0
        self.activity: list[tuple] = []
        self.dirty_days: set[tuple] = set()
        self.tombstones: list[tuple] = []

    def load(self, keys):
        self.loads += 1
        self.loaded_keys = list(keys)
        found = {}
        for key in keys:
            row = self.rows.get(key)
            if row is not None:
                found[key] = row[-1]
        return found

    def stored_ids(self):
        return [(key[0], key[1]) for key in self.rows]

    def document_day_pairs(self, document_ids):
        from dti_pulse.state import day_pairs, summarize

        return {pair for key, row in self.rows.items() if key[0] == "document" and key[1] in set(document_ids)
                for pair in day_pairs(summarize(key, decode_events(row[-1])))}

    def write(self, rows_by_family, day_pairs=(), changed=None):
        if self.fail_writes:
            self.fail_writes -= 1
            raise ConnectionError("ClickHouse away")
        self.writes += 1
        if any(self.rejects(row) for rows in rows_by_family.values() for row in rows):
            raise RowsRejected("dossier_state: value out of range")
        for family, rows in rows_by_family.items():
            for row in rows:
                # Rows are (*summary, is_deleted, events): a tombstone marks where a state sat
                # before it moved, which a store keyed by id alone has no place for.
                key = row_key(family, row)
                if row[-2]:
                    self.tombstones.append(row)
                else:
                    self.rows[key] = row
        self.dirty_days.update(day_pairs)


    def write_activity(self, activity_rows):
        self.activity.extend(activity_rows)


class DeadLetters(list):
    async def __call__(self, payload, reason):
        self.append((payload, reason))


def envelope(*events):
    return EventBatch(events=list(events)).SerializeToString()

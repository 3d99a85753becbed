"""The agency registry: a CSV file the operator edits (docs/domain.md, Agencies)."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from dti_pulse.localtime import LOCAL_TZ

KINDS = ("province", "department", "commune", "district")
COHORTS = ("department", "commune", "district")
HEADER = ["code", "name", "kind", "parent", "valid_from", "valid_to", "successor"]
OPTIONAL = ("successor",)  # a file without the column reads as if it were empty


class RegistryError(ValueError):
    pass


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    kind: str
    parent: str
    valid_from: date
    valid_to: date | None  # inclusive; None = still valid
    successor: str = ""  # the agency it merged into when it ended: its history rolls into that one

    # [start, end) of the validity interval in Unix ms, for the per-event check in ingest
    valid_from_ms: float = field(init=False, repr=False, compare=False)
    valid_until_ms: float = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        start = datetime.combine(self.valid_from, time(), LOCAL_TZ).timestamp() * 1000
        end = (datetime.combine(self.valid_to + timedelta(days=1), time(), LOCAL_TZ).timestamp() * 1000
               if self.valid_to else float("inf"))
        object.__setattr__(self, "valid_from_ms", start)
        object.__setattr__(self, "valid_until_ms", end)

    def valid_at_ms(self, instant_ms: int) -> bool:
        """Was the agency in service at this instant (local days, inclusive)?"""
        return self.valid_from_ms <= instant_ms < self.valid_until_ms

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def overlaps(self, first_day: date, last_day: date) -> bool:
        return self.valid_from <= last_day and (self.valid_to is None or first_day <= self.valid_to)


class Registry:
    def __init__(self, agencies: list[Agency]):
        self._by_code = {a.code: a for a in agencies}
        # The registry does not change once read: each agency's parents and successors, at any
        # remove, are walked once here, not at every lookup (rankings and cached answers ask).
        self._ancestors = {a.code: self._chain(a, "parent") for a in agencies}
        self._successors = {a.code: self._chain(a, "successor") for a in agencies}
        self._with_members = {code for chain in self._ancestors.values() for code in chain}
        self.total_kinds = tuple(sorted({a.kind for a in agencies if a.kind not in COHORTS
                                         and a.code in self._with_members}))

    def _chain(self, agency: Agency, link: str) -> list[str]:
        """The codes reached by following `link` (parent or successor) from an agency, in
        order, stopping at an unknown code or where the chain comes round again."""
        chain, current = [], getattr(agency, link)
        while current and current not in chain:
            chain.append(current)
            current = getattr(self._by_code.get(current), link, "")
        return chain

    def __contains__(self, code: str) -> bool:
        return code in self._by_code

    def __len__(self) -> int:
        return len(self._by_code)

    def get(self, code: str) -> Agency | None:
        return self._by_code.get(code)

    def all(self) -> list[Agency]:
        return list(self._by_code.values())

    def cohort(self, kind: str, first_day: date, last_day: date) -> list[Agency]:
        """Agencies of one kind valid at some point between the two days."""
        return [a for a in self._by_code.values() if a.kind == kind and a.overlaps(first_day, last_day)]

    def has_members(self, code: str) -> bool:
        """Whether some agency lies under this one (its `parent`, or a parent's parent...)."""
        return code in self._with_members

    def members(self, code: str, first_day: date, last_day: date) -> list[Agency]:
        """The scored agencies (COHORTS) under `code`, at any depth, valid at some point between
        the two days: what a total (the province, a subtree) is summed over."""
        return [a for a in self._by_code.values()
                if a.kind in COHORTS and a.overlaps(first_day, last_day) and code in self._ancestors[a.code]]

    def predecessors(self, code: str, first_day: date, last_day: date) -> list[Agency]:
        """The agencies merged into `code` (at any remove) that were in service at some point
        between the two days: their history is the successor's."""
        return [a for a in self._by_code.values()
                if a.overlaps(first_day, last_day) and code in self._successors[a.code]]

    def problems(self) -> list[str]:
        """What is wrong across agencies (one row at a time is checked as it is read): a
        parent or successor that is not in the file, a cycle, a successor named by an agency
        still in service, or one not in service the day after the merger."""
        found = []
        for agency in self._by_code.values():
            for role in ("parent", "successor"):
                other = getattr(agency, role)
                if other and other not in self._by_code:
                    found.append(f"{agency.code}: {role} {other} is not in the registry")
            if agency.successor:
                successor = self._by_code.get(agency.successor)
                if agency.valid_to is None:
                    found.append(f"{agency.code}: has a successor but no valid_to (when did it merge?)")
                elif successor is not None and not successor.valid_on(agency.valid_to + timedelta(days=1)):
                    found.append(f"{agency.code}: successor {agency.successor} is not in service on "
                                 f"{agency.valid_to + timedelta(days=1)}, the day after the merger")
                elif successor is not None and successor.kind != agency.kind:
                    found.append(f"{agency.code}: successor {agency.successor} is a {successor.kind}, not a {agency.kind}")
                if agency.code in self._successors[agency.code]:
                    found.append(f"{agency.code}: its successors lead back to it")
            if agency.code in self._ancestors[agency.code]:
                found.append(f"{agency.code}: its parents lead back to it")
        return found


def _parse_date(raw: str, where: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise RegistryError(f"{where}: bad date {raw!r} (expected YYYY-MM-DD)") from None


def load_registry(path: Path | str) -> Registry:
    path = Path(path)
    agencies: list[Agency] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, None) or []]
        columns = len(header)
        if header not in (HEADER, HEADER[:-len(OPTIONAL)]):
            raise RegistryError(f"{path}:1: header must be {','.join(HEADER)} (successor may be left out)")
        seen = set()
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            where = f"{path}:{line_no}"
            if len(row) != columns:
                raise RegistryError(f"{where}: expected {columns} columns, got {len(row)}")
            code, name, kind, parent, valid_from, valid_to, successor = [cell.strip() for cell in row] + [""] * (
                len(HEADER) - columns)
            if not code or not name:
                raise RegistryError(f"{where}: code and name are required")
            if kind not in KINDS:
                raise RegistryError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
            if code in seen:
                raise RegistryError(f"{where}: duplicate code {code}")
            seen.add(code)
            start = _parse_date(valid_from, where)
            end = _parse_date(valid_to, where) if valid_to else None
            if end is not None and end < start:
                raise RegistryError(f"{where}: valid_to is before valid_from")
            agencies.append(Agency(code, name, kind, parent, start, end, successor))
    return Registry(agencies)

"""What a credential may speak for or see: agency codes, code prefixes (`000.00.15.*`: a
department and the units under it) and, for ranking, whole cohorts (`cohort:commune`).
One parser and one matcher for ingest's sources and ranking's callers. No I/O."""
from __future__ import annotations

from typing import Iterable


class Scope:
    def __init__(self, patterns: Iterable[str]):
        patterns = tuple(patterns)
        self.cohorts = frozenset(p.removeprefix("cohort:") for p in patterns if p.startswith("cohort:"))
        codes = [p for p in patterns if not p.startswith("cohort:")]
        self.exact = frozenset(p for p in codes if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in codes if p.endswith("*"))

    def allows_agency(self, agency_code: str) -> bool:
        return agency_code in self.exact or agency_code.startswith(self.prefixes)

    def allows_cohort(self, cohort: str) -> bool:
        return cohort in self.cohorts


def parse_scopes(spec: str) -> dict[str, tuple[str, ...]]:
    """`portal=000.00.15.*|000.00.03.H56,hue=cohort:commune` -> {name: patterns}."""
    found: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, patterns = item.partition("=")
        codes = tuple(filter(None, (p.strip() for p in patterns.split("|"))))
        if not sep or not name.strip() or not codes:
            raise ValueError(f"expected name=CODE|PREFIX*|..., got {item!r}")
        if any("*" in code[:-1] for code in codes):
            raise ValueError(f"'*' may only end a prefix, got {item!r}")
        found[name.strip()] = codes
    return found

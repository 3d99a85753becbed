"""Which agencies each source may send events for (DTI_INGEST_SOURCE_AGENCIES). No I/O.

A pattern is an agency code, or a prefix ending in `*` (`000.00.15.*`: a department and
the units under it). With no source listed, every source may send for every agency (one
bus, trusted for the whole province); once one is listed, a source not listed may send
for none.
"""
from __future__ import annotations

from typing import Mapping, Sequence


class SourceScope:
    def __init__(self, source_agencies: Mapping[str, Sequence[str]] | None = None):
        self._rules = {source: (frozenset(p for p in patterns if not p.endswith("*")),
                                tuple(p[:-1] for p in patterns if p.endswith("*")))
                       for source, patterns in (source_agencies or {}).items()}

    @property
    def restricted(self) -> bool:
        return bool(self._rules)

    def allows(self, source: str, agency_code: str) -> bool:
        if not self._rules:
            return True
        rule = self._rules.get(source)
        if rule is None:
            return False
        exact, prefixes = rule
        return agency_code in exact or agency_code.startswith(prefixes)

    def refusal(self, source: str, agency_code: str) -> str:
        return f"source '{source}' may not send events for agency '{agency_code}'"


def parse_source_agencies(spec: str) -> dict[str, tuple[str, ...]]:
    """`portal=000.00.15.*|000.00.03.H56,hue=000.00.20.H56` -> {source: patterns}."""
    found: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        source, sep, patterns = item.partition("=")
        codes = tuple(filter(None, (p.strip() for p in patterns.split("|"))))
        if not sep or not source.strip() or not codes:
            raise ValueError(f"expected source=CODE|PREFIX*|..., got {item!r}")
        if any("*" in code[:-1] for code in codes):
            raise ValueError(f"'*' may only end a prefix, got {item!r}")
        found[source.strip()] = codes
    return found

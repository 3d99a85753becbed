"""Which agencies each source may send events for (DTI_INGEST_SOURCE_AGENCIES). No I/O.

With no source listed, every source may send for every agency (one bus, trusted for the
whole province); once one is listed, a source not listed may send for none.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from dti_pulse.scopes import Scope


class SourceScope:
    def __init__(self, source_agencies: Mapping[str, Sequence[str]] | None = None):
        self._scopes = {source: Scope(patterns) for source, patterns in (source_agencies or {}).items()}

    @property
    def restricted(self) -> bool:
        return bool(self._scopes)

    def allows(self, source: str, agency_code: str) -> bool:
        if not self._scopes:
            return True
        scope = self._scopes.get(source)
        return scope is not None and scope.allows_agency(agency_code)

    def refusal(self, source: str, agency_code: str) -> str:
        return f"source '{source}' may not send events for agency '{agency_code}'"

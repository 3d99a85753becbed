"""Turns one JSON event from the bus into the protobuf Event, or says why it cannot.

Pure domain logic: no I/O. The rules follow docs/domain.md, Events; unknown extra fields are
ignored so that a newer bus can add fields without being refused.

This runs once per event at ingest's full rate, so each helper first makes a cheap test
of the common, valid case, and only a value that fails it goes on to the checks that word
the reason (nulls, defaults, wrong types).

`valid_batch` is the same rules for a whole batch at once: msgspec decodes the body into
typed structs in C, checking types, required fields, ranges and enumerations, and the
checks left (ids, texts, instants, the registry) run on attributes. It gives up on a batch
with anything wrong in it, and the per-event path (`to_event`) then words each reason. A
test holds the two to the same answers.
"""
from __future__ import annotations

import re
import time as time_module
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Callable, Literal, Union

import msgspec

from dti.events.v1.events_pb2 import Event, EventBatch
from dti_pulse.events import BODY_FIELD
from dti_pulse.localtime import LOCAL_TZ
from dti_pulse.registry import Registry
from dti_pulse.state import PROCEDURE_FACTS

DOCUMENT_STATUS_CODES = frozenset({"01", "02", "03", "04", "05", "06", "13", "15", "16"})
SERVICE_LEVELS = frozenset({"partial", "full_online"})
PUBLICATION_CHANGES = frozenset({"new", "update"})
DOSSIER_CHANNELS = frozenset({1, 2, 3})
DOSSIER_STATUSES = frozenset(range(1, 11))
BUSINESS_TYPES = frozenset(range(4))
_UUID_TEXT = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID = re.compile(_UUID_TEXT)
_UUID_LINES = re.compile(rf"(?:{_UUID_TEXT}\n)*{_UUID_TEXT}")  # a batch's ids in one call of the regex engine
_fromisoformat = datetime.fromisoformat
# Bounds that keep any one event far under the envelope Kafka takes (events.MAX_ENVELOPE_BYTES,
# ~1 MB): texts 4 x 512 characters, and a document's recipients 1,000 codes of 64, at most 3
# bytes a character in UTF-8 (~200 KB). Real ids and codes are tens of characters.
MAX_TEXT_CHARS = 512
MAX_CODE_CHARS = 64
MAX_RECIPIENTS = 1_000
# Every instant an event carries lies within the years the reporting periods and the store's
# day arithmetic express; the moment an event happened (and a dossier's reception) also no
# further ahead of the server's clock than the allowed skew (DTI_INGEST_MAX_FUTURE_S).
EARLIEST_INSTANT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
LATEST_INSTANT_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
DEFAULT_MAX_FUTURE_MS = 86_400_000


class Invalid(ValueError):
    """The event is refused; str() is the reason returned to the sender."""


_TRANSFERS = frozenset({"document_sent", "document_received"})
_RECEIPTS = frozenset({"dossier_received", "petition_received"})  # their received_at is checked against the clock


def _check_parties(body, registry: Registry) -> None:
    """A document's sender and every recipient are agencies of the registry."""
    if body.from_agency not in registry:
        raise Invalid(f"unknown agency '{body.from_agency[:MAX_CODE_CHARS]}' in 'from_agency'")
    for code in body.to_agencies:
        if code not in registry:
            raise Invalid(f"unknown agency '{code[:MAX_CODE_CHARS]}' in 'to_agencies'")


def _require(raw: dict, name: str) -> Any:
    value = raw.get(name)
    if value is None:
        raise Invalid(f"missing field '{name}'")
    return value


def _text(raw: dict, name: str, required: bool = True, default: str = "", max_chars: int = MAX_TEXT_CHARS) -> str:
    value = raw.get(name)
    if value.__class__ is str and len(value) <= max_chars and (not required or (value and not value.isspace())):
        return value
    if value is None:
        if required:
            raise Invalid(f"missing field '{name}'")
        return default
    if value.__class__ is not str:
        raise Invalid(f"field '{name}' must be a string")
    if required and (not value or value.isspace()):
        raise Invalid(f"field '{name}' must not be empty")
    raise Invalid(f"field '{name}' is longer than {max_chars} characters")


def _flag(raw: dict, name: str, required: bool = True, default: bool = False) -> bool:
    value = raw.get(name)
    if value.__class__ is bool:
        return value
    if value is None:
        if required:
            raise Invalid(f"missing field '{name}'")
        return default
    if value.__class__ is not bool:
        raise Invalid(f"field '{name}' must be true or false")
    return value


def _integer(raw: dict, name: str, allowed: frozenset, required: bool = True, default: int | None = None) -> int:
    value = raw.get(name)
    if value.__class__ is int and value in allowed:  # bool is not int here: True is refused
        return value
    if value is None:
        if required:
            raise Invalid(f"missing field '{name}'")
        value = default
        if value in allowed:
            return value
    raise Invalid(f"field '{name}' must be one of {sorted(allowed)}, got {value!r}")


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_MICROSECOND = timedelta(microseconds=1)
_offset_us: dict = {}  # a parsed instant's tzinfo -> its UTC offset in microseconds
_due_ms: dict[str, int] = {}  # a due date (YYYY-MM-DD) -> the last millisecond of that local day
_CACHED_AT_MOST = 4096


def parse_instant_ms(value: Any, name: str) -> int:
    """RFC 3339 with an explicit offset -> Unix milliseconds, floored: exact, where
    int(timestamp() * 1000) was one millisecond short for ~1 % of instants (float rounding),
    and cheaper (timestamp() and utcoffset() cost ~1 us an instant here)."""
    if value.__class__ is not str:
        raise Invalid(f"field '{name}' must be an RFC 3339 timestamp string")
    try:
        parsed = _fromisoformat(value)
    except ValueError:
        raise Invalid(f"field '{name}' is not an RFC 3339 timestamp: {value!r}") from None
    zone = parsed.tzinfo
    if zone is None or len(value) <= 10:
        raise Invalid(f"field '{name}' needs a date, a time and a UTC offset: {value!r}")
    offset_us = _offset_us.get(zone)
    if offset_us is None:
        offset_us = parsed.utcoffset() // _ONE_MICROSECOND
        if len(_offset_us) < _CACHED_AT_MOST:  # odd offsets (seconds, microseconds) are not bounded
            _offset_us[zone] = offset_us
    instant_ms = ((parsed.toordinal() - _EPOCH_ORDINAL) * 86_400_000_000 + parsed.hour * 3_600_000_000
                  + parsed.minute * 60_000_000 + parsed.second * 1_000_000 + parsed.microsecond - offset_us) // 1000
    if EARLIEST_INSTANT_MS <= instant_ms < LATEST_INSTANT_MS:
        return instant_ms
    raise Invalid(f"field '{name}' is outside the years 2000-2099: {value!r}")


def check_instant_ms(instant_ms: int, name: str, latest_ms: int | None = None) -> int:
    """An instant in milliseconds within the years events may carry and, given latest_ms,
    not after it (the server's clock plus the allowed skew)."""
    if not EARLIEST_INSTANT_MS <= instant_ms < LATEST_INSTANT_MS:
        raise Invalid(f"field '{name}' is outside the years 2000-2099: {instant_ms} ms")
    if latest_ms is not None and instant_ms > latest_ms:
        raise Invalid(f"field '{name}' is further in the future than the server's clock allows "
                      f"({(instant_ms - latest_ms) // 1000} s past the allowed skew)")
    return instant_ms


def latest_allowed_ms(max_future_ms: int = DEFAULT_MAX_FUTURE_MS) -> int:
    """The latest instant an event may say it happened at, now."""
    return int(time_module.time() * 1000) + max_future_ms


def parse_due_ms(value: Any, name: str) -> int:
    """A due date (YYYY-MM-DD: the end of that local day) or an RFC 3339 instant."""
    if isinstance(value, str) and len(value) == 10:
        due_ms = _due_ms.get(value)
        if due_ms is not None:
            return due_ms
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise Invalid(f"field '{name}' is not a date: {value!r}") from None
        next_midnight = datetime.combine(day + timedelta(days=1), time(), LOCAL_TZ)
        due_ms = int(next_midnight.timestamp()) * 1000 - 1  # a whole second: exact
        if len(_due_ms) < _CACHED_AT_MOST:  # the documents of a few years share their due dates
            _due_ms[value] = due_ms
        return due_ms
    return parse_instant_ms(value, name)


def _document_transfer(raw: dict, body) -> None:
    body.document_id = _text(raw, "document_id")
    body.from_agency = _text(raw, "from_agency", max_chars=MAX_CODE_CHARS)
    to_agencies = raw.get("to_agencies")
    if to_agencies.__class__ is not list or not all(a.__class__ is str and a for a in to_agencies):
        _require(raw, "to_agencies")
        raise Invalid("field 'to_agencies' must be a list of agency codes")
    if len(to_agencies) > MAX_RECIPIENTS or any(len(a) > MAX_CODE_CHARS for a in to_agencies):
        raise Invalid(f"field 'to_agencies' holds at most {MAX_RECIPIENTS} codes of at most {MAX_CODE_CHARS} characters")
    body.to_agencies.extend(to_agencies)
    get = raw.get
    if get("document_type") is not None:
        body.document_type = _text(raw, "document_type", required=False)
    promulgated_on = get("promulgated_on")
    if promulgated_on is not None:
        promulgated_on = _text(raw, "promulgated_on", required=False)
        if promulgated_on:
            try:
                date.fromisoformat(promulgated_on)
            except ValueError:
                raise Invalid(f"field 'promulgated_on' is not a date: {promulgated_on!r}") from None
            body.promulgated_on = promulgated_on
    if get("due_date") is not None:
        body.due_at_ms = parse_due_ms(raw["due_date"], "due_date")
    body.business_type = _integer(raw, "business_type", BUSINESS_TYPES, required=False, default=0)
    body.classified = _flag(raw, "classified", required=False, default=False)
    body.electronic = _flag(raw, "electronic", required=False, default=True)


def _document_signed(raw: dict, body) -> None:
    body.document_id = _text(raw, "document_id")
    body.personal_signature = _flag(raw, "personal_signature")
    body.agency_signature = _flag(raw, "agency_signature")


def _document_status(raw: dict, body) -> None:
    body.document_id = _text(raw, "document_id")
    code = _require(raw, "status_code")
    if code.__class__ is int:
        code = f"{code:02d}"
    if code.__class__ is not str or code not in DOCUMENT_STATUS_CODES:
        raise Invalid(f"field 'status_code' must be one of {sorted(DOCUMENT_STATUS_CODES)}, got {code!r}")
    body.status_code = code


def _interval(raw: dict, body, start: str) -> None:
    """`<start>` and `due_at`, RFC 3339 instants, the due one not before the start, into
    body.<start>_ms and body.due_at_ms."""
    start_ms = parse_instant_ms(_require(raw, start), start)
    due_at_ms = parse_instant_ms(_require(raw, "due_at"), "due_at")
    if due_at_ms < start_ms:
        raise Invalid(f"field 'due_at' is before '{start}'")
    setattr(body, f"{start}_ms", start_ms)
    body.due_at_ms = due_at_ms


def _dossier_received(raw: dict, body) -> None:
    body.dossier_id = _text(raw, "dossier_id")
    body.procedure_code = _text(raw, "procedure_code")
    body.channel = _integer(raw, "channel", DOSSIER_CHANNELS, required=False, default=1)
    level = raw.get("service_level")
    if level.__class__ is not str or level not in SERVICE_LEVELS:
        level = _text(raw, "service_level")
        raise Invalid(f"field 'service_level' must be one of {sorted(SERVICE_LEVELS)}, got {level!r}")
    body.service_level = level
    _interval(raw, body, "received_at")
    body.has_fee = _flag(raw, "has_fee", required=False, default=False)
    body.digitized_on_receipt = _flag(raw, "digitized_on_receipt", required=False, default=False)
    body.reused_digitized_data = _flag(raw, "reused_digitized_data", required=False, default=False)
    body.citizen_data_used = _flag(raw, "citizen_data_used", required=False, default=False)


def _dossier_status(raw: dict, body) -> None:
    body.dossier_id = _text(raw, "dossier_id")
    body.status = _integer(raw, "status", DOSSIER_STATUSES)


def _dossier_paid(raw: dict, body) -> None:
    body.dossier_id = _text(raw, "dossier_id")
    body.online = _flag(raw, "online")


def _dossier_rated(raw: dict, body) -> None:
    body.dossier_id = _text(raw, "dossier_id")
    body.satisfied = _flag(raw, "satisfied")


def _dossier_id_only(raw: dict, body) -> None:
    body.dossier_id = _text(raw, "dossier_id")


def _dossier_result(raw: dict, body) -> None:
    body.dossier_id = _text(raw, "dossier_id")
    body.electronic = _flag(raw, "electronic")
    body.shared_for_reuse = _flag(raw, "shared_for_reuse", required=False, default=False)


def _petition_received(raw: dict, body) -> None:
    body.petition_id = _text(raw, "petition_id")
    _interval(raw, body, "received_at")


def _petition_id_only(raw: dict, body) -> None:
    body.petition_id = _text(raw, "petition_id")


def _petition_rated(raw: dict, body) -> None:
    body.petition_id = _text(raw, "petition_id")
    body.satisfied = _flag(raw, "satisfied")


def _publication_due(raw: dict, body) -> None:
    body.publication_id = _text(raw, "publication_id")
    body.procedure_code = _text(raw, "procedure_code")
    change = raw.get("change")
    if change.__class__ is not str or change not in PUBLICATION_CHANGES:
        change = _text(raw, "change")
        raise Invalid(f"field 'change' must be one of {sorted(PUBLICATION_CHANGES)}, got {change!r}")
    body.change = change
    _interval(raw, body, "decided_at")


def _publication_done(raw: dict, body) -> None:
    body.publication_id = _text(raw, "publication_id")


def _procedure_listed(raw: dict, body) -> None:
    body.procedure_id = _text(raw, "procedure_id")
    body.withdrawn = _flag(raw, "withdrawn", required=False)
    for name in PROCEDURE_FACTS:  # required unless the procedure is withdrawn
        setattr(body, name, _flag(raw, name, required=not body.withdrawn))


_BUILDERS: dict[str, Callable[[dict, Any], None]] = {
    "document.sent": _document_transfer,
    "document.received": _document_transfer,
    "document.signed": _document_signed,
    "document.status": _document_status,
    "dossier.received": _dossier_received,
    "dossier.status": _dossier_status,
    "dossier.paid": _dossier_paid,
    "dossier.rated": _dossier_rated,
    "dossier.apology": _dossier_id_only,
    "dossier.synced": _dossier_id_only,
    "dossier.result": _dossier_result,
    "petition.received": _petition_received,
    "petition.answered": _petition_id_only,
    "petition.rated": _petition_rated,
    "publication.due": _publication_due,
    "publication.done": _publication_done,
    "procedure.listed": _procedure_listed,
}
_BODY_BUILDERS = {event_type: (BODY_FIELD[event_type], build) for event_type, build in _BUILDERS.items()}


def to_event(raw: Any, registry: Registry, source: str, ingested_at_ms: int, latest_ms: int | None = None) -> Event:
    """Validates one JSON event; raises Invalid with a readable reason. latest_ms: the latest
    instant it may have happened at (default: the server's clock plus a day)."""
    if not isinstance(raw, dict):
        raise Invalid("an event must be a JSON object")
    event_type = raw.get("type")
    builder = _BODY_BUILDERS.get(event_type) if event_type.__class__ is str else None
    if builder is None:
        raise Invalid(f"unknown event type {event_type!r}; expected one of {', '.join(_BODY_BUILDERS)}")
    event_id = raw.get("event_id")
    if event_id.__class__ is not str or not _UUID.fullmatch(event_id):
        _require(raw, "event_id")
        raise Invalid(f"field 'event_id' must be a UUID, got {event_id!r}")
    latest_ms = latest_allowed_ms() if latest_ms is None else latest_ms
    occurred_at_ms = check_instant_ms(parse_instant_ms(_require(raw, "occurred_at"), "occurred_at"), "occurred_at",
                                      latest_ms)
    agency_code = _text(raw, "agency_code", max_chars=MAX_CODE_CHARS)
    agency = registry.get(agency_code)
    if agency is None:
        raise Invalid(f"unknown agency '{agency_code}'")
    if not agency.valid_at_ms(occurred_at_ms):
        occurred_day = datetime.fromtimestamp(occurred_at_ms / 1000, LOCAL_TZ).date()
        raise Invalid(f"agency '{agency_code}' was not in service on {occurred_day.isoformat()}")
    event = Event(event_id=event_id.lower(), occurred_at_ms=occurred_at_ms, agency_code=agency_code,
                  source=source, ingested_at_ms=ingested_at_ms)
    field, build = builder
    # Every body sets its non-empty id first, which marks the oneof as present.
    body = getattr(event, field)
    build(raw, body)
    if field in _RECEIPTS:
        check_instant_ms(body.received_at_ms, "received_at", latest_ms)
    elif field == "publication_due":
        check_instant_ms(body.decided_at_ms, "decided_at", latest_ms)
    elif field in _TRANSFERS:
        _check_parties(body, registry)
    return event


class _GiveUp(Exception):
    """Something in the batch needs the per-event path to word its reason."""


def _checked_text(value: str) -> str:
    if not value or value.isspace():
        raise _GiveUp
    return value


# The bus's JSON events as msgspec types. A null where the per-event path takes the
# default is allowed (`| None`); every other constraint is the per-event path's.
_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
_Code = Annotated[str, msgspec.Meta(max_length=MAX_CODE_CHARS)]


class _Typed(msgspec.Struct, tag_field="type", gc=False):
    event_id: str
    occurred_at: str
    agency_code: str


class _DocumentSent(_Typed, tag="document.sent"):
    document_id: _Text
    from_agency: _Code
    to_agencies: Annotated[list[_Code], msgspec.Meta(max_length=MAX_RECIPIENTS)]
    document_type: Union[_Text, None] = None
    promulgated_on: Union[str, None] = None
    due_date: Union[str, None] = None
    business_type: Union[Annotated[int, msgspec.Meta(ge=0, le=3)], None] = None
    classified: Union[bool, None] = None
    electronic: Union[bool, None] = None


class _DocumentReceived(_DocumentSent, tag="document.received"):
    pass


class _DocumentSigned(_Typed, tag="document.signed"):
    document_id: _Text
    personal_signature: bool
    agency_signature: bool


class _DocumentStatus(_Typed, tag="document.status"):
    document_id: _Text
    status_code: Union[str, int]


class _DossierReceived(_Typed, tag="dossier.received"):
    dossier_id: _Text
    procedure_code: _Text
    service_level: Literal["partial", "full_online"]
    received_at: str
    due_at: str
    channel: Union[Annotated[int, msgspec.Meta(ge=1, le=3)], None] = None
    has_fee: Union[bool, None] = None
    digitized_on_receipt: Union[bool, None] = None
    reused_digitized_data: Union[bool, None] = None
    citizen_data_used: Union[bool, None] = None


class _DossierStatus(_Typed, tag="dossier.status"):
    dossier_id: _Text
    status: Annotated[int, msgspec.Meta(ge=1, le=10)]


class _DossierPaid(_Typed, tag="dossier.paid"):
    dossier_id: _Text
    online: bool


class _DossierRated(_Typed, tag="dossier.rated"):
    dossier_id: _Text
    satisfied: bool


class _DossierApology(_Typed, tag="dossier.apology"):
    dossier_id: _Text


class _DossierSynced(_Typed, tag="dossier.synced"):
    dossier_id: _Text


class _DossierResult(_Typed, tag="dossier.result"):
    dossier_id: _Text
    electronic: bool
    shared_for_reuse: Union[bool, None] = None


class _PetitionReceived(_Typed, tag="petition.received"):
    petition_id: _Text
    received_at: str
    due_at: str


class _PetitionAnswered(_Typed, tag="petition.answered"):
    petition_id: _Text


class _PetitionRated(_Typed, tag="petition.rated"):
    petition_id: _Text
    satisfied: bool


class _PublicationDue(_Typed, tag="publication.due"):
    publication_id: _Text
    procedure_code: _Text
    change: Literal["new", "update"]
    decided_at: str
    due_at: str


class _PublicationDone(_Typed, tag="publication.done"):
    publication_id: _Text


class _ProcedureListed(_Typed, tag="procedure.listed"):
    procedure_id: _Text
    withdrawn: bool = False
    full_content: Union[bool, None] = None
    citizen_data_connected: Union[bool, None] = None
    certifies_copies: Union[bool, None] = None
    electronic_copy: Union[bool, None] = None


def _typed_document_transfer(typed, body) -> None:
    body.document_id = _checked_text(typed.document_id)
    body.from_agency = _checked_text(typed.from_agency)
    if not all(typed.to_agencies):
        raise _GiveUp
    body.to_agencies.extend(typed.to_agencies)
    if typed.document_type is not None:
        body.document_type = typed.document_type
    if typed.promulgated_on:
        date.fromisoformat(typed.promulgated_on)  # ValueError: given up
        body.promulgated_on = typed.promulgated_on
    if typed.due_date is not None:
        body.due_at_ms = parse_due_ms(typed.due_date, "due_date")
    body.business_type = typed.business_type or 0
    body.classified = bool(typed.classified)
    body.electronic = typed.electronic is not False


def _typed_document_signed(typed, body) -> None:
    body.document_id = _checked_text(typed.document_id)
    body.personal_signature = typed.personal_signature
    body.agency_signature = typed.agency_signature


def _typed_document_status(typed, body) -> None:
    body.document_id = _checked_text(typed.document_id)
    code = typed.status_code
    if code.__class__ is int:
        code = f"{code:02d}"
    if code not in DOCUMENT_STATUS_CODES:
        raise _GiveUp
    body.status_code = code


def _typed_interval(start: str, due: str, start_name: str) -> tuple[int, int]:
    """A start and a due instant, the due one not before the start (else the per-event path says why)."""
    start_ms, due_at_ms = parse_instant_ms(start, start_name), parse_instant_ms(due, "due_at")
    if due_at_ms < start_ms:
        raise _GiveUp
    return start_ms, due_at_ms


def _typed_dossier_received(typed, body) -> None:
    body.dossier_id = _checked_text(typed.dossier_id)
    body.procedure_code = _checked_text(typed.procedure_code)
    body.channel = typed.channel or 1
    body.service_level = typed.service_level
    body.received_at_ms, body.due_at_ms = _typed_interval(typed.received_at, typed.due_at, "received_at")
    body.has_fee = bool(typed.has_fee)
    body.digitized_on_receipt = bool(typed.digitized_on_receipt)
    body.reused_digitized_data = bool(typed.reused_digitized_data)
    body.citizen_data_used = bool(typed.citizen_data_used)


def _typed_dossier_status(typed, body) -> None:
    body.dossier_id = _checked_text(typed.dossier_id)
    body.status = typed.status


def _typed_dossier_paid(typed, body) -> None:
    body.dossier_id = _checked_text(typed.dossier_id)
    body.online = typed.online


def _typed_dossier_rated(typed, body) -> None:
    body.dossier_id = _checked_text(typed.dossier_id)
    body.satisfied = typed.satisfied


def _typed_dossier_id_only(typed, body) -> None:
    body.dossier_id = _checked_text(typed.dossier_id)


def _typed_dossier_result(typed, body) -> None:
    body.dossier_id = _checked_text(typed.dossier_id)
    body.electronic = typed.electronic
    body.shared_for_reuse = bool(typed.shared_for_reuse)


def _typed_petition_received(typed, body) -> None:
    body.petition_id = _checked_text(typed.petition_id)
    body.received_at_ms, body.due_at_ms = _typed_interval(typed.received_at, typed.due_at, "received_at")


def _typed_petition_id_only(typed, body) -> None:
    body.petition_id = _checked_text(typed.petition_id)


def _typed_petition_rated(typed, body) -> None:
    body.petition_id = _checked_text(typed.petition_id)
    body.satisfied = typed.satisfied


def _typed_publication_due(typed, body) -> None:
    body.publication_id = _checked_text(typed.publication_id)
    body.procedure_code = _checked_text(typed.procedure_code)
    body.change = typed.change
    body.decided_at_ms, body.due_at_ms = _typed_interval(typed.decided_at, typed.due_at, "decided_at")


def _typed_publication_done(typed, body) -> None:
    body.publication_id = _checked_text(typed.publication_id)


def _typed_procedure_listed(typed, body) -> None:
    body.procedure_id = _checked_text(typed.procedure_id)
    body.withdrawn = typed.withdrawn
    for name in PROCEDURE_FACTS:
        value = getattr(typed, name)
        if value is None and not typed.withdrawn:
            raise _GiveUp  # the per-event path words the missing field
        setattr(body, name, bool(value))


# Each type's struct -> the oneof field of its body and its builder; the type's name is the
# struct's tag.
_TYPED_BUILDERS = {typed: (BODY_FIELD[typed.__struct_config__.tag], build) for typed, build in (
    (_DocumentSent, _typed_document_transfer),
    (_DocumentReceived, _typed_document_transfer),
    (_DocumentSigned, _typed_document_signed),
    (_DocumentStatus, _typed_document_status),
    (_DossierReceived, _typed_dossier_received),
    (_DossierStatus, _typed_dossier_status),
    (_DossierPaid, _typed_dossier_paid),
    (_DossierRated, _typed_dossier_rated),
    (_DossierApology, _typed_dossier_id_only),
    (_DossierSynced, _typed_dossier_id_only),
    (_DossierResult, _typed_dossier_result),
    (_PetitionReceived, _typed_petition_received),
    (_PetitionAnswered, _typed_petition_id_only),
    (_PetitionRated, _typed_petition_rated),
    (_PublicationDue, _typed_publication_due),
    (_PublicationDone, _typed_publication_done),
    (_ProcedureListed, _typed_procedure_listed),
)}
_TypedEvent = Union[tuple(_TYPED_BUILDERS)]


class _Batch(msgspec.Struct, gc=False):
    events: list[_TypedEvent]


_batch_decoder = msgspec.json.Decoder(_Batch)


def valid_batch(body: bytes, registry: Registry, source: str, ingested_at_ms: int,
                latest_ms: int | None = None) -> list[Event] | None:
    """Every event of a batch body ({"events": [...]}) as to_event would give it, when every
    one of them is valid; None when the body or any event is not (then the per-event path
    finds which, and why)."""
    latest_ms = latest_allowed_ms() if latest_ms is None else latest_ms
    try:
        typed_events = _batch_decoder.decode(body).events
    except (msgspec.MsgspecError, RecursionError):  # nesting deeper than msgspec follows: the slow path says why
        return None
    if not typed_events:
        return []
    # One match and one lower() for the batch's ids: a call each cost ~0.4 us an event.
    ids = "\n".join([typed.event_id for typed in typed_events])
    if _UUID_LINES.fullmatch(ids) is None:
        return None
    ids = ids.lower().split("\n")
    if len(ids) != len(typed_events):  # a line break inside an id
        return None
    get_agency, builders = registry.get, _TYPED_BUILDERS
    # The events are built inside one EventBatch, so that they share its upb arena: an Event
    # of its own is an arena of its own, and protobuf's allocator calls malloc_trim() every
    # 10,000 arenas freed, which returned the heap's free pages to the kernel only for the
    # next requests to fault them back in (~20,000 page faults a second in one worker).
    new_event = EventBatch().events.add
    events = []
    try:
        for typed, event_id in zip(typed_events, ids):
            occurred_at_ms = parse_instant_ms(typed.occurred_at, "occurred_at")
            agency = get_agency(typed.agency_code)
            if agency is None or not agency.valid_at_ms(occurred_at_ms) or occurred_at_ms > latest_ms:
                return None
            event = new_event(event_id=event_id, occurred_at_ms=occurred_at_ms, agency_code=typed.agency_code,
                              source=source, ingested_at_ms=ingested_at_ms)
            field, build = builders[typed.__class__]
            build(typed, getattr(event, field))
            if field in _RECEIPTS and getattr(event, field).received_at_ms > latest_ms:
                return None
            if field == "publication_due" and event.publication_due.decided_at_ms > latest_ms:
                return None
            if field in _TRANSFERS:
                transfer = getattr(event, field)
                if transfer.from_agency not in registry or not all(code in registry for code in transfer.to_agencies):
                    return None
            events.append(event)
    except (_GiveUp, ValueError):  # Invalid is a ValueError, as is a bad date
        return None
    return events


def _stored_text(value: str, name: str, max_chars: int = MAX_TEXT_CHARS) -> None:
    if not value or value.isspace():
        raise Invalid(f"field '{name}' must not be empty")
    if len(value) > max_chars:
        raise Invalid(f"field '{name}' is longer than {max_chars} characters")


def _check_transfer(body) -> None:
    _stored_text(body.document_id, "document_id")
    _stored_text(body.from_agency, "from_agency", MAX_CODE_CHARS)
    recipients = body.to_agencies
    if len(recipients) > MAX_RECIPIENTS or not all(code and len(code) <= MAX_CODE_CHARS for code in recipients):
        raise Invalid(f"field 'to_agencies' holds at most {MAX_RECIPIENTS} codes of at most {MAX_CODE_CHARS} characters")
    if len(body.document_type) > MAX_TEXT_CHARS:
        raise Invalid(f"field 'document_type' is longer than {MAX_TEXT_CHARS} characters")
    if body.promulgated_on:
        try:
            date.fromisoformat(body.promulgated_on)
        except ValueError:
            raise Invalid(f"field 'promulgated_on' is not a date: {body.promulgated_on[:40]!r}") from None
    if body.HasField("due_at_ms"):
        check_instant_ms(body.due_at_ms, "due_date")
    if body.business_type not in BUSINESS_TYPES:
        raise Invalid(f"field 'business_type' must be one of {sorted(BUSINESS_TYPES)}, got {body.business_type}")


def _check_signed(body) -> None:
    _stored_text(body.document_id, "document_id")


def _check_document_status(body) -> None:
    _stored_text(body.document_id, "document_id")
    if body.status_code not in DOCUMENT_STATUS_CODES:
        raise Invalid(f"field 'status_code' must be one of {sorted(DOCUMENT_STATUS_CODES)}, got {body.status_code[:8]!r}")


def _check_interval(start_ms: int, due_at_ms: int, start_name: str, latest_ms: int) -> None:
    """A stored start (not after latest_ms) and due instant, the due one not before the start."""
    check_instant_ms(start_ms, start_name, latest_ms)
    check_instant_ms(due_at_ms, "due_at")
    if due_at_ms < start_ms:
        raise Invalid(f"field 'due_at' is before '{start_name}'")


def _check_dossier_received(body, latest_ms: int) -> None:
    _stored_text(body.dossier_id, "dossier_id")
    _stored_text(body.procedure_code, "procedure_code")
    if body.channel not in DOSSIER_CHANNELS:
        raise Invalid(f"field 'channel' must be one of {sorted(DOSSIER_CHANNELS)}, got {body.channel}")
    if body.service_level not in SERVICE_LEVELS:
        raise Invalid(f"field 'service_level' must be one of {sorted(SERVICE_LEVELS)}, got {body.service_level[:20]!r}")
    _check_interval(body.received_at_ms, body.due_at_ms, "received_at", latest_ms)


def _check_petition_received(body, latest_ms: int) -> None:
    _stored_text(body.petition_id, "petition_id")
    _check_interval(body.received_at_ms, body.due_at_ms, "received_at", latest_ms)


def _check_publication_due(body, latest_ms: int) -> None:
    _stored_text(body.publication_id, "publication_id")
    _stored_text(body.procedure_code, "procedure_code")
    if body.change not in PUBLICATION_CHANGES:
        raise Invalid(f"field 'change' must be one of {sorted(PUBLICATION_CHANGES)}, got {body.change[:20]!r}")
    _check_interval(body.decided_at_ms, body.due_at_ms, "decided_at", latest_ms)


def _check_publication_done(body) -> None:
    _stored_text(body.publication_id, "publication_id")


def _check_petition(body) -> None:
    _stored_text(body.petition_id, "petition_id")


def _check_procedure_listed(body) -> None:
    _stored_text(body.procedure_id, "procedure_id")


def _check_dossier_status(body) -> None:
    _stored_text(body.dossier_id, "dossier_id")
    if body.status not in DOSSIER_STATUSES:
        raise Invalid(f"field 'status' must be one of {sorted(DOSSIER_STATUSES)}, got {body.status}")


def _check_dossier(body) -> None:
    _stored_text(body.dossier_id, "dossier_id")


_BODY_CHECKS: dict[str, Callable] = {
    "document_sent": _check_transfer, "document_received": _check_transfer, "document_signed": _check_signed,
    "document_status": _check_document_status, "dossier_status": _check_dossier_status,
    "dossier_paid": _check_dossier, "dossier_rated": _check_dossier, "dossier_apology": _check_dossier,
    "dossier_synced": _check_dossier, "dossier_result": _check_dossier,
    "petition_answered": _check_petition, "petition_rated": _check_petition,
    "publication_done": _check_publication_done, "procedure_listed": _check_procedure_listed,
}
# The bodies whose own instant (received_at, decided_at) may not be in the future either.
_RECEIPT_CHECKS = {"dossier_received": _check_dossier_received, "petition_received": _check_petition_received,
                   "publication_due": _check_publication_due}


def check_event(event: Event, registry: Registry, latest_ms: int) -> None:
    """The rules to_event holds a bus event to, for an Event as it comes back from Kafka
    (which any client of the broker can write to): raises Invalid with the reason. An event
    that ingest built passes; the aggregator sends any other to the dead letters."""
    event_id = event.event_id
    if not _UUID.fullmatch(event_id) or event_id != event_id.lower():
        raise Invalid(f"field 'event_id' must be a lower-case UUID, got {event_id[:40]!r}")
    check_instant_ms(event.occurred_at_ms, "occurred_at", latest_ms)
    agency_code = event.agency_code
    agency = registry.get(agency_code) if len(agency_code) <= MAX_CODE_CHARS else None
    if agency is None:
        raise Invalid(f"unknown agency '{agency_code[:MAX_CODE_CHARS]}'")
    if not agency.valid_at_ms(event.occurred_at_ms):
        raise Invalid(f"agency '{agency_code}' was not in service when the event occurred")
    _stored_text(event.source, "source")
    field = event.WhichOneof("body")
    if field is None:
        raise Invalid("the event has no body of a known type")
    if field in _RECEIPT_CHECKS:
        _RECEIPT_CHECKS[field](getattr(event, field), latest_ms)
    else:
        _BODY_CHECKS[field](getattr(event, field))
        if field in _TRANSFERS:
            _check_parties(getattr(event, field), registry)


class EventRules:
    """check_event with its registry and clock skew, for the aggregator (the composition root
    hands it in): checker() binds the latest allowed instant once per batch."""

    def __init__(self, registry: Registry, max_future_ms: int = DEFAULT_MAX_FUTURE_MS):
        self.registry = registry
        self.max_future_ms = max_future_ms

    def checker(self) -> Callable[[Event], None]:
        registry, latest_ms = self.registry, latest_allowed_ms(self.max_future_ms)
        return lambda event: check_event(event, registry, latest_ms)

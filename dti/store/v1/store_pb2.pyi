from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hello(_message.Message):
    __slots__ = ("fold_index",)
    FOLD_INDEX_FIELD_NUMBER: _ClassVar[int]
    fold_index: int
    def __init__(self, fold_index: _Optional[int] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("integers", "texts", "blobs", "reals", "integer_lists")
    INTEGERS_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    REALS_FIELD_NUMBER: _ClassVar[int]
    INTEGER_LISTS_FIELD_NUMBER: _ClassVar[int]
    integers: _containers.RepeatedScalarFieldContainer[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    blobs: _containers.RepeatedScalarFieldContainer[bytes]
    reals: _containers.RepeatedScalarFieldContainer[float]
    integer_lists: _containers.RepeatedCompositeFieldContainer[IntegerList]
    def __init__(self, integers: _Optional[_Iterable[int]] = ..., texts: _Optional[_Iterable[str]] = ..., blobs: _Optional[_Iterable[bytes]] = ..., reals: _Optional[_Iterable[float]] = ..., integer_lists: _Optional[_Iterable[_Union[IntegerList, _Mapping]]] = ...) -> None: ...

class IntegerList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class Rows(_message.Message):
    __slots__ = ("count", "columns")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    count: int
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    def __init__(self, count: _Optional[int] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ...) -> None: ...

class Keys(_message.Message):
    __slots__ = ("kinds", "ids", "agencies")
    KINDS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    ids: _containers.RepeatedScalarFieldContainer[str]
    agencies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kinds: _Optional[_Iterable[str]] = ..., ids: _Optional[_Iterable[str]] = ..., agencies: _Optional[_Iterable[str]] = ...) -> None: ...

class DayPairs(_message.Message):
    __slots__ = ("agency_codes", "days")
    AGENCY_CODES_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    agency_codes: _containers.RepeatedScalarFieldContainer[str]
    days: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, agency_codes: _Optional[_Iterable[str]] = ..., days: _Optional[_Iterable[int]] = ...) -> None: ...

class Agencies(_message.Message):
    __slots__ = ("codes",)
    CODES_FIELD_NUMBER: _ClassVar[int]
    codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, codes: _Optional[_Iterable[str]] = ...) -> None: ...

class LoadRequest(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: Keys
    def __init__(self, keys: _Optional[_Union[Keys, _Mapping]] = ...) -> None: ...

class StoredIdsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DocumentDayPairsRequest(_message.Message):
    __slots__ = ("document_ids",)
    DOCUMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    document_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, document_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WriteRequest(_message.Message):
    __slots__ = ("rows", "day_pairs", "changed_known", "changed")
    class RowsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Rows
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Rows, _Mapping]] = ...) -> None: ...
    class ChangedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Agencies
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Agencies, _Mapping]] = ...) -> None: ...
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DAY_PAIRS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_KNOWN_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.MessageMap[str, Rows]
    day_pairs: DayPairs
    changed_known: bool
    changed: _containers.MessageMap[str, Agencies]
    def __init__(self, rows: _Optional[_Mapping[str, Rows]] = ..., day_pairs: _Optional[_Union[DayPairs, _Mapping]] = ..., changed_known: _Optional[bool] = ..., changed: _Optional[_Mapping[str, Agencies]] = ...) -> None: ...

class WriteActivityRequest(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: Rows
    def __init__(self, rows: _Optional[_Union[Rows, _Mapping]] = ...) -> None: ...

class Request(_message.Message):
    __slots__ = ("load", "stored_ids", "document_day_pairs", "write", "write_activity")
    LOAD_FIELD_NUMBER: _ClassVar[int]
    STORED_IDS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_DAY_PAIRS_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    WRITE_ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    load: LoadRequest
    stored_ids: StoredIdsRequest
    document_day_pairs: DocumentDayPairsRequest
    write: WriteRequest
    write_activity: WriteActivityRequest
    def __init__(self, load: _Optional[_Union[LoadRequest, _Mapping]] = ..., stored_ids: _Optional[_Union[StoredIdsRequest, _Mapping]] = ..., document_day_pairs: _Optional[_Union[DocumentDayPairsRequest, _Mapping]] = ..., write: _Optional[_Union[WriteRequest, _Mapping]] = ..., write_activity: _Optional[_Union[WriteActivityRequest, _Mapping]] = ...) -> None: ...

class Reply(_message.Message):
    __slots__ = ("status", "message", "keys", "events", "day_pairs")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OK: _ClassVar[Reply.Status]
        MORE: _ClassVar[Reply.Status]
        REJECTED: _ClassVar[Reply.Status]
        FAILED: _ClassVar[Reply.Status]
    OK: Reply.Status
    MORE: Reply.Status
    REJECTED: Reply.Status
    FAILED: Reply.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DAY_PAIRS_FIELD_NUMBER: _ClassVar[int]
    status: Reply.Status
    message: str
    keys: Keys
    events: _containers.RepeatedScalarFieldContainer[bytes]
    day_pairs: DayPairs
    def __init__(self, status: _Optional[_Union[Reply.Status, str]] = ..., message: _Optional[str] = ..., keys: _Optional[_Union[Keys, _Mapping]] = ..., events: _Optional[_Iterable[bytes]] = ..., day_pairs: _Optional[_Union[DayPairs, _Mapping]] = ...) -> None: ...

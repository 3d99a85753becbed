from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DocumentTransfer(_message.Message):
    __slots__ = ("document_id", "from_agency", "to_agencies", "document_type", "promulgated_on", "due_at_ms", "business_type", "classified", "electronic")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_AGENCY_FIELD_NUMBER: _ClassVar[int]
    TO_AGENCIES_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PROMULGATED_ON_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIED_FIELD_NUMBER: _ClassVar[int]
    ELECTRONIC_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    from_agency: str
    to_agencies: _containers.RepeatedScalarFieldContainer[str]
    document_type: str
    promulgated_on: str
    due_at_ms: int
    business_type: int
    classified: bool
    electronic: bool
    def __init__(self, document_id: _Optional[str] = ..., from_agency: _Optional[str] = ..., to_agencies: _Optional[_Iterable[str]] = ..., document_type: _Optional[str] = ..., promulgated_on: _Optional[str] = ..., due_at_ms: _Optional[int] = ..., business_type: _Optional[int] = ..., classified: _Optional[bool] = ..., electronic: _Optional[bool] = ...) -> None: ...

class DocumentSigned(_message.Message):
    __slots__ = ("document_id", "personal_signature", "agency_signature")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    personal_signature: bool
    agency_signature: bool
    def __init__(self, document_id: _Optional[str] = ..., personal_signature: _Optional[bool] = ..., agency_signature: _Optional[bool] = ...) -> None: ...

class DocumentStatus(_message.Message):
    __slots__ = ("document_id", "status_code")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    status_code: str
    def __init__(self, document_id: _Optional[str] = ..., status_code: _Optional[str] = ...) -> None: ...

class DossierReceived(_message.Message):
    __slots__ = ("dossier_id", "procedure_code", "channel", "service_level", "received_at_ms", "due_at_ms", "has_fee", "digitized_on_receipt", "reused_digitized_data", "citizen_data_used")
    DOSSIER_ID_FIELD_NUMBER: _ClassVar[int]
    PROCEDURE_CODE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SERVICE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    HAS_FEE_FIELD_NUMBER: _ClassVar[int]
    DIGITIZED_ON_RECEIPT_FIELD_NUMBER: _ClassVar[int]
    REUSED_DIGITIZED_DATA_FIELD_NUMBER: _ClassVar[int]
    CITIZEN_DATA_USED_FIELD_NUMBER: _ClassVar[int]
    dossier_id: str
    procedure_code: str
    channel: int
    service_level: str
    received_at_ms: int
    due_at_ms: int
    has_fee: bool
    digitized_on_receipt: bool
    reused_digitized_data: bool
    citizen_data_used: bool
    def __init__(self, dossier_id: _Optional[str] = ..., procedure_code: _Optional[str] = ..., channel: _Optional[int] = ..., service_level: _Optional[str] = ..., received_at_ms: _Optional[int] = ..., due_at_ms: _Optional[int] = ..., has_fee: _Optional[bool] = ..., digitized_on_receipt: _Optional[bool] = ..., reused_digitized_data: _Optional[bool] = ..., citizen_data_used: _Optional[bool] = ...) -> None: ...

class DossierStatus(_message.Message):
    __slots__ = ("dossier_id", "status")
    DOSSIER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    dossier_id: str
    status: int
    def __init__(self, dossier_id: _Optional[str] = ..., status: _Optional[int] = ...) -> None: ...

class DossierPaid(_message.Message):
    __slots__ = ("dossier_id", "online")
    DOSSIER_ID_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    dossier_id: str
    online: bool
    def __init__(self, dossier_id: _Optional[str] = ..., online: _Optional[bool] = ...) -> None: ...

class DossierRated(_message.Message):
    __slots__ = ("dossier_id", "satisfied")
    DOSSIER_ID_FIELD_NUMBER: _ClassVar[int]
    SATISFIED_FIELD_NUMBER: _ClassVar[int]
    dossier_id: str
    satisfied: bool
    def __init__(self, dossier_id: _Optional[str] = ..., satisfied: _Optional[bool] = ...) -> None: ...

class DossierApology(_message.Message):
    __slots__ = ("dossier_id",)
    DOSSIER_ID_FIELD_NUMBER: _ClassVar[int]
    dossier_id: str
    def __init__(self, dossier_id: _Optional[str] = ...) -> None: ...

class DossierSynced(_message.Message):
    __slots__ = ("dossier_id",)
    DOSSIER_ID_FIELD_NUMBER: _ClassVar[int]
    dossier_id: str
    def __init__(self, dossier_id: _Optional[str] = ...) -> None: ...

class DossierResult(_message.Message):
    __slots__ = ("dossier_id", "electronic", "shared_for_reuse")
    DOSSIER_ID_FIELD_NUMBER: _ClassVar[int]
    ELECTRONIC_FIELD_NUMBER: _ClassVar[int]
    SHARED_FOR_REUSE_FIELD_NUMBER: _ClassVar[int]
    dossier_id: str
    electronic: bool
    shared_for_reuse: bool
    def __init__(self, dossier_id: _Optional[str] = ..., electronic: _Optional[bool] = ..., shared_for_reuse: _Optional[bool] = ...) -> None: ...

class PetitionReceived(_message.Message):
    __slots__ = ("petition_id", "received_at_ms", "due_at_ms")
    PETITION_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    petition_id: str
    received_at_ms: int
    due_at_ms: int
    def __init__(self, petition_id: _Optional[str] = ..., received_at_ms: _Optional[int] = ..., due_at_ms: _Optional[int] = ...) -> None: ...

class PetitionAnswered(_message.Message):
    __slots__ = ("petition_id",)
    PETITION_ID_FIELD_NUMBER: _ClassVar[int]
    petition_id: str
    def __init__(self, petition_id: _Optional[str] = ...) -> None: ...

class PetitionRated(_message.Message):
    __slots__ = ("petition_id", "satisfied")
    PETITION_ID_FIELD_NUMBER: _ClassVar[int]
    SATISFIED_FIELD_NUMBER: _ClassVar[int]
    petition_id: str
    satisfied: bool
    def __init__(self, petition_id: _Optional[str] = ..., satisfied: _Optional[bool] = ...) -> None: ...

class PublicationDue(_message.Message):
    __slots__ = ("publication_id", "procedure_code", "change", "decided_at_ms", "due_at_ms")
    PUBLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROCEDURE_CODE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    publication_id: str
    procedure_code: str
    change: str
    decided_at_ms: int
    due_at_ms: int
    def __init__(self, publication_id: _Optional[str] = ..., procedure_code: _Optional[str] = ..., change: _Optional[str] = ..., decided_at_ms: _Optional[int] = ..., due_at_ms: _Optional[int] = ...) -> None: ...

class PublicationDone(_message.Message):
    __slots__ = ("publication_id",)
    PUBLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    publication_id: str
    def __init__(self, publication_id: _Optional[str] = ...) -> None: ...

class ProcedureListed(_message.Message):
    __slots__ = ("procedure_id", "withdrawn", "full_content", "citizen_data_connected", "certifies_copies", "electronic_copy")
    PROCEDURE_ID_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    FULL_CONTENT_FIELD_NUMBER: _ClassVar[int]
    CITIZEN_DATA_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    CERTIFIES_COPIES_FIELD_NUMBER: _ClassVar[int]
    ELECTRONIC_COPY_FIELD_NUMBER: _ClassVar[int]
    procedure_id: str
    withdrawn: bool
    full_content: bool
    citizen_data_connected: bool
    certifies_copies: bool
    electronic_copy: bool
    def __init__(self, procedure_id: _Optional[str] = ..., withdrawn: _Optional[bool] = ..., full_content: _Optional[bool] = ..., citizen_data_connected: _Optional[bool] = ..., certifies_copies: _Optional[bool] = ..., electronic_copy: _Optional[bool] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "occurred_at_ms", "agency_code", "source", "ingested_at_ms", "document_sent", "document_received", "document_signed", "document_status", "dossier_received", "dossier_status", "dossier_paid", "dossier_rated", "dossier_apology", "dossier_synced", "dossier_result", "petition_received", "petition_answered", "petition_rated", "publication_due", "publication_done", "procedure_listed")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SENT_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SIGNED_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    DOSSIER_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    DOSSIER_STATUS_FIELD_NUMBER: _ClassVar[int]
    DOSSIER_PAID_FIELD_NUMBER: _ClassVar[int]
    DOSSIER_RATED_FIELD_NUMBER: _ClassVar[int]
    DOSSIER_APOLOGY_FIELD_NUMBER: _ClassVar[int]
    DOSSIER_SYNCED_FIELD_NUMBER: _ClassVar[int]
    DOSSIER_RESULT_FIELD_NUMBER: _ClassVar[int]
    PETITION_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    PETITION_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    PETITION_RATED_FIELD_NUMBER: _ClassVar[int]
    PUBLICATION_DUE_FIELD_NUMBER: _ClassVar[int]
    PUBLICATION_DONE_FIELD_NUMBER: _ClassVar[int]
    PROCEDURE_LISTED_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at_ms: int
    agency_code: str
    source: str
    ingested_at_ms: int
    document_sent: DocumentTransfer
    document_received: DocumentTransfer
    document_signed: DocumentSigned
    document_status: DocumentStatus
    dossier_received: DossierReceived
    dossier_status: DossierStatus
    dossier_paid: DossierPaid
    dossier_rated: DossierRated
    dossier_apology: DossierApology
    dossier_synced: DossierSynced
    dossier_result: DossierResult
    petition_received: PetitionReceived
    petition_answered: PetitionAnswered
    petition_rated: PetitionRated
    publication_due: PublicationDue
    publication_done: PublicationDone
    procedure_listed: ProcedureListed
    def __init__(self, event_id: _Optional[str] = ..., occurred_at_ms: _Optional[int] = ..., agency_code: _Optional[str] = ..., source: _Optional[str] = ..., ingested_at_ms: _Optional[int] = ..., document_sent: _Optional[_Union[DocumentTransfer, _Mapping]] = ..., document_received: _Optional[_Union[DocumentTransfer, _Mapping]] = ..., document_signed: _Optional[_Union[DocumentSigned, _Mapping]] = ..., document_status: _Optional[_Union[DocumentStatus, _Mapping]] = ..., dossier_received: _Optional[_Union[DossierReceived, _Mapping]] = ..., dossier_status: _Optional[_Union[DossierStatus, _Mapping]] = ..., dossier_paid: _Optional[_Union[DossierPaid, _Mapping]] = ..., dossier_rated: _Optional[_Union[DossierRated, _Mapping]] = ..., dossier_apology: _Optional[_Union[DossierApology, _Mapping]] = ..., dossier_synced: _Optional[_Union[DossierSynced, _Mapping]] = ..., dossier_result: _Optional[_Union[DossierResult, _Mapping]] = ..., petition_received: _Optional[_Union[PetitionReceived, _Mapping]] = ..., petition_answered: _Optional[_Union[PetitionAnswered, _Mapping]] = ..., petition_rated: _Optional[_Union[PetitionRated, _Mapping]] = ..., publication_due: _Optional[_Union[PublicationDue, _Mapping]] = ..., publication_done: _Optional[_Union[PublicationDone, _Mapping]] = ..., procedure_listed: _Optional[_Union[ProcedureListed, _Mapping]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

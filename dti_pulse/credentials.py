"""Bearer tokens, one way for every entrypoint (ingest's HTTP, ranking's gRPC, the console)."""
from __future__ import annotations

import hmac
from typing import Mapping


def bearer_credential(header: str | bytes | None) -> str:
    """The credential of an `Authorization: Bearer <token>` value; "" for anything else."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    scheme, _, credential = (header or "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def caller_of(tokens: Mapping[str, str], presented: str) -> str | None:
    """The name a token was issued to, or None. Every known token is compared, in constant
    time, with no early exit: the time taken says nothing of which token came close."""
    if not presented:
        return None
    found = None
    candidate = presented.encode()
    for token, name in tokens.items():
        if hmac.compare_digest(token.encode(), candidate):
            found = name
    return found

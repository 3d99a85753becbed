"""Who may call RankingService: a bearer token in the `authorization` metadata, one of
DTI_GRPC_TOKENS, and what it may see: a caller with a scope (DTI_GRPC_TOKEN_SCOPES) is
answered only about its agencies and cohorts. Health checking and reflection stay open
(probes, grpcurl discovery)."""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import grpc

from dti_pulse.credentials import bearer_credential, caller_of
from dti_pulse.scopes import Scope

log = logging.getLogger(__name__)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call of the protected services without a known token: UNAUTHENTICATED,
    before the handler runs."""

    def __init__(self, tokens: Mapping[str, str], protected_services: tuple[str, ...],
                 scopes: Mapping[str, Sequence[str]] | None = None):
        if not tokens:
            raise ValueError("RankingService needs at least one token (DTI_GRPC_TOKENS)")
        self.tokens = dict(tokens)
        self.prefixes = tuple(f"/{service}/" for service in protected_services)
        self.scopes = {caller: Scope(patterns) for caller, patterns in (scopes or {}).items()}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(self.prefixes):
            return handler
        presented = next((bearer_credential(value) for key, value in handler_call_details.invocation_metadata or ()
                          if key == "authorization"), "")
        caller = caller_of(self.tokens, presented) if presented else None
        if caller is not None:
            scope = self.scopes.get(caller)
            return handler if scope is None else _scoped(handler, scope, caller)
        reason = "a bearer token is required" if not presented else "the bearer token is not valid"
        log.warning("refused %s: %s", handler_call_details.method, reason)
        return _refusal(handler, reason)


def _refusal(handler, reason: str):
    """The handler's kind, refusing every call as unauthenticated."""
    return _guarded(handler, lambda request: (grpc.StatusCode.UNAUTHENTICATED, reason))


def refusal_for(scope: Scope, caller: str, request) -> str | None:
    """Why a scoped caller may not have this answer; None when it may. An answer about one
    agency needs the agency in scope, a ranking its cohort; one for the whole province
    (activity without an agency) needs an unscoped token."""
    fields = request.DESCRIPTOR.fields_by_name
    if "agency_code" in fields:
        code = request.agency_code
        if not code:
            return f"caller '{caller}' sees some agencies only: name one (agency_code)"
        if not scope.allows_agency(code):
            return f"caller '{caller}' may not see agency '{code}'"
    if "cohort" in fields and not scope.allows_cohort(request.cohort):
        return f"caller '{caller}' may not see the ranking of cohort '{request.cohort}'"
    return None


def _scoped(handler, scope: Scope, caller: str):
    """The handler, answering PERMISSION_DENIED to a request outside the caller's scope."""
    def check(request):
        reason = refusal_for(scope, caller, request)
        return (grpc.StatusCode.PERMISSION_DENIED, reason) if reason else None

    return _guarded(handler, check)


def _guarded(handler, check):
    """A handler of the same kind (unary or server-streaming) that first asks check(request)
    and aborts with the (code, reason) it gives; None lets the call through to handler."""
    if handler.response_streaming:
        async def stream(request, context):
            refused = check(request)
            if refused:
                await context.abort(*refused)
            async for message in handler.unary_stream(request, context):
                yield message

        return grpc.unary_stream_rpc_method_handler(stream, request_deserializer=handler.request_deserializer,
                                                    response_serializer=handler.response_serializer)

    async def unary(request, context):
        refused = check(request)
        if refused:
            await context.abort(*refused)
        return await handler.unary_unary(request, context)

    return grpc.unary_unary_rpc_method_handler(unary, request_deserializer=handler.request_deserializer,
                                               response_serializer=handler.response_serializer)

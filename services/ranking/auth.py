"""Who may call RankingService: a bearer token in the `authorization` metadata, one of
DTI_GRPC_TOKENS. Health checking and reflection stay open (probes, grpcurl discovery)."""
from __future__ import annotations

import logging
from typing import Mapping

import grpc

from dti_pulse.credentials import bearer_credential, caller_of

log = logging.getLogger(__name__)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call of the protected services without a known token: UNAUTHENTICATED,
    before the handler runs."""

    def __init__(self, tokens: Mapping[str, str], protected_services: tuple[str, ...]):
        if not tokens:
            raise ValueError("RankingService needs at least one token (DTI_GRPC_TOKENS)")
        self.tokens = dict(tokens)
        self.prefixes = tuple(f"/{service}/" for service in protected_services)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(self.prefixes):
            return handler
        presented = next((bearer_credential(value) for key, value in handler_call_details.invocation_metadata or ()
                          if key == "authorization"), "")
        if presented and caller_of(self.tokens, presented) is not None:
            return handler
        reason = "a bearer token is required" if not presented else "the bearer token is not valid"
        log.warning("refused %s: %s", handler_call_details.method, reason)
        return _refusal(handler, reason)


def _refusal(handler, reason: str):
    async def refuse_unary(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    async def refuse_stream(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)
        yield  # an async generator, as a streaming handler is

    kinds = {(False, False): (grpc.unary_unary_rpc_method_handler, refuse_unary),
             (False, True): (grpc.unary_stream_rpc_method_handler, refuse_stream)}
    make, refuse = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(refuse, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)

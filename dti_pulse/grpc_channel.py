"""Channels to the ranking service that present a bearer token on every call, plain or TLS,
and the TLS credentials of both ends."""
from __future__ import annotations

import collections
from pathlib import Path

import grpc

_Details = collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                               "compression"))


def _with_token(details, metadata: tuple):
    return _Details(details.method, details.timeout, (*(details.metadata or ()), *metadata), details.credentials,
                    getattr(details, "wait_for_ready", None), getattr(details, "compression", None))


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str):
        self.metadata = (("authorization", f"Bearer {token}"),)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(_with_token(details, self.metadata), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(_with_token(details, self.metadata), request)


def _with_bearer(details, metadata: tuple):
    return details._replace(metadata=grpc.aio.Metadata(*(details.metadata or ()), *metadata))


# One class per kind: grpc.aio files an interceptor under the first kind it is an instance of.
class _AsyncBearerUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, metadata: tuple):
        self.metadata = metadata

    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(_with_bearer(details, self.metadata), request)


class _AsyncBearerStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, metadata: tuple):
        self.metadata = metadata

    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(_with_bearer(details, self.metadata), request)


def ranking_channel(address: str, token: str, tls: grpc.ChannelCredentials | None = None,
                    options=None) -> grpc.Channel:
    channel = (grpc.secure_channel(address, tls, options=options) if tls
               else grpc.insecure_channel(address, options=options))
    return grpc.intercept_channel(channel, _Bearer(token)) if token else channel


def async_ranking_channel(address: str, token: str, tls: grpc.ChannelCredentials | None = None,
                          options=None) -> grpc.aio.Channel:
    metadata = (("authorization", f"Bearer {token}"),)
    interceptors = [_AsyncBearerUnary(metadata), _AsyncBearerStream(metadata)] if token else None
    if tls:
        return grpc.aio.secure_channel(address, tls, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)


def server_credentials(cert: Path, key: Path, client_ca: Path | None = None) -> grpc.ServerCredentials:
    """TLS for a gRPC server; with client_ca, only clients with a certificate it signed (mTLS)."""
    return grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())],
                                       root_certificates=client_ca.read_bytes() if client_ca else None,
                                       require_client_auth=client_ca is not None)


def channel_credentials(ca: Path | None, cert: Path | None = None, key: Path | None = None
                        ) -> grpc.ChannelCredentials:
    """TLS for a client: the server checked against ca (None: the system's roots), and this
    client's own certificate presented when given (a server that asks for one: mTLS)."""
    return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes() if ca else None,
                                        private_key=key.read_bytes() if key and cert else None,
                                        certificate_chain=cert.read_bytes() if key and cert else None)

"""Edge of the client port: the interceptor that turns unparseable requests into
INVALID_ARGUMENT."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError

from kvstore.server.services import Ctx

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class _Malformed:
    """Stands in for a request whose bytes did not parse."""


_MALFORMED = _Malformed()


class RejectMalformed(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Answer unparseable unary requests with INVALID_ARGUMENT instead of gRPC's generic
    UNKNOWN, so a client learns the request itself was at fault. Each method's wrapped
    handler is built once and reused for every call."""

    def __init__(self) -> None:
        self._wrapped: dict[str, Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap the deserializer and behaviour of unary-unary handlers."""
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        wrapped = self._wrapped[method] = _guard(method, handler)
        return wrapped


def _guard(method: str, handler: Handler) -> Handler:
    parse = handler.request_deserializer
    behaviour = handler.unary_unary
    assert parse is not None and behaviour is not None

    def safe_parse(data: bytes) -> object:
        try:
            return parse(data)
        except DecodeError:
            return _MALFORMED

    async def guarded(request: object, context: Ctx) -> object:
        if request is _MALFORMED:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"kvstore: malformed request for {method}"
            )
        return await behaviour(request, context)  # type: ignore[arg-type]

    return grpc.unary_unary_rpc_method_handler(
        guarded,
        request_deserializer=safe_parse,
        response_serializer=handler.response_serializer,
    )

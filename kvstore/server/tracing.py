"""OpenTelemetry tracing, configured by the standard ``OTEL_*`` environment variables.

Off by default: spans are recorded and exported only when ``OTEL_TRACES_EXPORTER`` is
``otlp`` or ``console``, or an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, and ``OTEL_SDK_DISABLED`` is not true. The
OTLP exporter itself reads the remaining ``OTEL_EXPORTER_OTLP_*`` variables and the batch
processor reads ``OTEL_BSP_*``.

Context crosses members in two ways: as W3C ``traceparent`` gRPC metadata on forwarded
requests and peer RPCs, and inside each replicated entry, so the apply span on every member
joins the trace of the client request that caused it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

TRACER_NAME = "kvstore.server"


class _State:
    active = False
    """Whether :func:`configure` installed an exporter. Without one, every helper below
    returns at once: even a no-op span costs a context switch per request, a few percent of
    a busy member's CPU."""


_state = _State()
_NO_SPAN: ContextManager[trace.Span] = contextlib.nullcontext(trace.INVALID_SPAN)


def enabled(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for trace export."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter in {"otlp", "console"}:
        return True
    if exporter == "none":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(member: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install a tracer provider if the environment enables tracing; return whether it did."""
    env = os.environ if environ is None else environ
    if not enabled(env):
        return False
    resource = Resource.create(
        {"service.name": env.get("OTEL_SERVICE_NAME", "kvstore"), "kvstore.member": member}
    )
    provider = TracerProvider(resource=resource)
    if env.get("OTEL_TRACES_EXPORTER", "").lower() == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _state.active = True
    return True


def shutdown() -> None:
    """Flush and stop the exporter, if one was installed."""
    provider = trace.get_tracer_provider()
    stop = getattr(provider, "shutdown", None)
    if callable(stop):
        stop()


def tracer() -> trace.Tracer:
    """The server's tracer (a no-op one unless tracing is configured)."""
    return trace.get_tracer(TRACER_NAME)


def span(
    name: str,
    context: otel_context.Context | None = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
) -> ContextManager[trace.Span]:
    """A span made current for the ``with`` block (a do-nothing one when tracing is off)."""
    if not _state.active:
        return _NO_SPAN
    return tracer().start_as_current_span(name, context=context, kind=kind)


def server_span(
    name: str, metadata: Callable[[], Iterable[Any] | None]
) -> ContextManager[trace.Span]:
    """The span of an incoming RPC, joined to the caller's trace from its metadata
    (``context.invocation_metadata``, called only when tracing is on)."""
    if not _state.active:
        return _NO_SPAN
    return span(name, context_from_metadata(metadata()), trace.SpanKind.SERVER)


def entry_span(name: str, traceparent: str) -> ContextManager[trace.Span]:
    """A span joined to the trace named in a replicated entry's ``traceparent``."""
    if not _state.active:
        return _NO_SPAN
    return span(name, context_from_traceparent(traceparent))


def outgoing_metadata() -> tuple[tuple[str, str | bytes], ...]:
    """The current trace context as gRPC metadata."""
    if not _state.active:
        return ()
    carrier: dict[str, str] = {}
    inject(carrier)
    return tuple(carrier.items())


def context_from_metadata(metadata: Iterable[Any] | None) -> otel_context.Context:
    """The trace context carried by incoming gRPC metadata ((key, value) pairs)."""
    carrier: dict[str, str] = {}
    for key, value in metadata or ():
        carrier[str(key)] = value if isinstance(value, str) else bytes(value).decode()
    return extract(carrier)


def current_traceparent() -> str:
    """The current context as a ``traceparent`` string ("" when there is no span)."""
    if not _state.active:
        return ""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent", "")


def context_from_traceparent(traceparent: str) -> otel_context.Context:
    """A context whose parent is the span named by ``traceparent``."""
    if not traceparent:
        return otel_context.Context()
    return extract({"traceparent": traceparent})

"""`POST /v1/traces` (and `/api/public/otel/v1/traces`): OTLP/HTTP trace export.

Protobuf or OTLP/JSON in, `ExportTraceServiceResponse` out in the request's content type;
failures are a `google.rpc.Status` in that content type, as the OTLP specification asks
(the JSON one also carries the API's usual `error` object). Spans become ingest records
(service.otlp) and go through the same `IngestWriter` as `POST /v1/ingest`.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict

from service.api.body import read_body
from service.api.content import media_type, unsupported_media_type
from service.api.endpoint import Body, Endpoint, Negotiated, endpoint
from service.api.params import ProjectParams
from service.api.state import context, principal
from service.errors import ClientError, InvalidBody, Overloaded
from service.ingest.rows import IngestRows, batch_from_records
from service.otlp.decode import UndecodableBody
from service.otlp.export import Encoding, Prepared, decode, prepare

log = logging.getLogger(__name__)

PATHS = ("/v1/traces", "/api/public/otel/v1/traces")
CONTENT_TYPES: dict[str, Encoding] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
_RESPONSE_TYPES: dict[Encoding, str] = {
    "protobuf": "application/x-protobuf",
    "json": "application/json",
}
# google.rpc.Code for the HTTP statuses this endpoint answers with.
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 503: 14}


class ExportRequestJson(BaseModel):
    """An `ExportTraceServiceRequest` in OTLP/JSON (lowerCamelCase fields, hex ids).

    Described loosely: the service decodes and checks every span itself, and a span that
    fails is a partial success, not a rejected request.
    """

    model_config = ConfigDict(extra="allow")

    resourceSpans: list[dict[str, Any]] | None = Field(
        None, description="Resources and the spans they emitted (null: none, as in proto3)."
    )


class PartialSuccess(TypedDict, total=False):
    rejectedSpans: str  # int64 is a string in proto3 JSON
    errorMessage: str


class ExportResponseJson(TypedDict, total=False):
    """An `ExportTraceServiceResponse` in OTLP/JSON; `partialSuccess` when spans were refused."""

    partialSuccess: PartialSuccess


class OtlpParams(ProjectParams):
    """OTLP exporters send no parameters; `project_id` serves admin keys and keyless use."""


async def export_traces(request: Request, query: OtlpParams) -> Response:
    """Accept an OTLP trace export; invalid spans are a partial success, not a failure.

    The key is checked before the body is read (401 otherwise, as on every /v1 route);
    failures after that are a `google.rpc.Status` in the request's encoding.
    """
    ctx = context(request)
    content_type = request.headers.get("content-type")
    encoding = CONTENT_TYPES.get(media_type(content_type) or "")
    if encoding is None:
        ctx.metrics.ingest_rejected.labels("unsupported_media_type").inc()
        return status_response(
            unsupported_media_type(content_type, ("application/x-protobuf", "application/json")),
            "json",
        )
    try:
        caller = principal(request)
        default_project = query.project_id
        # A full queue answers 503 before any CPU goes into the body.
        ctx.ingest.ensure_room()
        body = await read_body(
            request, ctx.settings.ingest_max_bytes, empty=None, setting="TA_INGEST_MAX_BYTES"
        )

        def resolve(record_project: str | None, field: str) -> str:
            return caller.write_project(record_project, default_project, field)

        def rows_of() -> tuple[Prepared, IngestRows]:
            prepared = prepare(decode(body, encoding))
            batch = prepared.batch
            return prepared, batch_from_records(batch.traces, batch.observations).resolve(resolve)

        prepared, rows = await anyio.to_thread.run_sync(rows_of)
        await ctx.ingest.write(rows)
    except UndecodableBody as exc:
        ctx.metrics.ingest_rejected.labels("invalid_body").inc()
        return status_response(InvalidBody("", str(exc)), encoding)
    except ClientError as exc:
        # OTLP clients read a google.rpc.Status, so these are rendered here, not by the
        # app's JSON error handler.
        if exc.status != 401:
            ctx.metrics.ingest_rejected.labels(exc.code).inc()
        return status_response(exc, encoding)

    if prepared.rejected:
        ctx.metrics.otlp_rejected_spans.inc(prepared.rejected)
        log.info(
            "otlp export partially accepted",
            extra={"rejected_spans": prepared.rejected, "spans": prepared.spans},
        )
    return export_response(prepared, encoding)


async def export_traces_langfuse(request: Request, query: OtlpParams) -> Response:
    """Accept an OTLP trace export at the Langfuse SDK's path (same as `POST /v1/traces`)."""
    return await export_traces(request, query)


def export_response(prepared: Prepared, encoding: Encoding) -> Response:
    """200 with an `ExportTraceServiceResponse`; `partial_success` only when spans were rejected."""
    media = _RESPONSE_TYPES[encoding]
    if encoding == "json":
        document: dict[str, object] = {}
        if prepared.rejected:
            document["partialSuccess"] = {
                "rejectedSpans": str(prepared.rejected),  # int64 is a string in proto3 JSON
                "errorMessage": prepared.error_message,
            }
        return Response(orjson.dumps(document), media_type=media)
    message = ExportTraceServiceResponse()
    if prepared.rejected:
        message.partial_success.rejected_spans = prepared.rejected
        message.partial_success.error_message = prepared.error_message
    return Response(message.SerializeToString(), media_type=media)


def render_status(request: Request, error: ClientError) -> Response:
    """An error of the OTLP routes (auth, parameters) as a Status in the request's encoding."""
    encoding = CONTENT_TYPES.get(media_type(request.headers.get("content-type")) or "", "json")
    return status_response(error, encoding)


def status_response(error: ClientError, encoding: Encoding) -> Response:
    """A 4xx/5xx carrying a `google.rpc.Status` (code, message) in the request's encoding."""
    code = _GRPC_CODES.get(error.status, 13)
    if encoding == "json":
        document = {
            "code": code,
            "message": error.message,
            "error": {"code": error.code, "message": error.message},
        }
        response = Response(orjson.dumps(document), error.status, media_type="application/json")
    else:
        response = Response(
            encode_status(code, error.message), error.status, media_type="application/x-protobuf"
        )
    if isinstance(error, Overloaded):
        response.headers["retry-after"] = error.retry_after_header
    return response


def encode_status(code: int, message: str) -> bytes:
    """`google.rpc.Status{code = 1; message = 2}` in the protobuf wire format."""
    out = bytearray()
    if code:
        out += b"\x08" + _varint(code)
    text = message.encode()
    if text:
        out += b"\x12" + _varint(len(text)) + text
    return bytes(out)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def routes() -> list[Endpoint]:
    handlers = (export_traces, export_traces_langfuse)
    return [
        endpoint(
            "POST",
            path,
            handler,
            query=OtlpParams,
            body=Body(ExportRequestJson, media_types=tuple(CONTENT_TYPES)),
            responses={200: Negotiated(ExportResponseJson, "application/x-protobuf")},
            errors=(503,),
            render_error=render_status,
        )
        for path, handler in zip(PATHS, handlers, strict=True)
    ]

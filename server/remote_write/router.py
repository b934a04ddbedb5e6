"""POST /api/v1/write: Prometheus remote-write 1.0 in, with an ingest token.

Answers as Prometheus' receiver: 405 for another method (the framework's), 415 for a
Content-Type other than ``application/x-protobuf`` (empty counts as that; a ``proto``
parameter must name ``prometheus.WriteRequest``) or a Content-Encoding other than ``snappy``,
413 for a body past ``max_body_bytes``, 400 for a body that does not decode or data refused for
good, 503 (retried by Prometheus) when storage cannot take it now, 204 on success.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from server.auth import INGEST, Principal
from server.deps import ServicesDep
from server.errors import ApiError
from server.ingest.router import _read_limited
from server.remote_write.proto import WireFormatError, decode_write_request

WRITE_PATH = "/api/v1/write"
MEDIA_TYPE = "application/x-protobuf"
WRITE_REQUEST = "prometheus.WriteRequest"

router = APIRouter(tags=["remote write"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Not a snappy WriteRequest, or samples refused for good (out of order, "
        "duplicate, out of bounds, too many series)"
    },
    401: {"description": "Missing or unknown bearer token"},
    403: {"description": "The token may not write remote-write nodes (use an ingest token)"},
    413: {"description": "Body exceeds max_body_bytes"},
    415: {"description": "Unsupported Content-Type, message type or Content-Encoding"},
    429: {"description": "Too many ingest requests in progress; see Retry-After"},
    503: {"description": "Storage unavailable for now; see Retry-After"},
}
_BODY = {
    "requestBody": {
        "required": True,
        "description": "A Prometheus remote-write 1.0 WriteRequest, protobuf, snappy block format.",
        "content": {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}
CallerDep = Annotated[Principal, Depends(INGEST)]


@router.post(
    WRITE_PATH, status_code=204, response_class=Response, responses=_ERRORS, openapi_extra=_BODY
)
async def remote_write(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """Store a Prometheus remote-write request; series map onto nodes by ``instance``."""
    _check_headers(request.headers.get("content-type"), request.headers.get("content-encoding"))
    body = await _read_limited(request, services.settings.max_body_bytes)
    try:
        series = decode_write_request(body, services.settings.max_decompressed_bytes)
    except WireFormatError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    async with services.ingest.admission.admit():
        await run_in_threadpool(request.app.state.remote_write.write, series, caller)
    return Response(status_code=204)


def _check_headers(content_type: str | None, content_encoding: str | None) -> None:
    parts = [part.strip() for part in (content_type or MEDIA_TYPE).split(";")]
    if parts[0].lower() != MEDIA_TYPE:
        raise ApiError(415, "unsupported_media_type", f"Content-Type must be {MEDIA_TYPE}")
    for parameter in parts[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "proto" and value.strip() != WRITE_REQUEST:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"only remote-write 1.0 ({WRITE_REQUEST}) is accepted, not {value.strip()!r}",
            )
    encoding = (content_encoding or "snappy").strip().lower()
    if encoding != "snappy":
        raise ApiError(415, "unsupported_encoding", "Content-Encoding must be snappy")

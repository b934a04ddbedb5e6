"""POST /api/v1/ingest: authenticate, read the body within its limit, hand it to the service."""

from __future__ import annotations

import time

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from agent.wire.schema import Ack
from server.auth import INGEST, Principal
from server.deps import ServicesDep
from server.errors import ApiError

router = APIRouter(tags=["ingest"])

_ERRORS = {
    400: {"description": "Malformed body (not gzip, not JSON)"},
    401: {"description": "Missing or unknown bearer token"},
    403: {"description": "The token may not write this node's data"},
    409: {"description": "Another live node uses this node name"},
    413: {"description": "Body or its decompressed size exceeds the limit"},
    415: {"description": "Unsupported Content-Type or Content-Encoding"},
    422: {"description": "Body does not match the wire schema, or timestamps are off"},
}


@router.post("/api/v1/ingest", response_model=Ack, responses=_ERRORS)  # type: ignore[arg-type]
async def ingest(
    request: Request, services: ServicesDep, caller: Annotated[Principal, Depends(INGEST)]
) -> Ack:
    """Accept one agent batch (gzip JSON, see agent.wire.schema). Acknowledged once stored."""
    started = time.perf_counter()
    metrics = services.metrics
    try:
        _check_content_type(request.headers.get("content-type"))
        body = await _read_limited(request, services.settings.max_body_bytes)
        ack = await run_in_threadpool(
            services.ingest.ingest, body, request.headers.get("content-encoding")
        )
    except ApiError as exc:
        metrics.ingest_requests.labels(str(exc.status)).inc()
        metrics.ingest_rejected.labels(exc.code).inc()
        raise
    metrics.ingest_requests.labels("200").inc()
    metrics.ingest_duration.observe(time.perf_counter() - started)
    return ack


def _check_content_type(content_type: str | None) -> None:
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type must be application/json, not {media!r}"
        )


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"body of {declared} bytes exceeds {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)

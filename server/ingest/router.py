"""POST /api/v1/ingest and /api/v1/ingest/bulk: authenticate, read the body within its limit,
admit, hand it to the service. Every answer of these routes is counted in one place
(``_CountedRoute``), refusals by their reason. The answer to a push carries the node's open
benchmark request (``Ack.bench``; in bulk ``BulkAnswer.bench``: the newest acknowledged
record's, else the node token's node's), from the bench order cache: a dict lookup
(``server/bench/orders.py``)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from agent.wire.bench import BenchOrder
from agent.wire.protocol import (
    BULK_MEDIA_TYPE,
    BULK_PATH,
    INGEST_PATH,
    LAYOUTS_HEADER,
    SENT_AT_HEADER,
    BulkAnswer,
)
from agent.wire.schema import Ack
from server.auth import INGEST, Principal
from server.deps import Services, ServicesDep
from server.errors import ApiError
from server.ingest.bulk import record_result, split_records
from server.ingest.service import RecordOutcome


class _CountedRoute(APIRoute):
    """Counts every answer by status and every refusal by its reason, including refusals of
    the access rule, which runs before the route's own code; times the successful ones."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def counted(request: Request) -> Response:
            metrics = request.app.state.services.metrics
            started = time.perf_counter()
            try:
                response = await handler(request)
            except ApiError as exc:
                metrics.ingest_requests.labels(str(exc.status)).inc()
                metrics.ingest_rejected.labels(exc.code).inc()
                raise
            metrics.ingest_requests.labels(str(response.status_code)).inc()
            metrics.ingest_duration.observe(time.perf_counter() - started)
            return response

        return counted


router = APIRouter(tags=["ingest"], route_class=_CountedRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed body (not gzip, not JSON), or the client left mid-body"},
    408: {"description": "The body did not arrive in time"},
    401: {"description": "Missing or unknown bearer token"},
    403: {"description": "The token may not write this node's data (code node_mismatch)"},
    409: {"description": "Another live node uses this node name"},
    413: {"description": "Body or its decompressed size exceeds the limit"},
    415: {"description": "Unsupported Content-Type or Content-Encoding"},
    422: {
        "description": "Body does not match the wire schema, timestamps are off, or the batch "
        "passes a series limit (codes too_many_series, cardinality_limit)"
    },
    429: {"description": "Too many ingest requests in progress; see Retry-After"},
    503: {"description": "Storage unavailable for now; see Retry-After"},
}
_BULK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Broken framing (a length prefix cut short or past the body's end)"},
    401: _ERRORS[401],
    408: _ERRORS[408],
    403: {"description": "The token may not call ingest"},
    413: {"description": "Body too large, or more records than max_batches_per_bulk"},
    415: {"description": "Content-Type is not application/vnd.dcmon.bulk, or an outer encoding"},
    429: _ERRORS[429],
    503: _ERRORS[503],
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_SINGLE_BODY = {
    "requestBody": {
        "required": True,
        "description": "One batch (agent.wire.schema.Batch) as JSON, normally gzip-compressed "
        "with Content-Encoding: gzip.",
        "content": {"application/json": _BINARY},
    }
}
_BULK_BODY = {
    "requestBody": {
        "required": True,
        "description": "Records back to back, no outer Content-Encoding: each a 4-byte "
        "big-endian unsigned length N, then N bytes that are one gzip JSON batch exactly as "
        "POST /api/v1/ingest takes it with Content-Encoding: gzip.",
        "content": {BULK_MEDIA_TYPE: _BINARY},
    }
}

SentAtHeader = Annotated[
    str | None,
    Header(
        alias=SENT_AT_HEADER,
        description="The agent's wall clock when it sent the request, Unix seconds: the "
        "server records the node's clock skew from it. Ignored when not a number.",
    ),
]
LayoutsHeader = Annotated[
    str | None,
    Header(
        alias=LAYOUTS_HEADER,
        description="1: the agent can send compact batches (schema_version 2), so the "
        "acknowledgement of a full batch carries its layout key (Ack.layout).",
    ),
]
CallerDep = Annotated[Principal, Depends(INGEST)]
BODY_TIMEOUT_SECONDS = 60.0
INLINE_BODY_BYTES = 16 * 1024
"""A body up to this size (any compact batch, about 2 KB for 400 series, and a small node's full
batch) is decoded on the event loop and its write awaited there: a few hundred microseconds to
a millisecond of work that holds the interpreter lock wherever it runs, cheaper than the two
hand-offs to a worker thread and back. A larger one is decoded on a worker thread, as is every
bulk request."""


@router.post(
    INGEST_PATH,
    response_model=Ack,
    responses=_ERRORS,
    openapi_extra=_SINGLE_BODY,
)
async def ingest(
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
    sent_at: SentAtHeader = None,
    layouts: LayoutsHeader = None,
) -> Response:
    """Accept one agent batch (gzip JSON, see agent.wire.schema), full or compact.
    Acknowledged once stored. A compact batch whose layout this server does not hold is
    refused with 409 ``unknown_layout``: send it in full."""
    _check_content_type(request.headers.get("content-type"), "application/json")
    body = await _read_limited(request, services.settings.max_body_bytes)
    encoding = request.headers.get("content-encoding")
    service = services.ingest
    async with service.admission.admit():
        if len(body) > INLINE_BODY_BYTES:
            ack = await run_in_threadpool(
                service.ingest, body, encoding, caller, parse_sent_at(sent_at), layouts == "1"
            )
        else:
            started = service.begin(body, encoding, caller, parse_sent_at(sent_at), layouts == "1")
            # Whatever became of the write (stored, failed, or not done in time), complete()
            # tells, without blocking: the future is done, or its time limit has passed.
            with suppress(Exception):
                async with asyncio.timeout(service.write_timeout_seconds):
                    await asyncio.shield(asyncio.wrap_future(started.pending.future))
            ack = service.complete(started)
    return Response(ack.model_dump_json(), media_type="application/json")


@router.post(
    BULK_PATH,
    response_model=BulkAnswer,
    responses=_BULK_ERRORS,
    openapi_extra=_BULK_BODY,
)
async def ingest_bulk(
    request: Request, services: ServicesDep, caller: CallerDep, sent_at: SentAtHeader = None
) -> BulkAnswer:
    """Accept many batches of one agent's backlog; one result per record, in order.

    A record's status is ``accepted`` or ``duplicate`` (stored; ``refused`` lists series of it
    that were not), ``rejected`` (refused for good: the batch is malformed or too large, one of
    the wire contract's permanent error codes) or ``retry`` (not stored for a reason that may
    pass, such as a refused token, overload, storage away or a timestamp ahead of the server's
    clock; keep it and every record after it).
    """
    settings = services.settings
    _check_content_type(request.headers.get("content-type"), BULK_MEDIA_TYPE)
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise ApiError(
            415,
            "unsupported_encoding",
            f"a bulk body takes no Content-Encoding (its records are gzip each), not {encoding!r}",
        )
    body = await _read_limited(request, settings.max_body_bytes)
    records = split_records(body, settings.max_batches_per_bulk)
    async with services.ingest.admission.admit():
        outcomes, order = await run_in_threadpool(
            _ingest_bulk, services, records, caller, parse_sent_at(sent_at)
        )
    for outcome in outcomes:
        if outcome.error is not None:
            services.metrics.ingest_rejected.labels(outcome.error.code).inc()
    return BulkAnswer(results=[record_result(outcome) for outcome in outcomes], bench=order)


def _ingest_bulk(
    services: Services, records: list[bytes], caller: Principal, sent_at: float | None
) -> tuple[list[RecordOutcome], BenchOrder | None]:
    """Store the records; the answer's order is the newest acknowledged record's node's, or,
    when none was acknowledged, the node token's node's."""
    outcomes = services.ingest.ingest_bulk(records, caller, sent_at)
    acks = [outcome.ack for outcome in outcomes if outcome.ack is not None]
    if acks:
        return outcomes, acks[-1].bench
    return outcomes, services.bench.orders.order_for(caller.node_id)


def parse_sent_at(value: str | None) -> float | None:
    """Returns: the agent's send time in Unix seconds, or None when absent or not a number."""
    if value is None:
        return None
    try:
        sent_at = float(value)
    except ValueError:
        return None
    return sent_at if math.isfinite(sent_at) else None


def _check_content_type(content_type: str | None, expected: str) -> None:
    media = (content_type or expected).split(";")[0].strip().lower()
    if media != expected:
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type must be {expected}, not {media!r}"
        )


async def _read_limited(request: Request, limit: int) -> bytes:
    """Returns: the whole body, read before the request takes an admission slot (a slow or
    stalled sender must not hold one), within ``BODY_TIMEOUT_SECONDS``.

    Raises:
        ApiError: 413 past ``limit``, 408 when the body does not arrive in time, 400 when the
            client goes away mid-body.
    """
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            return await _read_body(request, limit)
    except TimeoutError:
        raise ApiError(
            408, "body_timeout", f"the body did not arrive within {BODY_TIMEOUT_SECONDS:g}s"
        ) from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away mid-body") from None


async def _read_body(request: Request, limit: int) -> bytes:
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

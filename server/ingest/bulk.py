"""Bulk ingest: the framing of many batches in one request, and the per-record answer.

Stage: transport -> ingest. An agent replaying its spool after an outage sends its backlog in
few requests instead of one per batch. Body (``application/vnd.dcmon.bulk``, no outer
Content-Encoding): records back to back, each a 4-byte big-endian unsigned length N, then N
bytes that are exactly one single-ingest payload (gzip JSON, ``agent.wire.codec.encode_batch``).

The answer lists one result per record, in order. ``accepted`` and ``duplicate`` are stored;
``rejected`` is refused for good (what single ingest answers with 400, 413, 415 or 422);
``retry`` was not stored for a reason that may pass (identity 401/403/409, overload 429, storage
503), and the agent keeps that record and every one after it.
"""

from __future__ import annotations

import struct
from typing import Literal

from pydantic import BaseModel, Field

from server.errors import ApiError
from server.ingest.service import RecordOutcome

MEDIA_TYPE = "application/vnd.dcmon.bulk"
RETRY_STATUSES = frozenset({401, 403, 409, 429, 503})
_LENGTH = struct.Struct(">I")


class BulkRecordResult(BaseModel):
    """What became of one record."""

    seq: int | None = Field(description="The batch's seq, when the record decoded that far.")
    status: Literal["accepted", "duplicate", "rejected", "retry"]
    samples: int = Field(description="Samples stored (0 unless accepted).")
    http_status: int | None = Field(
        description="What single ingest would have answered for this batch."
    )
    code: str | None = Field(description="The error code of a rejected or retried record.")
    message: str | None = Field(description="The reason, in words.")


class BulkResponse(BaseModel):
    results: list[BulkRecordResult]


def split_records(body: bytes, max_records: int) -> list[bytes]:
    """Returns: the records of a bulk body, in order.

    Raises:
        ApiError: 400 ``bad_framing`` when a length prefix is cut short or claims more bytes
            than remain; 413 ``too_many_batches`` past ``max_records``.
    """
    records: list[bytes] = []
    offset = 0
    size = len(body)
    while offset < size:
        if size - offset < _LENGTH.size:
            raise ApiError(
                400,
                "bad_framing",
                f"record {len(records)}: {size - offset} bytes left, too few for a 4-byte length",
            )
        (length,) = _LENGTH.unpack_from(body, offset)
        offset += _LENGTH.size
        if length > size - offset:
            raise ApiError(
                400,
                "bad_framing",
                f"record {len(records)} claims {length} bytes but only {size - offset} remain",
            )
        if len(records) == max_records:
            raise ApiError(
                413,
                "too_many_batches",
                f"more than {max_records} batches in one bulk request (max_batches_per_bulk)",
            )
        records.append(body[offset : offset + length])
        offset += length
    return records


def join_records(payloads: list[bytes]) -> bytes:
    """Returns: a bulk body of these single-ingest payloads (the inverse of split_records)."""
    return b"".join(_LENGTH.pack(len(payload)) + payload for payload in payloads)


def record_result(outcome: RecordOutcome) -> BulkRecordResult:
    """Returns: the answer for one record."""
    if outcome.ack is not None:
        return BulkRecordResult(
            seq=outcome.ack.seq,
            status=outcome.ack.status,
            samples=outcome.ack.samples,
            http_status=200,
            code=None,
            message=None,
        )
    error = outcome.error
    assert error is not None, "an outcome is an acknowledgement or an error"
    return BulkRecordResult(
        seq=outcome.seq,
        status="retry" if error.status in RETRY_STATUSES else "rejected",
        samples=0,
        http_status=error.status,
        code=error.code,
        message=error.message,
    )

"""The HTTP side of the wire contract: routes, headers, bulk framing, and which refusals are final.

Both sides import this module (the agent's transport and shipper, the server's ingest router), so
a rule is written once and cannot drift between them.

Routes and headers: a batch is POSTed to ``INGEST_PATH`` as gzip JSON (``agent.wire.codec``);
a backlog goes to ``BULK_PATH`` as ``BULK_MEDIA_TYPE``. A compact batch (``schema.CompactBatch``)
goes to the same routes; any refusal of one (``UNKNOWN_LAYOUT``, or an older server that does
not read form 2) means: send that batch again in full, and judge only the full form. Every
request carries ``SENT_AT_HEADER``, the node's wall clock when it sent the request, so the
server can tell how far the node's clock is off.

Bulk framing: records back to back, no outer Content-Encoding, each a 4-byte big-endian
unsigned length N, then N bytes that are exactly one single-ingest payload.

What is final: only a refusal whose JSON error code is in ``PERMANENT_CODES`` says "this batch
can never be stored here" (it is malformed, or too large for any request). Every other answer
(an unknown code, a proxy's 404, 501, 505, 507, a timestamp ahead of the server's clock, an
overloaded or unavailable server, a refused token or node name) may pass, so the agent keeps the
batch and retries it with backoff. The server's bulk answer judges each record by the same rule.
"""

from __future__ import annotations

import struct
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.wire.bench import BenchOrder
from agent.wire.schema import RefusedSeries

INGEST_PATH = "/api/v1/ingest"
BULK_PATH = "/api/v1/ingest/bulk"
BULK_MEDIA_TYPE = "application/vnd.dcmon.bulk"
SENT_AT_HEADER = "X-Dcmon-Sent-At"
LAYOUTS_HEADER = "X-Dcmon-Layouts"
"""Sent as ``1`` by an agent that can send compact batches (``schema.CompactBatch``): the
server then gives layout keys in its acknowledgements (``Ack.layout``)."""
UNKNOWN_LAYOUT = "unknown_layout"
"""Error code (409) of a compact batch whose layout key the server does not hold (or no longer
matches the node's series): send that batch in full."""

PERMANENT_CODES: frozenset[str] = frozenset(
    {
        "invalid_batch",  # does not match the schema, repeats a series, family or job pairing
        "malformed_json",  # not JSON
        "bad_compression",  # not a gzip stream
        "unsupported_schema_version",  # a schema version this server does not read
        "body_too_large",  # the batch alone (or inflated) exceeds the server's size limit
        "too_many_series",  # the batch alone has more samples than max_series_per_batch
    }
)
"""Error codes that refuse one batch for good: sending it again cannot succeed."""

NO_BULK_ROUTE_STATUSES: frozenset[int] = frozenset({404, 405})
"""Answers to a bulk request that mean "no bulk route here" (an older server, or a proxy that
does not pass it): send the batches one per request instead (where a 404 is retried)."""

NOT_JUDGED_STATUSES: frozenset[int] = frozenset({401, 403, 408, 409, 425, 429, 503})
"""Answers that say nothing about the batch itself: the token or node name is refused, the body
was too slow, the server is busy or its storage is away. They never count towards setting a batch
aside as poison."""

BulkStatus = Literal["accepted", "duplicate", "rejected", "retry"]
_LENGTH = struct.Struct(">I")


def is_permanent(code: str | None) -> bool:
    """Returns: whether a refusal with this error code is final for the batch."""
    return code in PERMANENT_CODES


def refusal_status(code: str | None) -> Literal["rejected", "retry"]:
    """Returns: the bulk status of a record refused with this error code."""
    return "rejected" if is_permanent(code) else "retry"


class FramingError(Exception):
    """A bulk body that cannot be split into records.

    ``code``: ``bad_framing`` (a length prefix cut short or past the body's end) or
    ``too_many_batches`` (more records than allowed).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def frame_records(payloads: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Returns: a bulk body holding these single-ingest payloads, in order."""
    return b"".join(_LENGTH.pack(len(payload)) + payload for payload in payloads)


def split_records(body: bytes, max_records: int) -> list[bytes]:
    """Returns: the records of a bulk body, in order (the inverse of ``frame_records``).

    Raises:
        FramingError: a length prefix is cut short or claims more bytes than remain, or there
            are more than ``max_records`` records.
    """
    records: list[bytes] = []
    offset = 0
    size = len(body)
    while offset < size:
        if size - offset < _LENGTH.size:
            raise FramingError(
                "bad_framing",
                f"record {len(records)}: {size - offset} bytes left, too few for a 4-byte length",
            )
        (length,) = _LENGTH.unpack_from(body, offset)
        offset += _LENGTH.size
        if length > size - offset:
            raise FramingError(
                "bad_framing",
                f"record {len(records)} claims {length} bytes but only {size - offset} remain",
            )
        if len(records) == max_records:
            raise FramingError(
                "too_many_batches",
                f"more than {max_records} batches in one bulk request (max_batches_per_bulk)",
            )
        records.append(body[offset : offset + length])
        offset += length
    return records


class BulkRecord(BaseModel):
    """What became of one record of a bulk request.

    accepted / duplicate: stored (``refused`` lists series of it the server did not store);
    rejected: refused for good (``code`` is one of ``PERMANENT_CODES``); retry: not stored for a
    reason that may pass, so the agent keeps it and every record after it.
    """

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    status: BulkStatus
    seq: int | None = Field(
        default=None, description="The batch's seq, when the record decoded that far."
    )
    samples: int = Field(default=0, description="Samples stored (0 unless accepted).")
    http_status: int | None = Field(
        default=None, description="What single ingest would have answered for this batch."
    )
    code: str | None = Field(
        default=None, description="The error code of a rejected or retried record."
    )
    message: str | None = Field(default=None, description="The reason, in words.")
    refused: list[RefusedSeries] = Field(
        default_factory=list,
        description="Series of a stored record that the server refused (the others are stored).",
    )


class BulkAnswer(BaseModel):
    """The answer to a bulk request: one result per record, in order."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    results: list[BulkRecord]
    bench: BenchOrder | None = None  # this node's open benchmark request (agent.wire.bench)

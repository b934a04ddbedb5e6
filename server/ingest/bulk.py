"""Bulk ingest: split a bulk body into records and judge each record's outcome.

Stage: transport -> ingest. An agent replaying its spool after an outage sends its backlog in
few requests instead of one per batch. The framing, the media type and the rule for which
refusals are final are the wire contract's (``agent.wire.protocol``); this module maps them to
the server's errors and answers.

The answer lists one result per record, in order. ``accepted`` and ``duplicate`` are stored
(with the series of it the server refused, if any); ``rejected`` is refused for good (an error
code in ``PERMANENT_CODES``); ``retry`` was not stored for a reason that may pass (identity,
overload, storage, a timestamp ahead of the server's clock, any other code), and the agent keeps
that record and every one after it.
"""

from __future__ import annotations

from agent.wire.protocol import (
    BULK_MEDIA_TYPE,
    BulkAnswer,
    BulkRecord,
    FramingError,
    frame_records,
    refusal_status,
)
from agent.wire.protocol import split_records as split_frames
from server.errors import ApiError
from server.ingest.service import RecordOutcome

MEDIA_TYPE = BULK_MEDIA_TYPE
BulkResponse = BulkAnswer
_STATUS_OF_FRAMING_ERROR = {"bad_framing": 400, "too_many_batches": 413}


def split_records(body: bytes, max_records: int) -> list[bytes]:
    """Returns: the records of a bulk body, in order.

    Raises:
        ApiError: 400 ``bad_framing`` when a length prefix is cut short or claims more bytes
            than remain; 413 ``too_many_batches`` past ``max_records``.
    """
    try:
        return split_frames(body, max_records)
    except FramingError as exc:
        raise ApiError(_STATUS_OF_FRAMING_ERROR[exc.code], exc.code, exc.message) from None


def join_records(payloads: list[bytes]) -> bytes:
    """Returns: a bulk body of these single-ingest payloads (the inverse of split_records)."""
    return frame_records(payloads)


def record_result(outcome: RecordOutcome) -> BulkRecord:
    """Returns: the answer for one record."""
    if outcome.ack is not None:
        return BulkRecord(
            seq=outcome.ack.seq,
            status=outcome.ack.status,
            samples=outcome.ack.samples,
            http_status=200,
            refused=list(outcome.ack.refused),
        )
    error = outcome.error
    assert error is not None, "an outcome is an acknowledgement or an error"
    return BulkRecord(
        seq=outcome.seq,
        status=refusal_status(error.code),
        samples=0,
        http_status=error.status,
        code=error.code,
        message=error.message,
    )

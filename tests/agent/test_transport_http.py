"""The HTTP transport maps the server's answers and network failures to our exceptions."""

from __future__ import annotations

import gzip

import httpx
import pytest

from agent.transport.base import RejectedError, RetryableError
from agent.transport.http import HttpTransport


def _transport(handler) -> HttpTransport:
    return HttpTransport(
        "http://127.0.0.1:9", "dcm_t0k3n", 5.0, http_transport=httpx.MockTransport(handler)
    )


def _error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


def test_success_returns_the_ack_and_sends_the_right_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "accepted", "seq": 5, "samples": 3})

    payload = gzip.compress(b"{}")
    ack = _transport(handler).send(payload)
    assert (ack.status, ack.seq, ack.samples) == ("accepted", 5, 3)
    (request,) = seen
    assert request.url.path == "/api/v1/ingest"
    assert request.headers["authorization"] == "Bearer dcm_t0k3n"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"
    assert request.content == payload


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 401, 403, 409])
def test_retryable_statuses(status: int) -> None:
    with pytest.raises(RetryableError):
        _transport(lambda r: _error(status, "x", "try later")).send(b"")


@pytest.mark.parametrize("status", [400, 404, 413, 415, 422])
def test_permanent_refusals_carry_the_reason(status: int) -> None:
    with pytest.raises(RejectedError) as caught:
        _transport(lambda r: _error(status, "invalid_batch", "seq: not an integer")).send(b"")
    assert caught.value.status == status
    assert caught.value.code == "invalid_batch"
    assert "seq: not an integer" in str(caught.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("99999", 3600.0), ("garbage", None)],
)
def test_retry_after_is_honoured(header: str, expected: float | None) -> None:
    with pytest.raises(RetryableError) as caught:
        _transport(lambda r: _error(503, "busy", "later", **{"Retry-After": header})).send(b"")
    assert caught.value.retry_after == expected


def test_network_errors_are_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RetryableError, match="cannot reach"):
        _transport(refuse).send(b"")


def test_timeouts_are_retryable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with pytest.raises(RetryableError, match="timed out"):
        _transport(slow).send(b"")


def test_a_2xx_without_an_ack_is_not_trusted() -> None:
    with pytest.raises(RetryableError, match="without a valid ack"):
        _transport(lambda r: httpx.Response(200, text="ok")).send(b"")


def test_non_json_error_body_is_reported_raw() -> None:
    with pytest.raises(RejectedError, match="plain text reason"):
        _transport(lambda r: httpx.Response(400, text="plain text reason")).send(b"")

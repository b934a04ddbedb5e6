"""The HTTP transport maps the server's answers and network failures to our exceptions.

Every test talks to a real HTTP server on 127.0.0.1 (``http.server`` on a thread) whose answer
each test scripts, so requests, keep-alive, reconnects, timeouts and TLS are the real thing.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import agent.transport.http as http_transport
from agent.transport.base import BulkResult, BulkUnsupportedError, RejectedError, RetryableError
from agent.transport.http import HttpTransport
from agent.wire.protocol import PERMANENT_CODES, UNKNOWN_LAYOUT
from agent.wire.schema import RefusedSeries
from tests.integration import free_port, require_binary

TOKEN = "dcm_t0k3n"
KEY = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # close the connection after answering, without saying so


def json_answer(status: int, document: object, **headers: str) -> Answer:
    return Answer(
        status, json.dumps(document).encode(), {"Content-Type": "application/json"} | headers
    )


def error_answer(status: int, code: str, message: str, **headers: str) -> Answer:
    return json_answer(status, {"error": {"code": code, "message": message}}, **headers)


ACCEPTED = json_answer(200, {"status": "accepted", "seq": 5, "samples": 3})


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


class ScriptedServer:
    """A local HTTP/1.1 server answering every POST with ``answer(request)``."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.httpd = server
        self.answer: Callable[[Seen], Answer] = lambda seen: ACCEPTED
        self.seen: list[Seen] = []
        self.release = threading.Event()  # lets a deliberately slow answer finish

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


def _handler_for(state: list[ScriptedServer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_POST(self) -> None:
            server = state[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen = Seen(
                self.path,
                {name.lower(): value for name, value in self.headers.items()},
                body,
                self.client_address[1],
            )
            server.seen.append(seen)
            answer = server.answer(seen)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            if answer.close:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (the timeout test) is expected; stay quiet."""


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    state: list[ScriptedServer] = []
    httpd = _Server(("127.0.0.1", 0), _handler_for(state))
    scripted = ScriptedServer(httpd)
    state.append(scripted)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield scripted
    finally:
        scripted.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def connect() -> Iterator[Callable[..., HttpTransport]]:
    """Returns: a factory of transports that are all closed after the test."""
    made: list[HttpTransport] = []

    def make(url: str, timeout: float = 5.0, **kwargs: object) -> HttpTransport:
        transport = HttpTransport(url, TOKEN, timeout, **kwargs)  # type: ignore[arg-type]
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def test_success_returns_the_ack_and_sends_the_right_request(server, connect) -> None:
    payload = gzip.compress(b"{}")
    ack = connect(server.url).send(payload)
    assert (ack.status, ack.seq, ack.samples) == ("accepted", 5, 3)
    (request,) = server.seen
    assert request.path == "/api/v1/ingest"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("dcmon-agent/")
    assert request.body == payload


def test_a_duplicate_is_acknowledged_too(server, connect) -> None:
    server.answer = lambda seen: json_answer(200, {"status": "duplicate", "seq": 9})
    ack = connect(server.url).send(b"x")
    assert (ack.status, ack.seq, ack.samples) == ("duplicate", 9, 0)


def test_a_path_prefix_in_the_server_url_is_kept(server, connect) -> None:
    connect(server.url + "/dcmon/").send(b"x")
    assert server.seen[0].path == "/dcmon/api/v1/ingest"


def test_no_token_sends_no_authorization(server) -> None:
    transport = HttpTransport(server.url, None, 5.0)
    try:
        transport.send(b"x")
    finally:
        transport.close()
    assert "authorization" not in server.seen[0].headers


@pytest.mark.parametrize(
    "status", [408, 425, 429, 500, 502, 503, 504, 401, 403, 409, 400, 404, 413, 415, 422]
)
def test_retryable_statuses(server, connect, status: int) -> None:
    server.answer = lambda seen: error_answer(status, "x", "try later")
    with pytest.raises(RetryableError, match=rf"{status}.*try later") as caught:
        connect(server.url).send(b"")
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("status", "code", "judged"),
    [
        pytest.param(404, "not_found", True, id="a proxy without the route"),
        pytest.param(501, "", True, id="not implemented"),
        pytest.param(505, "", True, id="HTTP version"),
        pytest.param(507, "", True, id="insufficient storage"),
        pytest.param(422, "timestamp_in_future", True, id="a fast clock"),
        pytest.param(422, "cardinality_limit", True, id="an older server's series limit"),
        pytest.param(503, "storage_unavailable", False, id="storage away"),
        pytest.param(429, "overloaded", False, id="overloaded"),
        pytest.param(403, "node_mismatch", False, id="token of another node"),
        pytest.param(409, "name_conflict", False, id="node name in use"),
    ],
)
def test_only_a_permanent_code_is_final(
    server, connect, status: int, code: str, judged: bool
) -> None:
    """Statuses alone decide nothing: without a permanent code the batch is kept."""
    server.answer = lambda seen: error_answer(status, code, "not now")
    with pytest.raises(RetryableError) as caught:
        connect(server.url).send(b"")
    assert caught.value.status == status
    assert caught.value.judged is judged


@pytest.mark.parametrize("status", [404, 500, 502])
def test_an_answer_without_json_is_retryable(server, connect, status: int) -> None:
    server.answer = lambda seen: Answer(status, b"<html>Bad Gateway</html>")
    with pytest.raises(RetryableError, match="Bad Gateway"):
        connect(server.url).send(b"")


@pytest.mark.parametrize(("status", "code"), [(422, code) for code in sorted(PERMANENT_CODES)])
def test_permanent_refusals_carry_the_reason(server, connect, status: int, code: str) -> None:
    server.answer = lambda seen: error_answer(status, code, "seq: not an integer")
    with pytest.raises(RejectedError) as caught:
        connect(server.url).send(b"")
    assert caught.value.status == status
    assert caught.value.code == code
    assert "seq: not an integer" in str(caught.value)


def test_a_redirect_is_not_followed(server, connect) -> None:
    server.answer = lambda seen: Answer(301, b"moved", {"Location": "http://127.0.0.1:9/"})
    with pytest.raises(RetryableError) as caught:
        connect(server.url).send(b"")
    assert caught.value.status == 301
    assert len(server.seen) == 1


def test_refused_series_of_an_ack_are_read(server, connect) -> None:
    refused = [{"metric": "dcmon_job_gpu_info", "series": 4, "reason": "cardinality_limit"}]
    server.answer = lambda seen: json_answer(
        200, {"status": "accepted", "seq": 5, "samples": 3, "refused": refused}
    )
    ack = connect(server.url).send(b"x")
    assert ack.refused == [
        RefusedSeries(metric="dcmon_job_gpu_info", series=4, reason="cardinality_limit")
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("99999", 3600.0), ("-3", 0.0), ("garbage", None)],
)
def test_retry_after_is_honoured(server, connect, header: str, expected: float | None) -> None:
    server.answer = lambda seen: error_answer(503, "busy", "later", **{"Retry-After": header})
    with pytest.raises(RetryableError) as caught:
        connect(server.url).send(b"")
    assert caught.value.retry_after == expected


def test_retry_after_as_an_http_date(server, connect) -> None:
    date = "Fri, 01 Jan 2100 00:00:00 GMT"  # far ahead: clipped to an hour
    server.answer = lambda seen: error_answer(429, "slow_down", "later", **{"Retry-After": date})
    with pytest.raises(RetryableError) as caught:
        connect(server.url).send(b"")
    assert caught.value.retry_after == 3600.0


def test_network_errors_are_retryable(connect) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RetryableError, match=f"cannot reach {nobody}/api/v1/ingest"):
        connect(nobody).send(b"")


def test_timeouts_are_retryable(server, connect) -> None:
    def slow(seen: Seen) -> Answer:
        server.release.wait(10)
        return ACCEPTED

    server.answer = slow
    with pytest.raises(RetryableError, match="timed out"):
        connect(server.url, timeout=0.3).send(b"")


def test_a_server_that_accepts_but_never_answers_times_out(connect) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(RetryableError, match="timed out"):
            connect(url, timeout=0.3).send(b"")


def test_a_2xx_without_an_ack_is_not_trusted(server, connect) -> None:
    server.answer = lambda seen: Answer(200, b"ok", {"Content-Type": "text/plain"})
    with pytest.raises(RetryableError, match="without a valid ack"):
        connect(server.url).send(b"")


def test_a_2xx_with_a_wrong_ack_is_not_trusted(server, connect) -> None:
    server.answer = lambda seen: json_answer(200, {"status": "accepted", "seq": "5"})
    with pytest.raises(RetryableError, match="without a valid ack"):
        connect(server.url).send(b"")


def test_non_json_error_body_is_reported_raw(server, connect) -> None:
    server.answer = lambda seen: Answer(400, b"plain text reason", {"Content-Type": "text/plain"})
    with pytest.raises(RetryableError, match="plain text reason"):
        connect(server.url).send(b"")  # no permanent code: not final


def test_an_oversized_answer_is_not_read_to_the_end(server, connect) -> None:
    server.answer = lambda seen: Answer(400, b"x" * (http_transport.MAX_RESPONSE_BYTES * 4))
    transport = connect(server.url)
    with pytest.raises(RetryableError):
        transport.send(b"")
    # The unread rest cannot be skipped safely: the next batch goes on a new connection.
    server.answer = lambda seen: ACCEPTED
    assert transport.send(b"").status == "accepted"
    assert server.seen[0].client_port != server.seen[1].client_port


def test_one_connection_carries_many_batches(server, connect) -> None:
    transport = connect(server.url)
    for _ in range(5):
        transport.send(b"x")
    assert len({seen.client_port for seen in server.seen}) == 1


def test_a_connection_the_server_closed_is_replaced(server, connect) -> None:
    server.answer = lambda seen: Answer(ACCEPTED.status, ACCEPTED.body, close=True)
    transport = connect(server.url)
    transport.send(b"1")
    transport.send(b"2")
    assert [seen.body for seen in server.seen] == [b"1", b"2"]
    assert server.seen[0].client_port != server.seen[1].client_port


def test_a_stale_connection_is_retried_once_on_a_new_one(
    server, connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server closes just after our liveness check: the send on the old socket fails, and
    # the same batch (safe: ingest is idempotent) goes again on a fresh connection.
    server.answer = lambda seen: Answer(ACCEPTED.status, ACCEPTED.body, close=True)
    monkeypatch.setattr(http_transport, "_still_open", lambda sock: True)
    transport = connect(server.url)
    transport.send(b"1")
    assert transport.send(b"2").status == "accepted"
    assert [seen.body for seen in server.seen] == [b"1", b"2"]


def test_delivery_resumes_when_the_server_comes_back(connect) -> None:
    port = free_port()
    transport = connect(f"http://127.0.0.1:{port}")
    with pytest.raises(RetryableError, match="cannot reach"):
        transport.send(b"x")
    state: list[ScriptedServer] = []
    httpd = _Server(("127.0.0.1", port), _handler_for(state))
    state.append(ScriptedServer(httpd))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        assert transport.send(b"x").status == "accepted"
        transport.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_an_url_without_a_host_is_refused() -> None:
    with pytest.raises(ValueError, match="not http"):
        HttpTransport("ftp://127.0.0.1/", TOKEN, 5.0)
    with pytest.raises(ValueError, match="not http"):
        HttpTransport("http:///path", TOKEN, 5.0)


# --- bulk replay, clock stamp, token source ----------------------------------------------------


def frames_of(body: bytes) -> list[bytes]:
    """Returns: the records of a bulk body (4-byte big-endian length, then the batch)."""
    records: list[bytes] = []
    while body:
        (length,) = struct.unpack(">I", body[:4])
        records.append(body[4 : 4 + length])
        body = body[4 + length :]
    return records


def bulk_answer(*statuses: str) -> Answer:
    return json_answer(
        200,
        {
            "results": [
                {"seq": index, "status": status, "samples": 2, "http_status": None,
                 "code": None, "message": None}
                for index, status in enumerate(statuses)
            ]
        },
    )  # fmt: skip


def test_bulk_sends_framed_batches_and_returns_per_batch_results(server, connect) -> None:
    payloads = [gzip.compress(b'{"a": 1}'), gzip.compress(b"{}"), b""]
    server.answer = lambda seen: json_answer(
        200,
        {
            "results": [
                {"seq": 1, "status": "accepted", "samples": 5},
                {"seq": 2, "status": "duplicate", "samples": 0},
                {"seq": None, "status": "rejected", "samples": 0, "http_status": 422,
                 "code": "invalid_batch", "message": "empty"},
            ]
        },
    )  # fmt: skip
    results = connect(server.url).send_many(payloads)
    assert results == [
        BulkResult("accepted", 1, 5),
        BulkResult("duplicate", 2, 0),
        BulkResult("rejected", None, 0, 422, "invalid_batch", "empty"),
    ]
    (request,) = server.seen
    assert request.path == "/api/v1/ingest/bulk"
    assert request.headers["content-type"] == "application/vnd.dcmon.bulk"
    assert "content-encoding" not in request.headers
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert frames_of(request.body) == payloads


def test_bulk_keeps_the_path_prefix_and_the_connection(server, connect) -> None:
    server.answer = lambda seen: bulk_answer("accepted")
    transport = connect(server.url + "/dcmon")
    transport.send_many([b"x"])
    server.answer = lambda seen: ACCEPTED
    transport.send(b"y")
    assert [seen.path for seen in server.seen] == [
        "/dcmon/api/v1/ingest/bulk",
        "/dcmon/api/v1/ingest",
    ]
    assert len({seen.client_port for seen in server.seen}) == 1


@pytest.mark.parametrize("status", [404, 405])
def test_a_server_without_the_bulk_route_says_so(server, connect, status: int) -> None:
    server.answer = lambda seen: error_answer(status, "not_found", "no such route")
    with pytest.raises(BulkUnsupportedError, match=str(status)):
        connect(server.url).send_many([b"x", b"y"])


@pytest.mark.parametrize("status", [429, 503])
def test_bulk_overload_is_retryable_with_retry_after(server, connect, status: int) -> None:
    server.answer = lambda seen: error_answer(status, "busy", "later", **{"Retry-After": "12"})
    with pytest.raises(RetryableError) as caught:
        connect(server.url).send_many([b"x", b"y"])
    assert caught.value.retry_after == 12.0


@pytest.mark.parametrize("status", [401, 403, 408])
def test_bulk_identity_and_timeout_answers_are_retryable(server, connect, status: int) -> None:
    server.answer = lambda seen: error_answer(status, "x", "fix the token")
    with pytest.raises(RetryableError, match=str(status)):
        connect(server.url).send_many([b"x"])


@pytest.mark.parametrize("code", ["too_many_batches", "body_too_large", ""])
def test_a_bulk_request_too_large_is_refused_as_such(server, connect, code: str) -> None:
    server.answer = lambda seen: error_answer(413, code, "too large")
    with pytest.raises(RejectedError) as caught:
        connect(server.url).send_many([b"x"])
    assert (caught.value.status, caught.value.code) == (413, code)


@pytest.mark.parametrize(
    ("status", "code"), [(415, "unsupported_media_type"), (415, ""), (400, "bad_framing")]
)
def test_a_bulk_route_that_does_not_take_the_request_is_left_alone(
    server, connect, status: int, code: str
) -> None:
    server.answer = lambda seen: error_answer(status, code, "not this framing")
    with pytest.raises(BulkUnsupportedError, match=str(status)):
        connect(server.url).send_many([b"x"])


@pytest.mark.parametrize(("status", "code"), [(400, "bad_bulk"), (500, ""), (501, ""), (507, "")])
def test_other_bulk_request_failures_are_retryable(server, connect, status: int, code: str) -> None:
    server.answer = lambda seen: error_answer(status, code, "something broke")
    with pytest.raises(RetryableError) as caught:
        connect(server.url).send_many([b"x"])
    assert caught.value.status == status


def test_a_bulk_record_carries_its_refused_series(server, connect) -> None:
    refused = {"metric": "dcmon_job_gpu_info", "series": 2, "reason": "cardinality_limit"}
    server.answer = lambda seen: json_answer(
        200, {"results": [{"seq": 1, "status": "accepted", "samples": 5, "refused": [refused]}]}
    )
    (result,) = connect(server.url).send_many([b"x"])
    assert result.refused == (RefusedSeries(**refused),)


@pytest.mark.parametrize(
    "answer",
    [
        bulk_answer("accepted"),  # one result for two batches
        bulk_answer("accepted", "stored"),  # an unknown status
        json_answer(200, {"results": "all fine"}),
        Answer(200, b"ok"),
    ],
)
def test_a_bulk_answer_that_does_not_fit_is_not_trusted(server, connect, answer: Answer) -> None:
    server.answer = lambda seen: answer
    with pytest.raises(RetryableError, match="bulk results"):
        connect(server.url).send_many([b"x", b"y"])


def test_every_request_says_when_it_was_sent(server) -> None:
    now = [1_800_000_000.125]
    transport = HttpTransport(server.url, TOKEN, 5.0, wall=lambda: now[0])
    try:
        transport.send(b"x")
        now[0] += 42.5
        server.answer = lambda seen: bulk_answer("accepted")
        transport.send_many([b"y"])
    finally:
        transport.close()
    stamps = [seen.headers["x-dcmon-sent-at"] for seen in server.seen]
    assert stamps == ["1800000000.125", "1800000042.625"]


def test_every_request_asks_for_layout_keys_and_reads_the_one_given(server, connect) -> None:
    server.answer = lambda seen: json_answer(200, {"status": "accepted", "seq": 5, "layout": KEY})
    transport = connect(server.url)
    ack = transport.send(b"x")
    server.answer = lambda seen: bulk_answer("accepted")
    transport.send_many([b"y"])
    assert ack.layout == KEY
    assert [seen.headers.get("x-dcmon-layouts") for seen in server.seen] == ["1", "1"]


def test_asking_for_layout_keys_can_be_turned_off(server, connect) -> None:
    transport = connect(server.url, layouts=False)
    transport.send(b"x")
    server.answer = lambda seen: bulk_answer("accepted")
    transport.send_many([b"y"])
    assert [seen.headers.get("x-dcmon-layouts") for seen in server.seen] == [None, None]


def test_an_unknown_layout_is_retryable_with_its_code_and_not_judged(server, connect) -> None:
    server.answer = lambda seen: error_answer(409, UNKNOWN_LAYOUT, "no layout 0123")
    with pytest.raises(RetryableError, match=r"does not hold the layout.*no layout 0123") as caught:
        connect(server.url).send(b"x")
    assert (caught.value.status, caught.value.code) == (409, UNKNOWN_LAYOUT)
    assert caught.value.judged is False


def test_a_retryable_answer_carries_its_code(server, connect) -> None:
    server.answer = lambda seen: error_answer(503, "storage_unavailable", "later")
    with pytest.raises(RetryableError) as caught:
        connect(server.url).send(b"x")
    assert caught.value.code == "storage_unavailable"


def test_the_token_can_come_from_a_function_asked_on_each_request(server) -> None:
    tokens = iter(["dcm_first", "dcm_second"])
    transport = HttpTransport(server.url, lambda: next(tokens), 5.0)
    try:
        transport.send(b"x")
        transport.send(b"y")
    finally:
        transport.close()
    assert [seen.headers["authorization"] for seen in server.seen] == [
        "Bearer dcm_first",
        "Bearer dcm_second",
    ]


def test_no_token_yet_means_retry_later_without_a_request(server) -> None:
    def not_enrolled() -> str | None:
        raise RetryableError("not enrolled yet")

    transport = HttpTransport(server.url, not_enrolled, 5.0)
    try:
        with pytest.raises(RetryableError, match="not enrolled yet"):
            transport.send_many([b"x"])
        with pytest.raises(RetryableError, match="not enrolled yet"):
            transport.send(b"x")
    finally:
        transport.close()
    assert server.seen == []


def test_a_token_function_returning_none_sends_no_authorization(server) -> None:
    transport = HttpTransport(server.url, lambda: None, 5.0)
    try:
        transport.send(b"x")
    finally:
        transport.close()
    assert "authorization" not in server.seen[0].headers


def test_the_token_never_appears_in_errors(server, connect) -> None:
    server.answer = lambda seen: error_answer(401, "unauthorized", "unknown token")
    with pytest.raises(RetryableError) as caught:
        connect(server.url).send_many([b"x"])
    assert TOKEN not in str(caught.value)


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(server: ScriptedServer, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The scripted server behind TLS with a fresh self-signed certificate for 127.0.0.1.

    Returns: (https URL, the certificate file to trust).
    """
    openssl = require_binary("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    return f"https://127.0.0.1:{server.httpd.server_address[1]}", cert


def test_https_with_a_trusted_certificate(server, tls_server, connect) -> None:
    url, cert = tls_server
    transport = connect(url, ssl_context=ssl.create_default_context(cafile=str(cert)))
    assert transport.send(b"x").status == "accepted"
    assert transport.send(b"y").status == "accepted"
    assert len({seen.client_port for seen in server.seen}) == 1


def test_https_verifies_the_certificate_by_default(tls_server, connect) -> None:
    url, _ = tls_server
    with pytest.raises(RetryableError, match=r"cannot reach.*CERTIFICATE_VERIFY_FAILED"):
        connect(url).send(b"x")


def test_an_idle_connection_closed_by_the_peer_is_seen_as_closed() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert http_transport._still_open(ours)
        theirs.close()
        assert not http_transport._still_open(ours)

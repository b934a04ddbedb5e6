"""The HTTP transport maps the server's answers and network failures to our exceptions.

Every test talks to a real HTTP server on 127.0.0.1 (``http.server`` on a thread) whose answer
each test scripts, so requests, keep-alive, reconnects, timeouts and TLS are the real thing.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import agent.transport.http as http_transport
from agent.transport.base import RejectedError, RetryableError
from agent.transport.http import HttpTransport
from tests.integration import free_port, require_binary

TOKEN = "dcm_t0k3n"


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


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 401, 403, 409])
def test_retryable_statuses(server, connect, status: int) -> None:
    server.answer = lambda seen: error_answer(status, "x", "try later")
    with pytest.raises(RetryableError, match=rf"{status}.*try later"):
        connect(server.url).send(b"")


@pytest.mark.parametrize("status", [400, 404, 413, 415, 422])
def test_permanent_refusals_carry_the_reason(server, connect, status: int) -> None:
    server.answer = lambda seen: error_answer(status, "invalid_batch", "seq: not an integer")
    with pytest.raises(RejectedError) as caught:
        connect(server.url).send(b"")
    assert caught.value.status == status
    assert caught.value.code == "invalid_batch"
    assert "seq: not an integer" in str(caught.value)


def test_a_redirect_is_not_followed(server, connect) -> None:
    server.answer = lambda seen: Answer(301, b"moved", {"Location": "http://127.0.0.1:9/"})
    with pytest.raises(RejectedError) as caught:
        connect(server.url).send(b"")
    assert caught.value.status == 301
    assert len(server.seen) == 1


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
    with pytest.raises(RejectedError, match="plain text reason"):
        connect(server.url).send(b"")


def test_an_oversized_answer_is_not_read_to_the_end(server, connect) -> None:
    server.answer = lambda seen: Answer(400, b"x" * (http_transport.MAX_RESPONSE_BYTES * 4))
    transport = connect(server.url)
    with pytest.raises(RejectedError):
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

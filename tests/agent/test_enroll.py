"""Where the agent's token comes from: configuration, the enrolled token file, enrollment, rotation.

Enrollment and rotation talk to the real server application, served by uvicorn on 127.0.0.1
from a thread; failures the real server cannot be made to produce on demand (503 with a hint,
an issued token that cannot be stored) come from a scripted ``http.server`` instead.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from agent.config import AgentSettings, ConfigError
from agent.enroll import EnrollmentError, resolve_token, rotate_token
from agent.identity import NODE_ID_FILE
from agent.node_token import NODE_TOKEN_FILE, NodeToken, write_token
from agent.transport.api import ApiClient
from agent.transport.base import RetryableError
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.settings import ServerSettings
from tests.integration import free_port

BOOTSTRAP = "dcm_bootstrap_0123456789abcdef"
ADMIN = "dcm_admin_0123456789abcdef"
INGEST = "dcm_ingest_0123456789abcdef"


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings_for(tmp_path: Path, url: str, **values: Any) -> AgentSettings:
    values.setdefault("state_dir", tmp_path / "agent")
    return AgentSettings(server_url=url, node_name="node-a", **values)


def client_for(settings: AgentSettings) -> ApiClient:
    return ApiClient(settings.server_url, None, 5.0)


def bootstrap_file(tmp_path: Path, token: str = BOOTSTRAP) -> Path:
    path = tmp_path / "bootstrap.token"
    path.write_text(token + "\n")
    return path


# --- resolution order (no server needed) ----------------------------------------------------------


def test_an_explicit_token_wins_over_everything(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("dcm_from_file\n")
    (tmp_path / "agent").mkdir()
    write_token(tmp_path / "agent" / NODE_TOKEN_FILE, "dcm_enrolled")
    settings = settings_for(
        tmp_path,
        "http://127.0.0.1:9",
        token="dcm_explicit",
        token_file=token_file,
        bootstrap_token_file=bootstrap_file(tmp_path),
    )
    assert resolve_token(settings, client_for(settings)) == "dcm_explicit"


def test_a_token_file_comes_before_the_enrolled_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("dcm_from_file\n")
    (tmp_path / "agent").mkdir()
    write_token(tmp_path / "agent" / NODE_TOKEN_FILE, "dcm_enrolled")
    settings = settings_for(
        tmp_path,
        "http://127.0.0.1:9",
        token_file=token_file,
        bootstrap_token_file=bootstrap_file(tmp_path),
    )
    source = resolve_token(settings, client_for(settings))
    assert isinstance(source, NodeToken)
    assert source() == "dcm_from_file"


def test_the_enrolled_token_comes_before_enrolling(tmp_path: Path) -> None:
    (tmp_path / "agent").mkdir()
    write_token(tmp_path / "agent" / NODE_TOKEN_FILE, "dcm_enrolled")
    for extra in ({}, {"bootstrap_token_file": bootstrap_file(tmp_path)}):
        # The port is closed: any attempt to enroll would fail this test.
        settings = settings_for(tmp_path, "http://127.0.0.1:9", **extra)
        source = resolve_token(settings, client_for(settings))
        assert isinstance(source, NodeToken)
        assert source() == "dcm_enrolled"


def test_without_any_token_the_agent_refuses_to_start(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "http://127.0.0.1:9")
    with pytest.raises(ConfigError, match=r"no ingest token.*bootstrap_token_file"):
        resolve_token(settings, client_for(settings))


def test_the_bootstrap_file_is_needed_only_until_the_node_is_enrolled(tmp_path: Path) -> None:
    gone = tmp_path / "removed-after-enrollment"
    settings = settings_for(tmp_path, "http://127.0.0.1:9", bootstrap_token_file=gone)
    with pytest.raises(ConfigError, match=r"bootstrap_token_file .*removed-after-enrollment"):
        resolve_token(settings, client_for(settings))
    write_token(tmp_path / "agent" / NODE_TOKEN_FILE, "dcm_enrolled")
    source = resolve_token(settings, client_for(settings))
    assert isinstance(source, NodeToken)
    assert source() == "dcm_enrolled"


def test_a_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    write_token(path, "dcm_first")
    source = NodeToken(path)
    assert source() == "dcm_first"
    write_token(path, "dcm_second")
    assert source() == "dcm_second"
    assert path.stat().st_mode & 0o777 == 0o600
    path.unlink()
    with pytest.raises(RetryableError, match="missing or empty"):
        source()


# --- enrollment against the real server -----------------------------------------------------------


@dataclass
class LiveServer:
    url: str

    def admin(self, method: str, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=5.0)

    def node_tokens(self) -> list[dict[str, Any]]:
        response = self.admin("GET", "/api/v1/admin/tokens?role=node")
        assert response.status_code == 200, response.text
        tokens: list[dict[str, Any]] = response.json()["tokens"]
        return tokens


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The dcmon application on 127.0.0.1 (uvicorn on a thread), with bootstrap, admin and
    plain ingest tokens configured."""
    settings = ServerSettings(
        data_dir=tmp_path / "server",
        bootstrap_token_sha256=[sha256_hex(BOOTSTRAP)],
        admin_key_sha256=[sha256_hex(ADMIN)],
        ingest_token_sha256=[sha256_hex(INGEST)],
        log_level="WARNING",
    )
    (tmp_path / "server").mkdir()
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        yield LiveServer(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_enrollment_stores_a_private_token_and_never_logs_it(
    live_server: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(
        tmp_path, live_server.url, bootstrap_token_file=bootstrap_file(tmp_path)
    )
    source = resolve_token(settings, client_for(settings))
    assert isinstance(source, NodeToken)
    token = source()
    path = tmp_path / "agent" / NODE_TOKEN_FILE
    assert path.read_text() == token + "\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert source() == token
    [issued] = live_server.node_tokens()
    node_id = (tmp_path / "agent" / NODE_ID_FILE).read_text().strip()
    assert issued["node_id"] == node_id
    assert issued["token_id"] in caplog.text
    assert token not in caplog.text
    assert BOOTSTRAP not in caplog.text


def test_a_node_enrolled_elsewhere_waits_for_an_operator_then_heals(
    live_server: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A second agent with the same node id is refused (409) until the old token is revoked."""
    bootstrap = bootstrap_file(tmp_path)
    first = settings_for(tmp_path, live_server.url, bootstrap_token_file=bootstrap)
    first_source = resolve_token(first, client_for(first))
    assert isinstance(first_source, NodeToken)
    first_token = first_source()

    twin_dir = tmp_path / "twin"
    twin_dir.mkdir()
    (twin_dir / NODE_ID_FILE).write_text((tmp_path / "agent" / NODE_ID_FILE).read_text())
    twin = settings_for(
        tmp_path, live_server.url, bootstrap_token_file=bootstrap, state_dir=twin_dir
    )
    clock = FakeMonotonic()
    twin_source = resolve_token(twin, client_for(twin), monotonic=clock)
    assert isinstance(twin_source, NodeToken)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RetryableError, match="already has an active token") as refused:
        twin_source()
    assert refused.value.retry_after is not None and refused.value.retry_after >= 120
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "dcmon token revoke" in errors[0]
    with pytest.raises(RetryableError, match="not enrolled yet; next attempt in"):
        twin_source()  # paced: no request before the next attempt is due
    assert not (twin_dir / NODE_TOKEN_FILE).exists()

    [old] = live_server.node_tokens()
    assert live_server.admin("DELETE", f"/api/v1/admin/tokens/{old['token_id']}").status_code == 200
    clock.now += 121
    healed = twin_source()
    assert healed != first_token
    assert (twin_dir / NODE_TOKEN_FILE).read_text().strip() == healed
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_a_refused_bootstrap_token_is_reported_without_the_secret(
    live_server: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "dcm_not_a_bootstrap_token_at_all"
    settings = settings_for(
        tmp_path, live_server.url, bootstrap_token_file=bootstrap_file(tmp_path, wrong)
    )
    source = resolve_token(settings, client_for(settings))
    assert isinstance(source, NodeToken)
    with pytest.raises(RetryableError, match=r"refused the bootstrap token \(401"):
        source()
    assert "check bootstrap_token_file" in caplog.text
    assert wrong not in caplog.text


def test_rotation_replaces_the_token_in_its_file(live_server: LiveServer, tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, live_server.url, bootstrap_token_file=bootstrap_file(tmp_path)
    )
    source = resolve_token(settings, client_for(settings))
    assert isinstance(source, NodeToken)
    enrolled = source()
    rotated = rotate_token(settings, client_for(settings))
    path = tmp_path / "agent" / NODE_TOKEN_FILE
    assert rotated.path == path
    new = path.read_text().strip()
    assert new != enrolled
    assert path.stat().st_mode & 0o777 == 0o600
    assert source() == new  # a running agent picks the new token up at its next send
    ids = {token["token_id"] for token in live_server.node_tokens()}
    assert rotated.token_id in ids
    again = rotate_token(settings, client_for(settings))  # the new token is a working node token
    assert again.token_id != rotated.token_id


def test_rotation_refuses_what_it_cannot_rotate(live_server: LiveServer, tmp_path: Path) -> None:
    explicit = settings_for(tmp_path, live_server.url, token=INGEST)
    with pytest.raises(EnrollmentError, match="`token` setting"):
        rotate_token(explicit, client_for(explicit))
    not_enrolled = settings_for(tmp_path, live_server.url)
    with pytest.raises(EnrollmentError, match="no token to rotate"):
        rotate_token(not_enrolled, client_for(not_enrolled))
    token_file = tmp_path / "ingest.token"
    token_file.write_text(INGEST + "\n")
    static = settings_for(tmp_path, live_server.url, token_file=token_file)
    with pytest.raises(EnrollmentError, match="only per-node tokens"):
        rotate_token(static, client_for(static))
    assert token_file.read_text() == INGEST + "\n"
    down = settings_for(tmp_path, "http://127.0.0.1:9", token_file=token_file)
    with pytest.raises(EnrollmentError, match="not rotated: cannot reach"):
        rotate_token(down, client_for(down))


def _dcmon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_agent_enrolls_delivers_and_rotates_from_the_command_line(
    live_server: LiveServer, tmp_path: Path
) -> None:
    state = tmp_path / "agent"
    common = (
        "--server-url", live_server.url, "--state-dir", str(state), "--gpu-backend", "none",
    )  # fmt: skip
    once = _dcmon(
        "agent", "--once", "--bootstrap-token-file", str(bootstrap_file(tmp_path)), *common
    )
    assert once.returncode == 0, once.stderr
    assert "delivered batch" in once.stdout
    enrolled = (state / NODE_TOKEN_FILE).read_text().strip()
    assert enrolled not in once.stdout + once.stderr

    rotated = _dcmon("agent", "--rotate-token", *common)
    assert rotated.returncode == 0, rotated.stderr
    new = (state / NODE_TOKEN_FILE).read_text().strip()
    assert new != enrolled
    [token_id] = [
        token["token_id"]
        for token in live_server.node_tokens()
        if token["token_id"] in rotated.stdout
    ]
    assert f"new token id {token_id}" in rotated.stdout
    assert new not in rotated.stdout + rotated.stderr
    assert enrolled not in rotated.stdout + rotated.stderr

    again = _dcmon("agent", "--once", *common)  # no bootstrap token needed any more
    assert again.returncode == 0, again.stderr


def test_rotate_token_fails_clearly(tmp_path: Path) -> None:
    result = _dcmon("agent", "--rotate-token", "--state-dir", str(tmp_path), "--server-url",
                    "http://127.0.0.1:9")  # fmt: skip
    assert result.returncode == 1
    assert "no token to rotate" in result.stderr
    assert "Traceback" not in result.stderr
    result = _dcmon("agent", "--rotate-token", "--once")
    assert result.returncode == 2
    assert "--rotate-token goes alone" in result.stderr


# --- failures scripted by a fake server -----------------------------------------------------------


@dataclass
class FakeServer:
    answer: Callable[[], tuple[int, dict[str, str], bytes]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    fake = FakeServer(lambda: (503, {}, b""))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fake.requests.append({"path": self.path, "body": json.loads(body or b"null")})
            status, headers, payload = fake.answer()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()


def test_an_unavailable_server_is_retried_on_backoff_honouring_its_hint(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.answer = lambda: (503, {"Retry-After": "7"}, b'{"error": {"code": "busy"}}')
    settings = settings_for(
        tmp_path, fake_server.url, bootstrap_token_file=bootstrap_file(tmp_path)
    )
    clock = FakeMonotonic()
    source = resolve_token(settings, client_for(settings), monotonic=clock)
    assert isinstance(source, NodeToken)
    with pytest.raises(RetryableError, match="503 busy") as first:
        source()
    assert first.value.retry_after is not None and first.value.retry_after >= 7
    [request] = fake_server.requests
    node_id = (tmp_path / "agent" / NODE_ID_FILE).read_text().strip()
    assert request == {
        "path": "/api/v1/enroll",
        "body": {"node_id": node_id, "name": "node-a", "hostname": os.uname().nodename},
    }
    with pytest.raises(RetryableError, match="not enrolled yet"):
        source()
    assert len(fake_server.requests) == 1
    clock.now += first.value.retry_after
    with pytest.raises(RetryableError, match="503"):
        source()
    assert len(fake_server.requests) == 2


def test_a_server_that_is_down_is_retryable(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, f"http://127.0.0.1:{free_port()}", bootstrap_token_file=bootstrap_file(tmp_path)
    )
    source = resolve_token(settings, client_for(settings))
    assert isinstance(source, NodeToken)
    with pytest.raises(RetryableError, match="cannot enroll: cannot reach"):
        source()


def test_an_issued_token_that_cannot_be_stored_is_used_from_memory(
    fake_server: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    issued = {"token": "dcm_issued_secret", "token_id": "tok_1", "node_id": "0" * 32}
    fake_server.answer = lambda: (201, {}, json.dumps(issued).encode())
    settings = settings_for(
        tmp_path, fake_server.url, bootstrap_token_file=bootstrap_file(tmp_path)
    )
    (tmp_path / "agent" / f".{NODE_TOKEN_FILE}.tmp").mkdir(parents=True)  # writes fail
    source = resolve_token(settings, client_for(settings))
    assert isinstance(source, NodeToken)
    assert source() == "dcm_issued_secret"
    assert source() == "dcm_issued_secret"
    assert len(fake_server.requests) == 1
    assert "using the new token from memory" in caplog.text
    assert "dcm_issued_secret" not in caplog.text

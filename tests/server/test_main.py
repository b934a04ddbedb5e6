"""``dcmon server`` start-up, as an operator sees it: warnings about credentials nobody can use."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from server.auth.secrets import sha256_hex
from tests.e2e.processes import DCMON, running, wait_for
from tests.integration import free_port

pytestmark = pytest.mark.integration


def _start_and_stop(tmp_path: Path, *flags: str) -> str:
    port = free_port()
    argv = [*DCMON, "server", "--port", str(port), "--data-dir", str(tmp_path / "data"), *flags]
    with running(argv, tmp_path / "server.log") as server:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, "the server")
        assert server.stop(signal.SIGTERM) == 0
        return server.output()


def test_a_server_nobody_can_push_to_or_read_from_says_so(tmp_path: Path) -> None:
    output = _start_and_stop(tmp_path)
    assert "WARNING server: no credential can push" in output, output
    assert "WARNING server: reads are closed and no credential can read" in output, output


def test_no_warning_when_pushes_and_reads_have_a_credential(tmp_path: Path) -> None:
    output = _start_and_stop(
        tmp_path,
        "--ingest-token-sha256", sha256_hex("dcm_push"),
        "--read-token-sha256", sha256_hex("dcm_read"),
    )  # fmt: skip
    assert "no credential can" not in output, output
    assert "WARNING" not in output, output


def test_open_reads_and_a_bootstrap_token_are_enough(tmp_path: Path) -> None:
    output = _start_and_stop(
        tmp_path, "--open-reads", "--bootstrap-token-sha256", sha256_hex("dcm_boot")
    )
    assert "no credential can" not in output, output


def test_tokens_in_the_database_count(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    for role in (["--role", "node", "--node-id", "0123456789abcdef0123456789abcdef"],
                 ["--role", "admin"]):  # fmt: skip
        made = subprocess.run(
            [*DCMON, "token", "create", "--init", *role, "--data-dir", data],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    output = _start_and_stop(tmp_path)
    assert "no credential can" not in output, output

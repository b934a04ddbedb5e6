"""Start real dcmon processes (server, agent, demo) on 127.0.0.1 and always stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from server.auth.secrets import new_token, sha256_hex
from tests.integration import free_port

DCMON = [sys.executable, "-m", "agent"]


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
                raise AssertionError(f"did not stop within {timeout}s:\n{self.output()}") from None
        return self.popen.returncode


@contextmanager
def running(argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> Iterator[Process]:
    """Start ``argv`` (with ``env`` added to this environment); killed at the end if alive."""
    full_env = {**os.environ, **(env or {})}
    with log.open("wb") as sink:
        popen = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=full_env)
    process = Process(popen, log)
    try:
        yield process
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()


@dataclass(frozen=True)
class ServerSpec:
    url: str
    port: int
    token_file: Path
    argv: list[str]


def server_spec(tmp_path: Path, *, self_series: bool = True) -> ServerSpec:
    """A server on a free port with an ingest token in ``tmp_path``. ``self_series=False``
    keeps the server's own health series out of its storage (a server that must hold exactly
    what it was sent, such as one compared sample by sample with Prometheus)."""
    token = new_token()
    token_file = tmp_path / "agent.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    argv = [
        *DCMON, "server", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(tmp_path / "server"), "--ingest-token-sha256", sha256_hex(token),
        "--open-reads",
    ]  # fmt: skip
    if not self_series:
        config = tmp_path / "server.toml"
        config.write_text("self_series = false\n")
        argv += ["--config", str(config)]
    return ServerSpec(f"http://127.0.0.1:{port}", port, token_file, argv)


def agent_argv(tmp_path: Path, spec: ServerSpec, *extra: str) -> list[str]:
    return [
        *DCMON, "agent", "--server-url", spec.url, "--token-file", str(spec.token_file),
        "--state-dir", str(tmp_path / "agent"), "--interval", "1", *extra,
    ]  # fmt: skip


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; returns: seconds it took. Raises AssertionError on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5.0)


def replica_specs(tmp_path: Path, database_url: str, count: int) -> list[ServerSpec]:
    """``count`` servers on one database (replicas), each on its own port and data directory,
    all accepting one ingest token (the first spec's token file)."""
    first = server_spec(tmp_path)
    token_hash = sha256_hex(first.token_file.read_text().strip())
    specs = []
    for number in range(count):
        port = first.port if number == 0 else free_port()
        argv = [
            *DCMON, "server", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(tmp_path / f"server-{number}"), "--database-url", database_url,
            "--ingest-token-sha256", token_hash, "--open-reads",
        ]  # fmt: skip
        specs.append(ServerSpec(f"http://127.0.0.1:{port}", port, first.token_file, argv))
    return specs

"""The example Prometheus config scrapes a real dcmon server whose reads are closed.

A real Prometheus (Debian's binary) runs ``deploy/prometheus/prometheus.yml`` with only what a
site changes substituted: the target's address, the read-token file's path, and intervals short
enough for a test. The target must be up and the node's series must arrive with the node's own
``instance`` label (``honor_labels``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from server.auth.secrets import new_token, sha256_hex, write_token_file
from tests.e2e.processes import DCMON, get, running, wait_for
from tests.integration import free_port, require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "prometheus.yml"
NODE_NAME = "gpu-example-01"


def _site_config(server_port: int, token_file: Path, fast: bool = False) -> dict[str, Any]:
    """The example with what a site changes: the target and the token file's path; ``fast``:
    intervals short enough for a test."""
    config: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    (job,) = config["scrape_configs"]
    if fast:
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"] = [{"targets": [f"127.0.0.1:{server_port}"]}]
    if "authorization" in job:
        job["authorization"]["credentials_file"] = str(token_file)
    return config


def test_promtool_accepts_the_example(tmp_path: Path) -> None:
    """(promtool checks that the token file exists, so it reads the example with its path.)"""
    promtool = require_binary("promtool")
    token_file = tmp_path / "read.token"
    write_token_file(token_file, new_token())
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_site_config(8470, token_file)))
    result = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    job = yaml.safe_load(EXAMPLE.read_text())["scrape_configs"][0]
    assert job["honor_labels"] is True
    assert job["authorization"]["credentials_file"].startswith("/etc/prometheus/")


def test_prometheus_scrapes_a_server_with_closed_reads(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    ingest, read = new_token(), new_token()
    ingest_file, read_file = tmp_path / "agent.token", tmp_path / "read.token"
    write_token_file(ingest_file, ingest)
    write_token_file(read_file, read)
    port, prometheus_port = free_port(), free_port()
    server_url = f"http://127.0.0.1:{port}"
    server_argv = [
        *DCMON, "server", "--port", str(port), "--data-dir", str(tmp_path / "server"),
        "--ingest-token-sha256", sha256_hex(ingest), "--read-token-sha256", sha256_hex(read),
    ]  # fmt: skip
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_site_config(port, read_file, fast=True)))
    prometheus_argv = [
        prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]  # fmt: skip
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"
    with running(server_argv, tmp_path / "server.log") as server:
        wait_for(lambda: get(f"{server_url}/readyz").status_code == 200, 60, "the server")
        assert get(f"{server_url}/metrics").status_code == 401, "reads must be closed"
        pushed = subprocess.run(
            [*DCMON, "agent", "--once", "--server-url", server_url, "--token-file",
             str(ingest_file), "--state-dir", str(tmp_path / "agent"), "--gpu-backend", "none",
             "--node-name", NODE_NAME],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        with running(prometheus_argv, tmp_path / "prometheus.log") as scraper:
            # until ready, Prometheus answers its API with plain-text 503s
            ready = f"http://127.0.0.1:{prometheus_port}/-/ready"
            wait_for(lambda: get(ready).status_code == 200, 60, "Prometheus ready")

            def target() -> dict[str, Any]:
                found = get(f"{api}/targets").json()["data"]["activeTargets"]
                assert len(found) <= 1, found
                return dict(found[0]) if found else {}

            try:
                wait_for(lambda: target().get("health") == "up", 30, "the target up")
            except AssertionError:
                raise AssertionError(f"target: {target()}\n{scraper.output()}") from None

            def memory_series() -> list[dict[str, Any]]:
                query = {"query": 'node_memory_MemTotal_bytes{job="dcmon"}'}
                result: list[dict[str, Any]] = httpx.get(f"{api}/query", params=query).json()[
                    "data"
                ]["result"]
                return result

            wait_for(lambda: bool(memory_series()), 30, "the node's samples in Prometheus")
            (series,) = memory_series()
            assert series["metric"]["instance"] == NODE_NAME  # honor_labels kept it
            assert float(series["value"][1]) > 0
            assert scraper.stop() == 0
        assert server.stop() == 0

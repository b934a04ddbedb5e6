"""The demo's live hint: its simulated idle notebook gets a reclaim_idle hint with evidence.

The real ``dcmon demo`` (server and agent processes, simulated GPUs carrying the scripted demo
jobs), with the hint rounds and the idle bar shortened through the server's environment (which
overrides the demo's server.toml) so the hint comes in about a minute instead of five. The
working training job on GPUs 2-3, whose pauses are shorter than any idle bar, gets no hint. It
holds on a busy machine too (as under CI): the demo's hint engine leaves the node's CPU out,
since the simulated jobs use none of it.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.processes import DCMON, get, running, wait_for
from tests.integration import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]
IDLE_JOB = "systemd:simulated-idle-notebook.service"


def test_the_demo_shows_a_reclaim_hint_for_its_idle_simulated_job(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [*DCMON, "demo", "--port", str(port), "--data-dir", str(tmp_path / "demo"),
            "--gpus", "simulated", "--interval", "2", "--no-bench"]  # fmt: skip
    env = {"DCMON_SERVER_HINTS_IDLE_SECONDS": "60", "DCMON_SERVER_HINTS_INTERVAL_SECONDS": "10"}
    with running(argv, tmp_path / "demo.log", env) as demo:
        wait_for(lambda: f"{url}/" in demo.output(), 60, "the demo banner")

        def reclaim() -> list[dict[str, Any]]:
            hints = get(f"{url}/api/v1/hints?kind=reclaim_idle").json()["hints"]
            return [h for h in hints if h["subject"]["pod"] == IDLE_JOB]

        wait_for(lambda: bool(reclaim()), 150, "the idle job's reclaim_idle hint")
        (hint,) = reclaim()
        assert hint["subject"]["node"] and hint["state"] == "new"
        assert hint["gain"]["gpus"] == 2.0 or hint["gain"]["gpu_hours"] > 0
        detail = get(f"{url}/api/v1/hints/{hint['id']}").json()
        assert any("DCGM_FI_DEV_GPU_UTIL" in e["series"] for e in detail["evidence"]), detail
        assert [a["pod"] for a in detail["actions"]] == [IDLE_JOB]
        others = get(f"{url}/api/v1/hints").json()["hints"]
        assert all("simulated-training" not in (h["subject"]["pod"] or "") for h in others), others
        exported = get(f"{url}/api/v1/hints/export").json()
        assert hint["id"] in {h["id"] for h in exported["hints"]}
        assert demo.stop(signal.SIGINT, timeout=40) == 0
    assert "Traceback" not in demo.output()

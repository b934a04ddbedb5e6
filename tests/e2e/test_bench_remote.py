"""A remote benchmark run end to end: real server and agent processes on 127.0.0.1.

An admin asks the server for a quick run; the agent learns of it in its push answer (it pushes
with the fleet's shared ingest token, as the demo does), runs it in its worker process
(simulated GPUs: figures modelled on the SKU, GPU 6 with a slow HBM stack as in the demo),
reports, and the server stores it and judges it against the fleet.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from server.auth.secrets import new_token, sha256_hex
from tests.e2e.processes import agent_argv, get, running, server_spec, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FINAL = ("done", "failed", "refused", "cancelled", "expired")


def test_request_push_answer_run_result_and_fleet_judgement(tmp_path: Path) -> None:
    spec = server_spec(tmp_path)
    admin = new_token()
    argv = [*spec.argv, "--admin-key-sha256", sha256_hex(admin)]
    headers = {"Authorization": f"Bearer {admin}"}
    with running(argv, tmp_path / "server.log") as server:
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
        agent = agent_argv(
            tmp_path, spec, "--gpu-backend", "simulated", "--simulated-gpus", "8",
            "--node-name", "bench-node",
        )  # fmt: skip
        env = {"DCMON_AGENT_GPU__SIMULATED_FAULTS": "demo"}
        with running(agent, tmp_path / "agent.log", env) as agent_process:
            wait_for(lambda: "bench-node" in get(spec.url + "/api/v1/nodes").text, 30, "node known")
            body = {"nodes": ["bench-node"], "level": "quick"}
            url = spec.url + "/api/v1/bench/requests"
            assert httpx.post(url, json=body, timeout=5).status_code == 401  # admins only
            made = httpx.post(url, json=body, headers=headers, timeout=5)
            assert made.status_code == 201, made.text
            request_id = made.json()["created"][0]["id"]

            def state() -> str:
                return str(get(f"{url}/{request_id}").json()["state"])

            wait_for(lambda: state() in FINAL, 120, "the run's final report")
            assert state() == "done", agent_process.output()[-3000:]

            answer = get(spec.url + "/api/v1/bench/results?test=memory_copy&limit=100").json()
            rows = [row for row in answer["results"] if row["node"] == "bench-node"]
            by_gpu = {row["gpu_index"]: row for row in rows}
            assert sorted(by_gpu) == list(range(8)), rows
            assert by_gpu[6]["sku"] == "h100_sxm" and by_gpu[6]["verdict"] == "warn"
            assert by_gpu[6]["fleet"]["outlier"] is True, by_gpu[6]
            assert not any(by_gpu[i]["fleet"]["outlier"] for i in range(8) if i != 6)
        assert server.popen.poll() is None

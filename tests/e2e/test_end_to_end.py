"""Real server and agent processes on 127.0.0.1: push, scrape, promtool, clean stops."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from tests.e2e.ledger import problems, read_stored
from tests.e2e.processes import (
    DCMON,
    agent_argv,
    get,
    running,
    server_spec,
    wait_for,
)
from tests.e2e.tap import tapping
from tests.integration import free_port, require_binary
from tests.promtool import check_metrics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_HAS_DRIVER = Path("/dev/nvidiactl").exists()


def _labels(line: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line))


def _lines(text: str, metric: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(metric + "{")]


def test_agent_pushes_and_server_exposes(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    spec = server_spec(tmp_path)
    with running(spec.argv, tmp_path / "server.log") as server:
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
        argv = agent_argv(
            tmp_path, spec, "--gpu-backend", "simulated", "--simulated-gpus", "2",
            "--node-name", "e2e-node", "--label", "cluster=ci",
        )  # fmt: skip
        with running(argv, tmp_path / "agent.log") as agent:
            took = wait_for(
                lambda: "node_cpu_seconds_total{" in get(spec.url + "/metrics").text,
                20,
                "node_cpu_seconds_total on /metrics",
            )
            text = get(spec.url + "/metrics").text
            cpu = _lines(text, "node_cpu_seconds_total")
            assert cpu, text[:2000]
            for line in cpu:
                labels = _labels(line)
                assert labels["instance"] == "e2e-node"
                assert labels["cluster"] == "ci"
                assert set(labels) == {"instance", "cluster", "cpu", "mode"}
            assert {_labels(line)["mode"] for line in cpu} >= {"user", "system", "idle"}
            assert len({_labels(line)["cpu"] for line in cpu}) == os.cpu_count()

            gpu = _lines(text, "DCGM_FI_DEV_GPU_UTIL")
            assert len(gpu) == 2
            for index, line in enumerate(sorted(gpu, key=lambda text: _labels(text)["gpu"])):
                labels = _labels(line)
                assert set(labels) == {
                    "instance", "cluster", "gpu", "UUID", "pci_bus_id", "device",
                    "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION",
                }  # fmt: skip
                assert labels["gpu"] == str(index)
                assert labels["device"] == f"nvidia{index}"
                assert labels["UUID"].startswith("GPU-")
                assert 0 <= float(line.rsplit(" ", 1)[1]) <= 100

            result = check_metrics(promtool, text)
            assert not result.unexpected, result.unexpected

            node = get(spec.url + "/api/v1/nodes/e2e-node").json()
            assert node["state"] == "up"
            assert len(node["gpus"]) == 2
            assert node["driver_version"].endswith("(simulated)")  # never passes for real
            assert {c["name"] for c in node["collectors"]} >= {"cpu", "meminfo", "gpu"}
            assert all(c["success"] for c in node["collectors"]), node["collectors"]

            assert agent.stop(signal.SIGTERM, timeout=15) == 0
            assert "Traceback" not in agent.output()
        assert server.stop(signal.SIGTERM, timeout=15) == 0
    assert took < 20


@pytest.mark.skipif(_HAS_DRIVER, reason="this machine has an NVIDIA driver")
def test_agent_without_a_driver_sends_host_metrics(tmp_path: Path) -> None:
    spec = server_spec(tmp_path)
    with running(spec.argv, tmp_path / "server.log"):
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
        argv = agent_argv(tmp_path, spec, "--gpu-backend", "auto", "--node-name", "cpu-only")
        with running(argv, tmp_path / "agent.log") as agent:
            wait_for(lambda: "node_load1{" in get(spec.url + "/metrics").text, 20, "host metrics")
            wait_for(
                lambda: get(spec.url + "/api/v1/nodes/cpu-only").json()["gpu_status"] != "",
                10,
                "gpu status in the inventory",
            )
            text = get(spec.url + "/metrics").text
            assert "DCGM_FI_DEV_GPU_UTIL" not in text
            status = get(spec.url + "/api/v1/nodes/cpu-only").json()["gpu_status"]
            assert "no NVIDIA driver" in status
            assert agent.stop() == 0
            log = agent.output()
            assert log.count("no NVIDIA driver") == 1, log
            assert "Traceback" not in log


def test_agent_started_before_the_server_delivers_its_backlog(tmp_path: Path) -> None:
    spec = server_spec(tmp_path)
    with tapping(spec.port) as tap:  # keeps a copy of every batch the agent sends
        via_tap = replace(spec, url=tap.url)
        argv = agent_argv(tmp_path, via_tap, "--gpu-backend", "none", "--node-name", "early")
        with running(argv, tmp_path / "agent.log") as agent:
            wait_for(lambda: "cannot deliver batch" in agent.output(), 20, "a failed delivery")
            with running(spec.argv, tmp_path / "server.log") as server:
                wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
                history_url = spec.url + "/api/v1/history?metric=node_load1&instance=early&start=0"

                def backlog_arrived() -> bool:
                    series = get(history_url).json()["series"]
                    return bool(series) and len(series[0]["points"]) >= 3

                wait_for(backlog_arrived, 60, "the buffered batches")
                points = get(history_url).json()["series"][0]["points"]
                times = [point[0] for point in points]
                assert times == sorted(times)
                assert agent.stop() == 0
                assert server.stop(signal.SIGTERM, timeout=15) == 0
    assert "delivering again" in agent.output()
    # Every batch the agent sent is stored once, with exactly its samples and values; those
    # still in its spool when it stopped may or may not be (their acknowledgement was lost).
    assert tap.conflicts == [] and len(tap.batches) == 1
    ((node_id, sent),) = tap.batches.items()
    spooled = {int(path.stem) for path in (tmp_path / "agent" / "spool").glob("*.batch")}
    stored = read_stored(tmp_path / "server" / "dcmon.db", node_id)
    assert problems(sent, stored, unsettled=spooled) == []
    assert len(stored.seqs) >= 3


def test_demo_runs_server_and_agent_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    argv = [*DCMON, "demo", "--port", str(port), "--data-dir", str(tmp_path / "demo"),
            "--gpus", "simulated", "--simulated-gpus", "2"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running(argv, tmp_path / "demo.log") as demo:
        wait_for(lambda: f"{url}/" in demo.output(), 60, "the demo banner")
        took = wait_for(
            lambda: "node_cpu_seconds_total{" in get(url + "/metrics").text, 20, "host metrics"
        )
        assert "DCGM_FI_DEV_GPU_UTIL{" in get(url + "/metrics").text
        assert get(url + "/").status_code == 200
        # the demo asks for a quick benchmark run of its node and prints the figures
        ended = "dcmon demo: the benchmark request ended (exit code 0)"
        wait_for(lambda: ended in demo.output(), 60, "the demo's benchmark run")
        results = get(url + "/api/v1/bench/results?test=memory_copy").json()["results"]
        assert sorted(r["gpu_index"] for r in results) == [0, 1], results
        assert all(r["sku"] == "h100_sxm" and r["verdict"] == "pass" for r in results)
        assert "(12 figures, 0 failed, 0 fleet outliers)" in demo.output()
        page = get(url + "/benchmarks").text  # the results on the benchmarks page
        assert page.count('<td class="passed">passed</td>') == 2, page
        assert demo.stop(signal.SIGINT, timeout=30) == 0
        output = demo.output()
    assert "dashboard" in output and "Traceback" not in output
    assert took < 20
    with pytest.raises(Exception):  # noqa: B017 (the server is gone)
        get(url + "/healthz")

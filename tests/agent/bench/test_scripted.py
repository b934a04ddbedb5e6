"""The scripted backend as the worker loads it from a JSON scenario: figures per device, faults,
miscompares and a GPU lost after some tests, so real worker processes can be scripted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.bench.backend import Unsupported
from agent.bench.harness import run
from agent.bench.scripted import LOST_MESSAGE, ScenarioError, from_scenario, load_scenario

SCENARIO = {
    "devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3"}, {"index": 1}],
    "figures": {"matmul_bf16": 790.0},
    "device_figures": {"1": {"matmul_bf16": 553.0}},
    "peer_figures": {"0,1": 380.0},
    "faults": [{"test": "matmul_fp32", "device": 0, "kind": "unsupported", "message": "no"}],
    "miscompares": {"1": 7},
    "lost": {"1": 3},
}


def test_a_scenario_scripts_figures_faults_miscompares_and_a_lost_gpu(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(SCENARIO), encoding="utf-8")
    backend = load_scenario(path)
    assert [(d.index, d.name, d.kind) for d in backend.devices()] == [
        (0, "NVIDIA H100 80GB HBM3", "cuda"), (1, "Scripted GPU", "cuda")
    ]  # fmt: skip
    assert backend.matmul(0, "bfloat16", 8, 1, 1, 1.0).value == 790.0
    assert backend.matmul(1, "bfloat16", 8, 1, 1, 1.0).value == 553.0
    assert backend.peer_to_peer(0, 1, 8, 1, 1, 1.0).value == 380.0
    with pytest.raises(Unsupported, match="no"):
        backend.matmul(0, "float32", 8, 1, 1, 1.0)
    result = run(from_scenario(SCENARIO), "quick", clock=lambda: 0.0)
    second = {r.test: r for r in result.devices[1].results}
    assert [second[t].status for t in ("matmul_fp32", "matmul_bf16", "memory_copy")] == ["ok"] * 3
    assert second["host_to_device"].status == "error"  # lost after three tests
    assert LOST_MESSAGE in second["burn_fp32"].detail
    first = {r.test: r for r in result.devices[0].results}
    assert first["matmul_fp32"].status == "unsupported" and result.devices[0].passed
    assert first["burn_fp32"].value == 0.0 and second["burn_fp32"].status == "error"


def test_a_copy_to_a_lost_gpu_fails_too() -> None:
    devices = [{"index": 0}, {"index": 1}, {"index": 2}]
    backend = from_scenario({"devices": devices, "lost": {"1": 0}})
    assert backend.peer_to_peer(0, 2, 8, 1, 1, 1.0).value == 300.0
    with pytest.raises(RuntimeError, match="fell off the bus"):
        backend.peer_to_peer(0, 1, 8, 1, 1, 1.0)


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ({"devices": []}, "at least 1"),
        ({"faults": [{"test": "x", "device": 0, "kind": "melt"}]}, "kind"),
        ({"peer_figures": {"0-1": 3.0}}, "bad scenario"),
        ({"sleeep": True}, "sleeep"),
    ],
)
def test_a_bad_scenario_says_what_is_wrong(scenario: object, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        from_scenario(scenario)


def test_an_unreadable_scenario_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the scenario"):
        load_scenario(tmp_path / "missing.json")

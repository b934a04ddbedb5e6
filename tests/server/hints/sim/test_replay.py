from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from server.hints.sim.cluster import ClusterState
from server.hints.sim.replay import POLICIES, HookPoint, ReplayResult, make_policy, replay
from server.hints.sim.synthetic import synthetic_trace

NODES, PODS = synthetic_trace(21, nodes=60, pods=400, constrained_share=0.2)


def result(arrived: list[int], used: list[int], gpus: int = 100) -> ReplayResult:
    return ReplayResult(
        policy="bestfit",
        seed=0,
        ratio=1.3,
        total_gpu_milli=gpus * 1000,
        arrived_milli=np.array(arrived, dtype=np.int64),
        used_milli=np.array(used, dtype=np.int64),
        failed=0,
        seconds=0.0,
    )


def test_alloc_at_averages_the_arrivals_that_round_to_the_percentage() -> None:
    r = result(
        [98_000, 99_600, 100_400, 100_600, 129_600], [90_000, 91_000, 92_000, 93_000, 95_000]
    )
    # 99.6 % and 100.4 % round to 100; 100.6 % rounds to 101.
    assert r.alloc_pct_at(100) == 91.5
    assert r.alloc_pct_at(130) == 95.0
    # Nothing at 99 exactly: the arrivals within ±1 (98 and 100) are averaged.
    assert r.alloc_pct_at(99) == round((90.0 + 91.0 + 92.0) / 3, 2)
    assert math.isnan(r.alloc_pct_at(50))
    assert r.final_alloc_pct == 95.0


@pytest.mark.parametrize("policy", POLICIES)
def test_replay_is_deterministic_for_a_seed(policy: str) -> None:
    a = replay(NODES, PODS, policy, seed=42)
    b = replay(NODES, PODS, policy, seed=42)
    c = replay(NODES, PODS, policy, seed=43)
    assert np.array_equal(a.used_milli, b.used_milli)
    assert np.array_equal(a.arrived_milli, b.arrived_milli)
    assert a.failed == b.failed
    assert not np.array_equal(a.used_milli, c.used_milli)


@pytest.mark.parametrize("policy", POLICIES)
def test_smoke_replay_on_a_synthetic_trace(policy: str) -> None:
    calls: list[tuple[int, int]] = []
    r = replay(
        NODES, PODS, policy, seed=7, progress=lambda done, total: calls.append((done, total))
    )
    total = NODES.total_gpu_milli
    assert r.arrivals > len(PODS)  # tuned up past the trace
    assert 1.3 - 0.01 < r.arrived_milli[-1] / total <= 1.3 + 0.03
    assert np.all(np.diff(r.arrived_milli) >= 0)
    assert np.all(r.used_milli <= r.arrived_milli)
    assert np.all(r.used_milli <= total)
    assert r.failed > 0  # 130 % cannot all fit
    assert 50 < r.alloc_pct_at(130) <= 100
    assert calls[-1] == (r.arrivals, r.arrivals)


def test_fgd_allocates_more_than_random_at_130_percent() -> None:
    random = np.mean([replay(NODES, PODS, "random", s).alloc_pct_at(130) for s in (1, 2, 3)])
    fgd = np.mean([replay(NODES, PODS, "fgd", s).alloc_pct_at(130) for s in (1, 2, 3)])
    assert fgd > random


def test_a_hook_runs_once_when_arrivals_reach_its_point_and_may_change_the_state() -> None:
    seen: list[HookPoint] = []
    total = NODES.total_gpu_milli

    def evict_everything(state: ClusterState, point: HookPoint) -> None:
        seen.append(point)
        for instance in range(state.instance_count):
            if state.node_of(instance) is not None:
                state.evict(instance)
        assert state.used_gpu_milli == 0

    r = replay(NODES, PODS, "bestfit", seed=3, hooks={1.0: evict_everything})
    assert len(seen) == 1
    point = seen[0]
    assert point.at == 1.0
    assert r.hooks_run == (1.0,)
    assert r.arrived_milli[point.arrivals - 1] >= total
    assert r.arrived_milli[point.arrivals - 2] < total
    assert point.arrived_share == r.arrived_milli[point.arrivals - 1] / total
    assert r.used_milli[point.arrivals - 1] == 0  # recorded after the hook
    assert r.used_milli[-1] > 0  # and the replay went on placing


def test_unknown_policy() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("worstfit", NODES, PODS, np.random.default_rng(0))


def test_the_simulator_imports_no_web_framework_or_database() -> None:
    code = (
        "import sys, server.hints.sim.cli, server.hints.sim.replay, server.hints.sim.synthetic;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'fastapi', 'starlette', 'sqlalchemy', 'alembic', 'uvicorn', 'pydantic'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

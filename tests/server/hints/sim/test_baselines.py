from __future__ import annotations

import numpy as np

from server.hints.sim import baselines
from server.hints.sim.cluster import ClusterState
from server.hints.sim.policies import BestFitPolicy
from server.hints.sim.static_defrag import run_s1
from server.hints.sim.synthetic import synthetic_trace
from server.hints.sim.trace import PodTable
from tests.server.hints.sim.tables import node_table, pod_table

# two 8-GPU nodes with 64 cores
NODES = node_table([(64_000, 262_144, 8, "G2"), (64_000, 262_144, 8, "G2")])
ONE_GPU = (4_000, 8_192, 1, 1000, "")


def state_with(per_node: list[int], qos: list[str]) -> ClusterState:
    """``per_node[n]`` one-GPU pods on node n, QoS classes in placement order."""
    base = pod_table([ONE_GPU] * sum(per_node))
    pods = PodTable(base.names, base.cpu_milli, base.memory_mib, base.num_gpu, base.gpu_milli,
                    base.gpu_spec, tuple(qos))  # fmt: skip
    state = ClusterState(NODES, pods)
    spec = 0
    for node, count in enumerate(per_node):
        for gpu in range(count):
            state.place(state.add(spec), node, (gpu,))
            spec += 1
    return state


def placer() -> BestFitPolicy:
    return BestFitPolicy(np.arange(len(NODES), dtype=np.int64))


def test_low_node_utilization_aborts_without_an_under_utilised_node() -> None:
    state = state_with([6, 2], ["BE"] * 8)  # node 1 at 25 % GPU: not under 20 %
    done = baselines.low_node_utilization(state, placer(), budget=100)
    assert done.aborted == "no under-utilised node" and done.evicted == 0
    assert len(state.instances_on(0)) == 6


def test_low_node_utilization_evicts_from_the_over_utilised_node_within_its_rules() -> None:
    qos = ["LS", "BE", "Burstable", "BE", "BE", "BE", "BE"]
    state = state_with([7, 0], qos)  # node 0 at 87.5 % GPU, node 1 empty
    done = baselines.low_node_utilization(state, placer(), budget=2)
    assert done.evicted == 2  # the budget, though node 0 stays above 50 %
    assert done.lost == set()
    assert state.node_of(0) == 0  # LS is never evicted
    assert state.used_gpu_milli == 7000


def test_low_node_utilization_stops_once_the_node_is_below_its_targets() -> None:
    state = state_with([7, 0], ["BE"] * 7)
    done = baselines.low_node_utilization(state, placer(), budget=100)
    assert done.evicted == 3  # 7 -> 4 GPUs of 8: 50 %, no longer above the target


def test_high_node_utilization_empties_the_under_utilised_node() -> None:
    state = state_with([5, 2], ["BE"] * 7)  # node 1 at 25 % GPU, under 40 %
    done = baselines.high_node_utilization(state, placer(), budget=100)
    assert done.evicted == 2 and done.moved == {5, 6}
    assert state.instances_on(1) == [] and len(state.instances_on(0)) == 7


def test_the_oracle_places_every_running_pod_again() -> None:
    nodes, pods = synthetic_trace(5, nodes=30, pods=200)
    state = ClusterState(nodes, pods)
    bestfit = BestFitPolicy(np.arange(len(nodes), dtype=np.int64))
    for spec in range(len(pods)):
        k = state.add(spec)
        where = bestfit.place(state, spec)
        if where is not None:
            state.place(k, where.node, where.gpus)
    running = state.instance_count - len(state.unplaced())
    used = state.used_gpu_milli
    done = baselines.oracle_replacement(state, seed=5)
    assert done.evicted == running and done.moved
    assert state.used_gpu_milli == used - sum(
        int(pods.gpu_milli_total[state.pod_of(k)]) for k in done.lost
    )
    assert (state.cpu_free >= 0).all() and (state.gpu_free >= 0).all()


def test_s1_variants_share_arrivals_and_count_their_moves() -> None:
    nodes, pods = synthetic_trace(10, nodes=40, pods=300)
    plain = run_s1(nodes, pods, "bestfit", 10)
    hinted = run_s1(nodes, pods, "bestfit+dcmon", 10)
    assert hinted.running_at_hook > 0 and hinted.violations == 0
    assert 0 < hinted.moved <= 0.05 * hinted.running_at_hook
    assert hinted.alloc_130 >= plain.alloc_130

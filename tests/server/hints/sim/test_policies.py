from __future__ import annotations

from collections import Counter

import numpy as np

from server.hints.sim.cluster import ClusterState
from server.hints.sim.fgd import FGDPolicy, fgd_score
from server.hints.sim.frag import FragModel, TypicalPod, typical_pods
from server.hints.sim.policies import (
    BestFitPolicy,
    RandomPolicy,
    best_fit_scores,
    normalize,
    pick_node,
)
from server.hints.sim.synthetic import synthetic_trace
from tests.server.hints.sim.tables import node_table, pod_table

RANK = np.array([0, 1, 2, 3], dtype=np.int64)


def state_with(
    nodes: list[tuple[int, int, int, str]], pods: list[tuple[int, int, int, int, str]]
) -> ClusterState:
    return ClusterState(node_table(nodes), pod_table(pods))


def test_best_fit_picks_the_tightest_node() -> None:
    state = state_with(
        [(64000, 65536, 8, "G2"), (64000, 65536, 8, "G2"), (64000, 65536, 8, "G2")],
        [(8000, 1024, 1, 1000, "")],
    )
    state.gpu_free[0, :6] = 0  # 2 GPUs free
    state.gpu_free[1, :3] = 0  # 5 free
    state.gpu_free[2, :7] = 0  # 1 free: the tightest
    placement = BestFitPolicy(RANK[:3]).place(state, 0)
    assert placement is not None
    assert placement.node == 2
    assert placement.gpus == (7,)


def test_best_fit_raw_score_and_normalisation() -> None:
    state = state_with([(128000, 1, 8, "G2"), (64000, 1, 8, "G2")], [(0, 0, 0, 0, "")])
    # Node 0 left wholly free: waste ½·1 + ½·1 = 1 -> 0; node 1: ½·½ + ½·1 = 0.75 -> 25.
    assert best_fit_scores(state, 0, np.array([0, 1])).tolist() == [0, 25]
    assert normalize(np.array([3, 5, 7, 10])).tolist() == [0, 28, 57, 100]
    assert normalize(np.array([7, 7])).tolist() == [0, 0]


def test_ties_go_to_the_node_first_in_the_seed_order() -> None:
    candidates = np.array([0, 1, 2, 3])
    scores = np.array([5, 9, 9, 9])
    assert pick_node(candidates, scores, np.array([3, 2, 1, 0])) == 3
    assert pick_node(candidates, scores, np.array([0, 2, 1, 3])) == 2
    state = state_with([(8000, 1, 2, "T4")] * 3, [(1000, 1, 1, 1000, "")])
    placement = BestFitPolicy(np.array([2, 0, 1])).place(state, 0)
    assert placement is not None
    assert placement.node == 1


def test_best_fit_gives_a_share_the_tightest_gpu() -> None:
    state = state_with([(8000, 1, 4, "T4")], [(1000, 1, 1, 300, "")])
    state.gpu_free[0] = [1000, 400, 350, 200]
    placement = BestFitPolicy(RANK[:1]).place(state, 0)
    assert placement is not None
    assert placement.gpus == (2,)


def test_a_gpu_spec_constraint_is_honoured_by_every_policy() -> None:
    nodes = [(8000, 1, 2, "T4"), (8000, 1, 2, "V100M32"), (8000, 1, 2, "T4")]
    pods = [(1000, 1, 1, 500, "V100M16|V100M32")]
    typical = (TypicalPod(1000, 500, 1, "", 1.0),)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        state = state_with(nodes, pods)
        policies = (
            RandomPolicy(rng),
            BestFitPolicy(rng.permutation(3)),
            FGDPolicy(FragModel(typical, state.nodes), rng.permutation(3)),
        )
        for policy in policies:
            placement = policy.place(state, 0)
            assert placement is not None
            assert placement.node == 1, policy.name
    state = state_with([(8000, 1, 2, "T4")], pods)
    assert BestFitPolicy(RANK[:1]).place(state, 0) is None


def test_random_spreads_over_the_nodes_that_fit() -> None:
    state = state_with(
        [(8000, 1, 2, "T4"), (500, 1, 2, "T4"), (8000, 1, 2, "T4")], [(1000, 1, 0, 0, "")]
    )
    rng = np.random.default_rng(7)
    policy = RandomPolicy(rng)
    chosen = Counter()
    for _ in range(400):
        placement = policy.place(state, 0)
        assert placement is not None
        chosen[placement.node] += 1
    assert set(chosen) == {0, 2}  # node 1 has too little CPU
    assert 150 < chosen[0] < 250


def test_fgd_score_is_a_truncated_sigmoid() -> None:
    assert fgd_score(np.array([0.0, 400.0, -600.0, 5000.0])).tolist() == [50, 59, 35, 99]


def test_fgd_keeps_cpu_for_the_gpus_where_best_fit_does_not() -> None:
    # Typical pods need 8 cores per GPU. A 4-core CPU-only pod on node 0 (10 cores, 2 idle
    # GPUs) would strand both GPUs; on node 1 (64 cores) it strands nothing.
    nodes = [(10000, 65536, 2, "T4"), (64000, 65536, 4, "T4")]
    state = state_with(nodes, [(4000, 1024, 0, 0, "")])
    typical = (TypicalPod(8000, 1000, 1, "", 1.0),)
    fgd = FGDPolicy(FragModel(typical, state.nodes), RANK[:2]).place(state, 0)
    best_fit = BestFitPolicy(RANK[:2]).place(state, 0)
    assert fgd is not None
    assert best_fit is not None
    assert fgd.node == 1
    assert best_fit.node == 0


def test_fgd_prefers_the_node_whose_fragmentation_grows_least() -> None:
    # Whole-GPU pods are typical. A 500-milli share on node 0's half-used GPU closes a
    # fragment; on node 1 it would open one on a free GPU.
    nodes = [(32000, 65536, 2, "T4"), (32000, 65536, 2, "T4")]
    state = state_with(nodes, [(1000, 1024, 1, 500, "")])
    state.gpu_free[0] = [1000, 500]
    typical = (TypicalPod(1000, 1000, 1, "", 1.0),)
    placement = FGDPolicy(FragModel(typical, state.nodes), np.array([1, 0])).place(state, 0)
    assert placement is not None
    assert placement == (0, (1,))


def test_fgd_takes_the_first_gpu_among_equal_scores() -> None:
    nodes = [(32000, 65536, 4, "T4")]
    # A 100-milli share on GPU 1 or 2 shrinks a fragment by 100 (score 52); on GPU 0 or 3 it
    # leaves fragmentation as it is (50).
    state = state_with(nodes, [(1000, 1024, 1, 100, "")])
    state.gpu_free[0] = [1000, 300, 300, 1000]
    typical = (TypicalPod(1000, 500, 1, "", 1.0),)
    placement = FGDPolicy(FragModel(typical, state.nodes), RANK[:1]).place(state, 0)
    assert placement is not None
    assert placement.gpus == (1,)


def test_fgd_cache_follows_changes_made_outside_the_policy() -> None:
    nodes = [(32000, 65536, 2, "T4"), (32000, 65536, 2, "T4")]
    state = state_with(nodes, [(1000, 1024, 1, 500, ""), (1000, 1024, 1, 500, "")])
    typical = (TypicalPod(1000, 1000, 1, "", 1.0),)
    policy = FGDPolicy(FragModel(typical, state.nodes), np.array([0, 1]))
    first = policy.place(state, 0)
    assert first == (0, (0,))  # equal nodes: the first in the seed order
    # A hint puts a share on node 1 by hand; the next share should close that fragment.
    state.place(state.add(1), 1, (1,))
    second = policy.place(state, 0)
    assert second == (1, (1,))


def test_fgd_with_its_cache_chooses_as_a_fresh_policy_would() -> None:
    nodes, pods = synthetic_trace(9, nodes=30, pods=200)
    state = ClusterState(nodes, pods)
    model = FragModel(typical_pods(pods), nodes)
    rank = np.random.default_rng(0).permutation(len(nodes)).astype(np.int64)
    cached = FGDPolicy(model, rank)
    rng = np.random.default_rng(1)
    for step in range(300):
        pod = int(rng.integers(len(pods)))
        proposal = cached.place(state, pod)
        assert proposal == FGDPolicy(model, rank).place(state, pod)
        if proposal is not None:
            state.place(state.add(pod), proposal.node, proposal.gpus)
        placed = [i for i in range(state.instance_count) if state.node_of(i) is not None]
        if step % 4 == 3 and placed:  # a change made outside the policy, as a hint would
            state.evict(placed[int(rng.integers(len(placed)))])

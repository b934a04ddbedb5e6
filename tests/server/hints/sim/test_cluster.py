from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.hints.sim.cluster import ClusterState, PlacementError, tightest_gpus
from server.hints.sim.fgd import FGDPolicy
from server.hints.sim.frag import FragModel, typical_pods
from server.hints.sim.policies import BestFitPolicy, Policy, RandomPolicy
from tests.server.hints.sim.tables import node_table, pod_table

NODES = node_table([(8000, 16384, 2, "T4"), (16000, 32768, 4, "V100M16")])
PODS = pod_table(
    [
        (2000, 4096, 1, 500, ""),  # 0: a share
        (4000, 4096, 2, 1000, ""),  # 1: two whole GPUs
        (1000, 1024, 0, 0, ""),  # 2: CPU only
        (1000, 1024, 1, 1000, "V100M16|V100M32"),  # 3: V100 only
        (9000, 1024, 0, 0, ""),  # 4: more CPU than node 0 has
    ]
)


def test_place_and_evict_keep_the_books() -> None:
    state = ClusterState(NODES, PODS)
    share = state.add(0)
    pair = state.add(1)
    state.place(share, 0, (1,))
    state.place(pair, 1, (0, 2))
    assert state.cpu_free.tolist() == [6000, 12000]
    assert state.gpu_free[0].tolist() == [1000, 500, 0, 0]
    assert state.gpu_free[1].tolist() == [0, 1000, 0, 1000]
    assert state.used_gpu_milli == 2500
    assert state.instances_on(1) == [pair]
    assert state.gpus_of(pair) == (0, 2)
    versions = state.node_version.copy()
    state.evict(pair)
    assert state.node_of(pair) is None
    assert state.unplaced() == [pair]
    assert state.gpu_free[1].tolist() == [1000, 1000, 1000, 1000]
    assert state.cpu_free[1] == 16000
    assert state.used_gpu_milli == 500
    assert state.node_version[1] == versions[1] + 1
    assert state.node_version[0] == versions[0]


@pytest.mark.parametrize(
    ("pod", "node", "gpus", "message"),
    [
        (4, 0, (), "CPU/memory"),
        (0, 0, (2,), "GPU 2 of node 0"),  # node 0 has 2 GPUs
        (0, 0, (0, 1), "1 distinct GPUs"),
        (1, 1, (0, 0), "2 distinct GPUs"),
        (3, 0, (0,), "may not use node 0"),
        (0, 5, (0,), "no node 5"),
    ],
)
def test_place_refuses_what_does_not_fit(
    pod: int, node: int, gpus: tuple[int, ...], message: str
) -> None:
    state = ClusterState(NODES, PODS)
    instance = state.add(pod)
    with pytest.raises(PlacementError, match=message):
        state.place(instance, node, gpus)
    assert state.node_of(instance) is None
    assert state.cpu_free.tolist() == [8000, 16000]
    assert state.used_gpu_milli == 0


def test_a_gpu_share_never_overcommits_a_gpu() -> None:
    state = ClusterState(NODES, PODS)
    for _ in range(2):
        state.place(state.add(0), 0, (0,))
    with pytest.raises(PlacementError, match="cannot hold 500"):
        state.place(state.add(0), 0, (0,))
    assert state.gpu_free[0, 0] == 0


def test_fits_honours_cpu_gpu_count_and_model() -> None:
    state = ClusterState(NODES, PODS)
    assert state.fits(3).tolist() == [False, True]  # V100 only
    assert state.fits(4).tolist() == [False, True]  # 9 cores
    assert state.fits(1).tolist() == [True, True]
    state.place(state.add(0), 0, (0,))
    assert state.fits(1).tolist() == [False, True]  # one whole GPU left on node 0
    assert state.fits(0).tolist() == [True, True]


def test_move_is_atomic() -> None:
    state = ClusterState(NODES, PODS)
    share = state.add(0)
    state.place(share, 0, (0,))
    state.move(share, 1)
    assert state.node_of(share) == 1
    assert state.gpus_of(share) == (0,)
    assert state.gpu_free[0].tolist()[:2] == [1000, 1000]
    big = state.add(4)
    state.place(big, 1, ())
    with pytest.raises(PlacementError):
        state.move(big, 0)
    assert state.node_of(big) == 1
    assert state.cpu_free[1] == 16000 - 2000 - 9000


def test_tightest_gpu_is_the_least_free_that_holds_the_share() -> None:
    state = ClusterState(NODES, PODS)
    state.gpu_free[1] = [700, 400, 600, 1000]
    assert tightest_gpus(state, 0, 1) == (2,)
    state.gpu_free[1] = [500, 1000, 500, 1000]
    assert tightest_gpus(state, 0, 1) == (0,)  # lowest index among equals
    assert tightest_gpus(state, 1, 1) == (1, 3)
    assert tightest_gpus(state, 2, 1) == ()


def test_snapshot_is_a_copy() -> None:
    state = ClusterState(NODES, PODS)
    share = state.add(0)
    state.place(share, 1, (3,))
    state.add(3)
    snap = state.snapshot()
    assert snap.nodes[1].gpu_milli_free == (1000, 1000, 1000, 500)
    assert snap.nodes[0].gpu_milli_free == (1000, 1000)
    assert snap.pods[0].node == 1
    assert snap.pods[0].gpus == (3,)
    assert snap.pods[1].node is None
    assert snap.pods[1].gpu_spec == "V100M16|V100M32"
    state.evict(share)
    assert snap.nodes[1].gpu_milli_free == (1000, 1000, 1000, 500)


node_rows = st.tuples(
    st.sampled_from([4000, 8000, 32000]),
    st.sampled_from([8192, 65536]),
    st.sampled_from([0, 1, 2, 4, 8]),
    st.sampled_from(["T4", "V100M16", "G2"]),
)
cpu = st.sampled_from([500, 2000, 6000])
memory = st.sampled_from([1024, 4096])
pod_rows = st.one_of(
    st.tuples(cpu, memory).map(lambda r: (r[0], r[1], 0, 0)),
    st.tuples(cpu, memory, st.integers(5, 99)).map(lambda r: (r[0], r[1], 1, r[2] * 10)),
    st.tuples(cpu, memory, st.sampled_from([1, 2, 4])).map(lambda r: (r[0], r[1], r[2], 1000)),
)
specs = st.sampled_from(["", "", "V100M16|V100M32", "T4"])


@settings(max_examples=60, deadline=None)
@given(
    nodes=st.lists(node_rows, min_size=1, max_size=6),
    pods=st.lists(st.tuples(pod_rows, specs), min_size=1, max_size=8),
    arrivals=st.lists(st.integers(0, 7), min_size=1, max_size=60),
    policy=st.sampled_from(["random", "bestfit", "fgd"]),
    seed=st.integers(0, 2**16),
)
def test_policies_never_exceed_capacity(
    nodes: list[tuple[int, int, int, str]],
    pods: list[tuple[tuple[int, int, int, int], str]],
    arrivals: list[int],
    policy: str,
    seed: int,
) -> None:
    node_tab = node_table(nodes)
    pod_tab = pod_table([(c, m, n, g, s if n else "") for (c, m, n, g), s in pods])
    rng = np.random.default_rng(seed)
    rank = rng.permutation(len(node_tab)).astype(np.int64)
    chooser: Policy
    if policy == "random":
        chooser = RandomPolicy(rng)
    elif policy == "bestfit":
        chooser = BestFitPolicy(rank)
    else:
        chooser = FGDPolicy(FragModel(typical_pods(pod_tab), node_tab), rank)
    state = ClusterState(node_tab, pod_tab)
    for arrival in arrivals:
        pod = arrival % len(pod_tab)
        instance = state.add(pod)
        placement = chooser.place(state, pod)
        if placement is None:
            assert not state.fits(pod).any()
            continue
        assert state.fits(pod)[placement.node]
        state.place(instance, placement.node, placement.gpus)  # raises on any overcommit
    placed = [i for i in range(state.instance_count) if state.node_of(i) is not None]
    for node in range(len(node_tab)):
        on = [state.pod_of(i) for i in placed if state.node_of(i) == node]
        assert state.cpu_free[node] == node_tab.cpu_milli[node] - sum(pod_tab.cpu_milli[on])
        assert state.memory_free[node] == node_tab.memory_mib[node] - sum(pod_tab.memory_mib[on])
        assert state.cpu_free[node] >= 0
        assert state.memory_free[node] >= 0
    assert (state.gpu_free >= 0).all()
    assert (state.gpu_free <= 1000).all()
    for instance in placed:
        pod, node = state.pod_of(instance), state.node_of(instance)
        assert node is not None
        spec = pod_tab.gpu_spec[pod]
        if spec:
            assert node_tab.model[node] in spec.split("|")
    assert state.used_gpu_milli == sum(
        int(pod_tab.gpu_milli_total[state.pod_of(i)]) for i in placed
    )

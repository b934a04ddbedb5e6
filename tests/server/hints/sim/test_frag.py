from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.hints.sim.frag import FragModel, TypicalPod, typical_pods
from server.hints.sim.trace import allowed_models
from tests.server.hints.sim.tables import node_table, pod_table


def literal_frag(
    cpu_free: int, gpu_free: list[int], model: str, typical: tuple[TypicalPod, ...]
) -> float:
    """The fragmentation rules written out one typical pod at a time, as the paper states them."""
    idle = sum(gpu_free)
    frag = 0.0
    for t in typical:
        if t.gpu_milli == 0:
            frag += t.weight * idle  # a CPU-only pod uses no idle GPU
            continue
        models = allowed_models(t.gpu_spec)
        access = not models or model in models
        enough_gpus = sum(1 for g in gpu_free if g >= t.gpu_milli) >= t.num_gpu
        if access and enough_gpus and cpu_free >= t.cpu_milli:
            frag += t.weight * sum(g for g in gpu_free if g < t.gpu_milli)
        else:
            frag += t.weight * idle
    return frag


def test_typical_pods_cover_the_threshold_by_popularity() -> None:
    rows = [(1000, 1, 1, 1000, "")] * 6 + [(2000, 1, 1, 500, "")] * 3 + [(4000, 1, 0, 0, "")]
    pods = pod_table(rows)
    typical = typical_pods(pods, popularity=0.85)
    assert [(t.cpu_milli, t.gpu_milli, t.num_gpu) for t in typical] == [
        (1000, 1000, 1),
        (2000, 500, 1),
    ]
    assert [t.weight for t in typical] == pytest.approx([6 / 9, 3 / 9])
    everything = typical_pods(pods, popularity=1.0)
    assert len(everything) == 3
    assert sum(t.weight for t in everything) == pytest.approx(1.0)


def test_equal_counts_rank_the_larger_shape_first() -> None:
    pods = pod_table([(1000, 1, 1, 300, ""), (3000, 1, 1, 300, ""), (2000, 1, 1, 300, "")])
    typical = typical_pods(pods, popularity=0.5)
    assert [t.cpu_milli for t in typical] == [3000, 2000]


def test_a_half_used_gpu_is_fragment_for_whole_gpu_pods() -> None:
    nodes = node_table([(32000, 1, 2, "T4")])
    typical = (TypicalPod(4000, 1000, 1, "", 1.0),)
    model = FragModel(typical, nodes)
    at = np.array([0])
    frag = model.node_frag(at, np.array([32000]), np.array([[500, 1000]]))
    assert frag.tolist() == [500.0]
    # Too little CPU: every idle milli is fragment.
    assert model.node_frag(at, np.array([3000]), np.array([[500, 1000]])).tolist() == [1500.0]
    # No whole GPU left: the pod cannot run at all.
    assert model.node_frag(at, np.array([32000]), np.array([[500, 600]])).tolist() == [1100.0]


def test_a_model_constraint_makes_other_nodes_fragment() -> None:
    nodes = node_table([(32000, 1, 2, "T4"), (32000, 1, 2, "V100M16")])
    typical = (TypicalPod(1000, 1000, 1, "V100M16", 1.0),)
    model = FragModel(typical, nodes)
    frag = model.node_frag(np.array([0, 1]), np.array([32000, 32000]), np.full((2, 2), 1000))
    assert frag.tolist() == [2000.0, 0.0]


typical_strategy = st.lists(
    st.tuples(
        st.sampled_from([0, 1000, 4000, 8000, 16000]),
        st.sampled_from([0, 100, 250, 500, 800, 1000]),
        st.sampled_from([1, 2, 4]),
        st.sampled_from(["", "", "T4", "V100M16|G2"]),
        st.integers(1, 20),
    ),
    min_size=1,
    max_size=10,
)


@settings(max_examples=80, deadline=None)
@given(
    raw=typical_strategy,
    states=st.lists(
        st.tuples(
            st.integers(0, 20000),
            st.lists(st.integers(0, 1000), min_size=4, max_size=4),
            st.integers(0, 4),
            st.sampled_from(["T4", "G2", "V100M16"]),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_vectorised_frag_equals_the_literal_rules(
    raw: list[tuple[int, int, int, str, int]], states: list[tuple[int, list[int], int, str]]
) -> None:
    total = sum(r[4] for r in raw)
    typical = tuple(
        TypicalPod(c, m, n if m == 1000 else (1 if m else 0), s if m else "", w / total)
        for c, m, n, s, w in raw
    )
    nodes = node_table([(20000, 1, gpus, model) for _, _, gpus, model in states])
    gpu_free = np.array(
        [[free[i] if i < gpus else 0 for i in range(4)] for _, free, gpus, _ in states]
    )
    cpu_free = np.array([cpu for cpu, _, _, _ in states])
    got = FragModel(typical, nodes).node_frag(np.arange(len(states)), cpu_free, gpu_free)
    want = [
        literal_frag(cpu, [int(f) for f in gpu_free[i][:gpus]], model, typical)
        for i, (cpu, _, gpus, model) in enumerate(states)
    ]
    assert got.tolist() == pytest.approx(want, abs=1e-6)

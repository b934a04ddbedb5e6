from __future__ import annotations

import numpy as np

from server.hints.sim.synthetic import synthetic_trace
from server.hints.sim.workload import arrival_order, arrived_share
from tests.server.hints.sim.tables import pod_table

# Shares 500 + 1000 + 0 + 2x1000 = 3500 milli.
PODS = pod_table(
    [
        (1000, 1, 1, 500, ""),
        (1000, 1, 1, 1000, ""),
        (1000, 1, 0, 0, ""),
        (1000, 1, 2, 1000, ""),
    ]
)


def test_tune_up_appends_draws_until_the_next_would_pass_the_target() -> None:
    total_gpu_milli = 10_000
    order = arrival_order(PODS, total_gpu_milli, 1.3, np.random.default_rng(1))
    assert sorted(order[:4].tolist()) == [0, 1, 2, 3]  # every trace pod first, shuffled
    requested = PODS.gpu_milli_total[order]
    # The per-GPU share of the next draw was above what was left, so at most one GPU short,
    # and the two-GPU pod overshoots by at most one GPU.
    assert 13_000 - 1000 < requested.sum() <= 13_000 + 1000
    assert arrived_share(PODS, order, total_gpu_milli) == requested.sum() / 10_000


def test_tune_up_reproduces_for_a_seed_and_differs_across_seeds() -> None:
    a = arrival_order(PODS, 10_000, 1.3, np.random.default_rng(5))
    b = arrival_order(PODS, 10_000, 1.3, np.random.default_rng(5))
    c = arrival_order(PODS, 10_000, 1.3, np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tune_down_drops_pods_until_at_or_below_the_target() -> None:
    order = arrival_order(PODS, 10_000, 0.2, np.random.default_rng(3))
    assert PODS.gpu_milli_total[order].sum() <= 2_000
    assert len(set(order.tolist())) == len(order)


def test_ratio_zero_keeps_the_trace_shuffled_or_not() -> None:
    shuffled = arrival_order(PODS, 10_000, 0, np.random.default_rng(3))
    assert sorted(shuffled.tolist()) == [0, 1, 2, 3]
    kept = arrival_order(PODS, 10_000, 0, np.random.default_rng(3), shuffle=False)
    assert kept.tolist() == [0, 1, 2, 3]


def test_inflation_arithmetic_at_trace_scale() -> None:
    nodes, pods = synthetic_trace(11, nodes=200, pods=1500)
    for ratio in (1.0, 1.3):
        order = arrival_order(pods, nodes.total_gpu_milli, ratio, np.random.default_rng(42))
        share = arrived_share(pods, order, nodes.total_gpu_milli)
        assert ratio - 1000 / nodes.total_gpu_milli < share <= ratio + 7000 / nodes.total_gpu_milli

"""Fleet-relative judgement: a GPU slow against its SKU's peers is flagged, noise is not."""

from __future__ import annotations

import random

from server.bench.fleet import MIN_PEERS, Result, judge, peers


def _fleet(values: list[float], sku: str = "h100_sxm", test: str = "matmul_bf16") -> list[Result]:
    return [Result(f"GPU-{i}", sku, test, v) for i, v in enumerate(values)]


def test_a_gpu_at_70_percent_of_its_peers_is_an_outlier_and_the_rest_are_not() -> None:
    rng = random.Random(3)
    healthy = [795 * rng.uniform(0.97, 1.03) for _ in range(31)]
    verdicts = judge(_fleet([*healthy, 795 * 0.70]))
    flagged = [v.result.gpu_uuid for v in verdicts if v.outlier]
    assert flagged == ["GPU-31"]
    assert "0.70 x the median" in verdicts[-1].reason


def test_a_tight_fleet_does_not_flag_noise_and_a_wide_one_not_its_slower_half() -> None:
    tight = _fleet([800.0] * 20 + [795.0])  # MAD 0: only the 0.90 x bound stops a flag
    assert not any(v.outlier for v in judge(tight))
    wide = _fleet([600.0 + 10 * i for i in range(21)])  # a spread of mixed power caps
    assert not any(v.outlier for v in judge(wide))
    # ... and the MAD bound alone would not do: a 0.85 x GPU in the tight fleet is flagged
    assert judge(_fleet([800.0] * 20 + [680.0]))[-1].outlier


def test_skus_and_tests_are_judged_apart_and_small_groups_not_at_all() -> None:
    results = _fleet([800.0] * 10) + _fleet([300.0] * 10, sku="a100_sxm4_80gb")
    assert not any(v.outlier for v in judge(results))  # the A100s are not slow H100s
    few = judge(_fleet([800.0] * (MIN_PEERS - 1) + [100.0]))
    assert few[-1].outlier  # five peers now
    fewer = judge(_fleet([800.0] * (MIN_PEERS - 2) + [100.0]))
    assert not any(v.outlier for v in fewer) and fewer[-1].peers is None
    assert "at least" in fewer[-1].reason
    group = peers(_fleet([1.0, 2.0, 3.0, 4.0, 100.0]))[("h100_sxm", "matmul_bf16")]
    assert (group.median, round(group.scaled_mad, 4)) == (3.0, 1.4826)

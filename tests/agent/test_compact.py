"""Compact forms: a batch goes as its values alone only when its series are exactly those the
server gave the layout key for, and any doubt sends it in full."""

from __future__ import annotations

from typing import Any

import pytest

from agent.batch import BatchBuilder, CollectorResult, TickBatch
from agent.collectors.base import Sample
from agent.compact import CompactForms
from agent.wire.codec import decode_batch
from agent.wire.schema import CompactBatch
from tests.factories import identity

KEY = "0123456789abcdef0123456789abcdef"
OTHER_KEY = "fedcba9876543210fedcba9876543210"
T0 = 1_800_000_000.0


def _series(shift: float = 0.0) -> list[Sample]:
    return [
        Sample("node_load1", {}, 0.25 + shift),
        Sample("DCGM_FI_DEV_GPU_UTIL", {"gpu": "0", "UUID": "GPU-a"}, 40.0 + shift),
        Sample("DCGM_FI_DEV_GPU_UTIL", {"gpu": "1", "UUID": "GPU-b"}, 60.0 + shift),
        Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "idle"}, 1000.0 + shift),
    ]


def _tick(seq: int, samples: list[Sample] | None = None, builder: BatchBuilder | None = None):
    builder = builder or BatchBuilder(identity(), interval_seconds=10.0)
    results = [CollectorResult("host", samples or _series(seq), True, 0.001)]
    return builder.tick(seq, T0 + 10 * seq, results, None)


def _values(tick: TickBatch) -> list[float]:
    return [value for family in tick.document["metrics"] for _labels, value in family["samples"]]


def _learnt(forms: CompactForms, seq: int = 0, key: str = KEY) -> None:
    forms.offer(_tick(seq))
    forms.learn(seq, key)


def test_a_tick_with_the_learnt_series_goes_as_its_values_in_order() -> None:
    forms = CompactForms()
    _learnt(forms)
    tick = _tick(1)
    forms.offer(tick)
    payload = forms.take(1)
    assert payload is not None
    compact = decode_batch(payload, "gzip", 10**8)
    assert isinstance(compact, CompactBatch)
    assert (compact.layout, compact.seq, compact.metrics) == (KEY, 1, [])
    assert compact.values == _values(tick) == [1.25, 41.0, 61.0, 1001.0]
    full = tick.to_batch().model_dump(exclude={"schema_version", "metrics"})
    assert compact.model_dump(exclude={"schema_version", "metrics", "layout", "values"}) == full
    assert forms.take(1) is None  # given once


def test_the_tick_the_key_was_learnt_from_and_ticks_before_any_key_go_in_full() -> None:
    forms = CompactForms()
    forms.offer(_tick(0))
    assert forms.take(0) is None
    forms.learn(0, KEY)
    assert forms.take(0) is None  # its full form was acknowledged already


def _relabelled() -> list[Sample]:
    series = _series(1)
    series[2] = Sample("DCGM_FI_DEV_GPU_UTIL", {"gpu": "1", "UUID": "GPU-c"}, 60.0)
    return series


def _families_swapped() -> list[Sample]:
    series = _series(1)
    return [series[3], *series[:3]]


def _samples_swapped() -> list[Sample]:
    series = _series(1)
    return [series[0], series[2], series[1], series[3]]


def _one_more() -> list[Sample]:
    return [*_series(1), Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "user"}, 5.0)]


def _one_fewer() -> list[Sample]:
    return _series(1)[:3]


def _renamed() -> list[Sample]:
    series = _series(1)
    series[0] = Sample("node_load5", {}, 0.25)
    return series


@pytest.mark.parametrize(
    "samples",
    [_relabelled, _families_swapped, _samples_swapped, _one_more, _one_fewer, _renamed],
)
def test_other_series_go_in_full(samples: Any) -> None:
    forms = CompactForms()
    _learnt(forms)
    forms.offer(_tick(1, samples()))
    assert forms.take(1) is None
    forms.offer(_tick(2))  # the learnt series again: compact again
    assert forms.take(2) is not None


def test_a_label_set_a_collector_changes_in_place_is_not_taken_for_the_learnt_one() -> None:
    labels = {"gpu": "0", "UUID": "GPU-a"}
    forms = CompactForms()
    forms.offer(_tick(0, [Sample("DCGM_FI_DEV_GPU_UTIL", labels, 1.0)]))
    forms.learn(0, KEY)
    labels["UUID"] = "GPU-z"  # the same dict, reused for another GPU
    forms.offer(_tick(1, [Sample("DCGM_FI_DEV_GPU_UTIL", labels, 2.0)]))
    assert forms.take(1) is None


def test_learning_a_seq_that_is_not_remembered_binds_nothing() -> None:
    forms = CompactForms(kept_batches=4)
    for seq in range(6):
        forms.offer(_tick(seq))
    forms.learn(0, KEY)  # forgotten already (only the last 4 seqs are kept)
    forms.learn(3, "not a layout key")
    forms.offer(_tick(6))
    assert forms.take(6) is None


def test_a_key_learnt_before_its_tick_is_offered_binds_that_tick() -> None:
    """The shipper may send a batch and hear its ack before the ticking thread offers it."""
    forms = CompactForms()
    forms.offer(_tick(0))
    forms.learn(1, KEY)
    forms.offer(_tick(1))
    assert forms.take(1) is None
    forms.offer(_tick(2))
    assert forms.take(2) is not None


def test_an_early_key_for_a_seq_never_offered_binds_nothing() -> None:
    forms = CompactForms()
    forms.learn(9, KEY)
    forms.offer(_tick(1))
    forms.offer(_tick(2))
    assert forms.take(1) is None and forms.take(2) is None


def test_forget_drops_the_key_and_every_compact_form() -> None:
    forms = CompactForms()
    _learnt(forms)
    forms.offer(_tick(1))
    forms.offer(_tick(2))
    forms.forget()
    assert forms.take(1) is None and forms.take(2) is None
    forms.offer(_tick(3))
    assert forms.take(3) is None  # in full until a new ack gives a key
    forms.learn(3, OTHER_KEY)
    forms.offer(_tick(4))
    payload = forms.take(4)
    assert payload is not None
    compact = decode_batch(payload, "gzip", 10**8)
    assert isinstance(compact, CompactBatch) and compact.layout == OTHER_KEY


def test_a_new_key_drops_the_forms_built_under_the_old_one() -> None:
    forms = CompactForms()
    _learnt(forms)
    forms.offer(_tick(1))
    forms.offer(_tick(2))
    forms.learn(1, OTHER_KEY)
    assert forms.take(2) is None
    forms.offer(_tick(3))
    payload = forms.take(3)
    assert payload is not None
    assert decode_batch(payload, "gzip", 10**8).layout == OTHER_KEY  # type: ignore[attr-defined]


def test_only_the_last_batches_keep_their_compact_forms() -> None:
    forms = CompactForms(kept_batches=4)
    _learnt(forms)
    for seq in range(1, 11):
        forms.offer(_tick(seq))
    kept = [seq for seq in range(1, 11) if forms.take(seq) is not None]
    assert kept == [7, 8, 9, 10]


def test_the_series_of_the_last_batches_only_are_remembered() -> None:
    forms = CompactForms(kept_batches=4)
    forms.offer(_tick(0))
    for seq in range(1, 5):
        forms.offer(_tick(seq, _one_more()))
    forms.learn(0, KEY)  # seq 0 is forgotten: its series are not bound
    forms.learn(1, OTHER_KEY)  # seq 1 is remembered: bound
    forms.offer(_tick(5))
    forms.offer(_tick(6, _one_more()))
    assert forms.take(5) is None
    assert forms.take(6) is not None

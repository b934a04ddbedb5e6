"""Values the evaluator passes between nodes: every value covers *all steps of a query at once*.

A query has a step grid ``EvalContext.steps_ms`` (int64 ms; one element for an instant query).
Each node evaluates once for the whole grid, never once per step:

- ``Scalar``: ``values[i]`` is the scalar at step ``i`` (float64, length = number of steps).
- ``String``: one string, the same at every step.
- ``Vector``: a list of ``VectorSeries``. Each series has ``labels`` and dense arrays over the
  grid: ``values`` (float64) and ``present`` (bool; False where the series has no sample at that
  step). ``values`` at absent steps is meaningless (NaN by convention). ``sample_ts`` is set only
  by a plain selector: the timestamp of the sample each step saw (for ``timestamp()``), and
  ``histogram`` (bool) where that sample is a native histogram (histograms.py).
- ``Matrix``: a list of ``MatrixSeries`` of raw samples for range-vector arguments. Each series
  holds its samples ``ts`` (int64 ms, ascending, stale markers removed) and ``values``; the
  window of step ``i`` is ``ts[starts[i]:ends[i]]`` / ``values[starts[i]:ends[i]]`` (empty when
  ``starts[i] == ends[i]``). ``Matrix.range_ms`` is the selector's range and
  ``Matrix.window_end_ms[i]`` the right (closed) edge of step ``i``'s window, ``t - offset`` or
  the ``@`` time, so the window is ``(window_end_ms[i] - range_ms, window_end_ms[i]]``. A selector's
  series may mark native histogram samples in ``histogram`` (bool per sample).

``drop_name`` is Prometheus' delayed ``__name__`` removal: a function or operator that changes a
value sets the flag instead of deleting the name; the engine deletes flagged names at the end
and merges series whose label sets then coincide.

How functions receive their arguments (see functions.py, ``FunctionSpec``): one ``Value`` per
argument, evaluated over the whole grid — a ``Scalar`` for scalar arguments, a ``Vector`` for
instant vectors, a ``Matrix`` for range vectors, a ``String`` for strings. A function returns a
``Vector`` (or a ``Scalar``) over the same grid.

Labels are ``Labels``: a tuple of (name, value) pairs sorted by name, hashable, compared the way
Prometheus' ``labels.Compare`` sorts (tuples of str compare bytewise for ASCII).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Labels = tuple[tuple[str, str], ...]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NAME = "__name__"

# Prometheus' stale marker and the NaN its arithmetic produces (model/value/value.go).
STALE_NAN_BITS = 0x7FF0000000000002
NORMAL_NAN_BITS = 0x7FF8000000000001


def is_stale(values: FloatArray) -> BoolArray:
    """Returns: where ``values`` are stale markers (all 64 bits compared, not ``isnan``)."""
    result: BoolArray = values.view(np.uint64) == np.uint64(STALE_NAN_BITS)
    return result


def stale_nan() -> float:
    """Returns: the stale marker as a Python float (its bits survive storage, not arithmetic)."""
    return float(np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0])


def make_labels(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    """Returns: sorted labels; empty values are dropped, as Prometheus never stores them."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple(sorted((k, v) for k, v in items if v != ""))


def get_label(labels: Labels, name: str) -> str:
    """Returns: the value of ``name``, or ``""`` when absent."""
    for key, value in labels:
        if key == name:
            return value
    return ""


def without_labels(labels: Labels, names: Iterable[str]) -> Labels:
    """Returns: ``labels`` minus ``names``."""
    drop = set(names)
    return tuple(pair for pair in labels if pair[0] not in drop)


def only_labels(labels: Labels, names: Iterable[str]) -> Labels:
    """Returns: only the labels named in ``names``."""
    keep = set(names)
    return tuple(pair for pair in labels if pair[0] in keep)


def with_label(labels: Labels, name: str, value: str) -> Labels:
    """Returns: ``labels`` with ``name`` set to ``value`` (deleted when ``value`` is empty)."""
    rest = [pair for pair in labels if pair[0] != name]
    if value != "":
        rest.append((name, value))
    return tuple(sorted(rest))


def format_labels(labels: Labels) -> str:
    """Returns: ``{a="b", c="d"}`` as Prometheus prints label sets in error messages."""
    inner = ", ".join(f'{k}="{v}"' for k, v in labels)
    return "{" + inner + "}"


@dataclass(frozen=True)
class Scalar:
    values: FloatArray


@dataclass(frozen=True)
class String:
    value: str


@dataclass(frozen=True)
class VectorSeries:
    labels: Labels
    values: FloatArray
    present: BoolArray
    drop_name: bool = False
    sample_ts: IntArray | None = None
    histogram: BoolArray | None = None


@dataclass(frozen=True)
class Vector:
    series: list[VectorSeries] = field(default_factory=list)


@dataclass(frozen=True)
class MatrixSeries:
    labels: Labels
    ts: IntArray
    values: FloatArray
    starts: IntArray
    ends: IntArray
    drop_name: bool = False
    histogram: BoolArray | None = None


@dataclass(frozen=True)
class Matrix:
    series: list[MatrixSeries]
    range_ms: int
    window_end_ms: IntArray


Value = Scalar | String | Vector | Matrix

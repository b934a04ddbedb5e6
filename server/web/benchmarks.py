"""The benchmark page's rows: each device's latest run judged against its SKU and its fleet,
and the open and recent benchmark requests.

Stage: bench results and requests -> (this) -> the benchmarks and GPU pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from server.bench.fleet import FleetVerdict
from server.bench.model import OPEN_STATES, BenchRequest
from server.bench.results import FigureView
from server.bench.service import BenchService
from server.bench.snapshot import FleetSnapshot

RECENT_REQUESTS = 20


@dataclass(frozen=True)
class BenchRow:
    node: str
    gpu: str  # index
    key: str  # UUID, or <node>/cpu<index>
    model: str
    sku: str
    level: str
    age_seconds: float
    passed: bool
    worst_ratio: float | None  # the lowest figure / SKU reference of its latest figures
    worst_test: str
    outlier: bool
    outlier_reason: str


@dataclass(frozen=True)
class FigureRow:
    """One latest figure of a device, beside its SKU's reference and its fleet's median."""

    test: str
    value: float | None
    unit: str
    verdict: str
    reference: float | None
    ratio: float | None  # value / reference
    fleet_median: float | None
    fleet_ratio: float | None
    outlier: bool
    outlier_reason: str


def bench_rows(bench: BenchService, now: float) -> list[BenchRow]:
    """Returns: each device's latest benchmark run: failed first, then outliers, by node."""
    return _rows(bench.fleet(), now)


def _rows(snapshot: FleetSnapshot, now: float) -> list[BenchRow]:
    worst: dict[str, tuple[float, str]] = {}
    for figure in snapshot.figures:
        if figure.ratio is not None and figure.ratio < worst.get(figure.gpu_key, (math.inf, ""))[0]:
            worst[figure.gpu_key] = (figure.ratio, figure.test)
    rows = []
    for device in snapshot.devices:
        outliers = snapshot.outliers(device.gpu_key)
        ratio, test = worst.get(device.gpu_key, (None, ""))
        rows.append(
            BenchRow(
                node=device.node_name,
                gpu=str(device.gpu_index),
                key=device.gpu_key,
                model=device.device_name,
                sku=device.sku,
                level=device.level,
                age_seconds=max(0.0, now - device.time),
                passed=device.passed,
                worst_ratio=ratio,
                worst_test=test,
                outlier=bool(outliers),
                outlier_reason="; ".join(f"{v.result.test}: {v.reason}" for v in outliers),
            )
        )
    rows.sort(key=lambda r: (r.passed, not r.outlier, r.node, r.gpu, r.key))
    return rows


def figures_of(
    bench: BenchService, gpu_key: str, now: float
) -> tuple[BenchRow | None, list[FigureRow]]:
    """Returns: one device's latest run and its latest figures against SKU and fleet."""
    snapshot = bench.fleet()
    row = next((r for r in _rows(snapshot, now) if r.key == gpu_key), None)
    if row is None:
        return None, []
    figures = [f for f in snapshot.figures if f.gpu_key == gpu_key]
    return row, [_figure_row(snapshot.verdict(gpu_key, f.test), f) for f in figures]


def _figure_row(verdict: FleetVerdict | None, figure: FigureView) -> FigureRow:
    median = verdict.peers.median if verdict is not None and verdict.peers is not None else None
    value = figure.value
    fleet_ratio = value / median if value is not None and median else None
    return FigureRow(
        test=figure.test,
        value=value,
        unit=figure.unit,
        verdict=figure.verdict,
        reference=figure.reference,
        ratio=figure.ratio,
        fleet_median=median,
        fleet_ratio=fleet_ratio,
        outlier=verdict.outlier if verdict is not None else False,
        outlier_reason=verdict.reason if verdict is not None else "",
    )


def bench_requests(bench: BenchService) -> list[BenchRequest]:
    """Returns: the open requests, then the most recent others."""
    recent = bench.requests.recent(limit=RECENT_REQUESTS)
    return sorted(recent, key=lambda r: (r.state not in OPEN_STATES, -r.created_at))

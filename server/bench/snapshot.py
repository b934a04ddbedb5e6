"""The fleet's latest benchmark state, judged, and the ``dcmon_bench_*`` series of it. Pure.

Stage: results (latest figure per device and test, latest run per device) -> (this) -> the
bench API's fleet view, the series loop, ``/metrics`` and the web page. ``FleetSnapshot.of``
judges every device's latest measured figure of each fleet test (``records.is_fleet_test``)
against its (SKU, test) peers with ``fleet.judge``. ``samples`` turns it into series, per
device, labelled like the GPU series they sit beside: ``instance`` (the node), ``gpu`` (its
index), ``UUID`` (the device key: NVML's UUID, or ``<node>/cpu<index>`` on a CPU),
``modelName`` and ``sku``:

- ``dcmon_bench_passed``: 1 if the device passed its latest run, else 0;
- ``dcmon_bench_last_run_timestamp_seconds``: that run's start (agent clock, Unix seconds);
- ``dcmon_bench_fleet_outlier``: 1 if any of its latest figures is a fleet outlier, else 0;
- ``dcmon_bench_ratio{test}``: its latest figure of ``test`` over the SKU's reference, where
  the reference table judged it;
- ``dcmon_bench_fleet_ratio{test}``: that figure over the fleet median of its SKU, where the
  fleet had enough peers to judge it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from server.bench.fleet import FleetVerdict, Peers, Result, judge, peers
from server.bench.records import is_fleet_test
from server.bench.results import DeviceRunView, FigureView

PASSED = "dcmon_bench_passed"
LAST_RUN = "dcmon_bench_last_run_timestamp_seconds"
OUTLIER = "dcmon_bench_fleet_outlier"
RATIO = "dcmon_bench_ratio"
FLEET_RATIO = "dcmon_bench_fleet_ratio"
SERIES_NAMES = (PASSED, LAST_RUN, OUTLIER, RATIO, FLEET_RATIO)

Sample = tuple[str, dict[str, str], float]  # metric, labels, value


@dataclass(frozen=True)
class FleetSnapshot:
    figures: tuple[FigureView, ...]  # each device's latest measured figure per test
    devices: tuple[DeviceRunView, ...]  # each device's latest run
    groups: dict[tuple[str, str], Peers] = field(default_factory=dict)  # (sku, test)
    verdicts: dict[tuple[str, str], FleetVerdict] = field(default_factory=dict)  # (key, test)
    latest_ids: frozenset[int] = frozenset()  # the ids of ``figures``

    @classmethod
    def of(cls, figures: Sequence[FigureView], devices: Sequence[DeviceRunView]) -> FleetSnapshot:
        judged = [f for f in figures if is_fleet_test(f.test) and f.value is not None]
        results = [Result(f.gpu_key, f.sku, f.test, float(f.value or 0.0)) for f in judged]
        verdicts = {(v.result.gpu_uuid, v.result.test): v for v in judge(results)}
        ids = frozenset(f.id for f in figures)
        return cls(tuple(figures), tuple(devices), peers(results), verdicts, ids)

    def verdict(self, gpu_key: str, test: str) -> FleetVerdict | None:
        return self.verdicts.get((gpu_key, test))

    def outliers(self, gpu_key: str) -> list[FleetVerdict]:
        """Returns: the device's latest figures that are fleet outliers."""
        return [v for (key, _), v in self.verdicts.items() if key == gpu_key and v.outlier]


def device_labels(device: DeviceRunView) -> dict[str, str]:
    return {
        "instance": device.node_name,
        "gpu": str(device.gpu_index),
        "UUID": device.gpu_key,
        "modelName": device.device_name,
        "sku": device.sku,
    }


def samples(snapshot: FleetSnapshot) -> list[Sample]:
    """Returns: the ``dcmon_bench_*`` samples of the snapshot (see the module)."""
    out: list[Sample] = []
    labels_of = {d.gpu_key: device_labels(d) for d in snapshot.devices}
    outlier = {key for (key, _), v in snapshot.verdicts.items() if v.outlier}
    for device in snapshot.devices:
        labels = labels_of[device.gpu_key]
        out.append((PASSED, labels, 1.0 if device.passed else 0.0))
        out.append((LAST_RUN, labels, device.time))
        out.append((OUTLIER, labels, 1.0 if device.gpu_key in outlier else 0.0))
    for figure in snapshot.figures:
        own = labels_of.get(figure.gpu_key)
        if own is None:
            continue
        with_test = {**own, "test": figure.test}
        if figure.ratio is not None:
            out.append((RATIO, with_test, figure.ratio))
        verdict = snapshot.verdict(figure.gpu_key, figure.test)
        if verdict is not None and verdict.peers is not None and verdict.peers.median > 0:
            out.append((FLEET_RATIO, with_test, verdict.result.value / verdict.peers.median))
    return out

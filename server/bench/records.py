"""A reported run flattened into the rows the server keeps: one per device, one per figure. Pure.

Stage: bench report -> (this) -> ``results.py``. Each device gets a stable key across runs
(``gpu_key``): its NVML UUID, or ``<node>/<kind><index>`` where it has none (a CPU:
``gpu01/cpu0``), and the SKU it is compared with: the reference table's key, ``cpu:<name>``
for a CPU (so CPU nodes are judged among themselves) and ``<kind>:<name>`` for a GPU the
table does not know.

Figures are judged again here against the server's reference table (``agent.wire.skus``, the
same data the agent judged with, but the server's copy decides, so a table update applies to
every report it receives): a measured figure of a GPU whose SKU the table knows gets the
table's verdict; otherwise the agent's own verdict is kept; a figure that was not measured
(status other than ``ok``) is ``unjudged``. The correctness burn is judged on its own terms,
on any device: no miscompare passes, any miscompare fails. A device passed when its tests passed (no
``fail`` or ``error``), none of its figures fails its SKU and no health check failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.wire.bench import BenchRun, DeviceInfo, DeviceRun, Figure, Judgement
from agent.wire.skus import UNITS, Sku, SkuTable


@dataclass(frozen=True)
class DeviceRecord:
    gpu_key: str
    gpu_index: int
    gpu_uuid: str | None
    kind: str
    device_name: str
    sku: str
    passed: bool


@dataclass(frozen=True)
class FigureRecord:
    gpu_key: str
    gpu_index: int
    gpu_uuid: str | None
    device_name: str
    sku: str
    test: str
    value: float | None
    unit: str
    status: str
    verdict: str
    basis: str | None
    reference: float | None
    ratio: float | None
    reason: str


@dataclass(frozen=True)
class Flattened:
    devices: tuple[DeviceRecord, ...]
    figures: tuple[FigureRecord, ...]


def gpu_key(node_name: str, device: DeviceInfo) -> str:
    """Returns: the device's key across runs: its UUID, else ``<node>/<kind><index>``."""
    return device.uuid or f"{node_name}/{device.kind}{device.index}"


def is_fleet_test(test: str) -> bool:
    """Returns: whether ``test`` is a figure where higher is better (the burn counts
    miscompares, so it is not compared across the fleet)."""
    return not test.startswith("burn")


def flatten(run: BenchRun, node_name: str, table: SkuTable) -> Flattened:
    """Returns: the devices and figures of ``run`` on node ``node_name``, judged."""
    agent_verdicts = {(j.device, j.test): j for j in run.judgement}
    failed_checks = {
        int(index)
        for index, findings in run.checks.items()
        if index.lstrip("-").isdigit() and any(f.level == "fail" for f in findings)
    }
    devices, figures = [], []
    for device_run in run.devices:
        device = device_run.device
        sku = _table_sku(device, table)
        key = gpu_key(node_name, device)
        sku_name = sku_of(device, sku)
        judged = [
            _figure(key, device, sku_name, figure, sku, table, agent_verdicts)
            for figure in device_run.results
        ]
        figures.extend(judged)
        devices.append(
            DeviceRecord(
                gpu_key=key,
                gpu_index=device.index,
                gpu_uuid=device.uuid,
                kind=device.kind,
                device_name=device.name,
                sku=sku_name,
                passed=_passed(device_run, judged, device.index in failed_checks),
            )
        )
    return Flattened(tuple(devices), tuple(figures))


def sku_of(device: DeviceInfo, sku: Sku | None) -> str:
    """Returns: the SKU a device is compared with across the fleet (see the module)."""
    if device.kind == "cpu":
        return f"cpu:{device.name}"
    if sku is not None:
        return sku.key
    return device.sku or f"{device.kind}:{device.name}"


def _table_sku(device: DeviceInfo, table: SkuTable) -> Sku | None:
    if device.kind == "cpu":
        return None
    if device.sku and device.sku in table.skus:
        return table.skus[device.sku]
    return table.find_sku(name=device.name)


def _figure(
    key: str,
    device: DeviceInfo,
    sku_name: str,
    figure: Figure,
    sku: Sku | None,
    table: SkuTable,
    agent_verdicts: dict[tuple[int, str], Judgement],
) -> FigureRecord:
    basis: str | None = None
    reference: float | None = None
    ratio: float | None = None
    verdict, reason = "unjudged", ""
    measured = figure.status == "ok" and figure.value is not None
    theirs = agent_verdicts.get((device.index, figure.test))
    if figure.test.startswith("burn") and figure.status in ("ok", "fail"):
        verdict, reason = _burn_verdict(figure)
    elif not measured:
        reason = f"not measured ({figure.status}){': ' + figure.detail if figure.detail else ''}"
    elif device.kind == "cpu":
        reason = "a CPU, not a GPU"
    elif sku is not None and figure.test in UNITS and figure.value is not None:
        ours = table.judge(sku, figure.test, figure.value)
        verdict, basis, reference, ratio, reason = (
            ours.status,
            ours.basis,
            ours.reference,
            ours.ratio,
            ours.reason,
        )
    elif theirs is not None:
        verdict, basis, reference, ratio, reason = (
            theirs.status,
            theirs.basis,
            theirs.reference,
            theirs.ratio,
            theirs.reason,
        )
    else:
        reason = f"no {figure.test} reference for {device.name}"
    return FigureRecord(
        gpu_key=key,
        gpu_index=device.index,
        gpu_uuid=device.uuid,
        device_name=device.name,
        sku=sku_name,
        test=figure.test,
        value=figure.value,
        unit=figure.unit,
        status=figure.status,
        verdict=verdict,
        basis=basis,
        reference=reference,
        ratio=ratio,
        reason=reason[:2048],
    )


def _burn_verdict(figure: Figure) -> tuple[str, str]:
    """Returns: the burn's verdict on its own terms, for any device: no miscompare passes,
    any miscompare (or no product compared) fails. There is no SKU reference to compare to."""
    count = int(figure.value or 0)
    if figure.status == "ok" and count == 0:
        return "pass", "0 miscompares: every product matched the first"
    return "fail", figure.detail or f"{count} miscompares"


def _passed(device_run: DeviceRun, figures: list[FigureRecord], check_failed: bool) -> bool:
    tests_ok = device_run.passed and all(f.status not in ("fail", "error") for f in figures)
    return tests_ok and not check_failed and all(f.verdict != "fail" for f in figures)

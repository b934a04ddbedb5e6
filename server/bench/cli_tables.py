"""The tables ``dcmon benchmarks`` prints: requests, figures with verdicts, the fleet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.text_table import number, since, table


def requests_table(requests: Sequence[dict[str, Any]], now: float) -> str:
    """Returns: one line per request; its message (why refused, failed...) last."""
    head = ("ID", "NODE", "STATE", "LEVEL", "GPUS", "CREATED", "PROGRESS", "PASSED")
    rows = []
    for r in requests:
        progress = r.get("progress") or {}
        done = f"{progress['done']}/{progress['total']}" if progress.get("total") else "-"
        result = r.get("result")
        passed = "-" if not isinstance(result, dict) else ("yes" if result.get("passed") else "NO")
        gpus = r.get("gpus")
        rows.append(
            (
                str(r["id"]),
                str(r["node"]),
                str(r["state"]) + (" (cancel asked)" if r.get("cancel_requested") else ""),
                str(r["level"]),
                "all" if gpus is None else ",".join(str(g) for g in gpus),
                since(r.get("created_at"), now),
                done,
                passed,
                str(r.get("message") or ""),
            )
        )
    return table(head, rows, f"{len(requests)} requests")


def results_table(figures: Sequence[dict[str, Any]], now: float) -> str:
    """Returns: one line per figure: its value, the SKU verdict and the fleet's (outliers
    marked); the reason of a figure that is not a plain pass last."""
    head = ("NODE", "DEV", "SKU", "TEST", "VALUE", "UNIT", "VERDICT", "VS SKU", "VS FLEET", "TIME")
    rows = []
    for f in figures:
        fleet = f.get("fleet") or {}
        if not fleet:
            versus_fleet = "-"
        elif not fleet.get("judged"):
            versus_fleet = "too few peers"
        else:
            versus_fleet = _ratio(fleet.get("ratio")) + (" OUTLIER" if fleet.get("outlier") else "")
        reasons = [str(f.get("reason") or "")] if f.get("verdict") != "pass" else []
        if fleet.get("outlier"):
            reasons.append(str(fleet.get("reason") or ""))
        rows.append(
            (
                str(f["node"]),
                str(f["gpu_index"]),
                str(f["sku"]),
                str(f["test"]),
                number(f.get("value")),
                str(f.get("unit") or ""),
                str(f["verdict"]),
                _ratio(f.get("ratio")),
                versus_fleet,
                since(f.get("time"), now),
                "; ".join(reason for reason in reasons if reason),
            )
        )
    outliers = sum(1 for f in figures if (f.get("fleet") or {}).get("outlier"))
    failed = sum(1 for f in figures if f.get("verdict") == "fail")
    return table(head, rows, f"{len(figures)} figures, {failed} failed, {outliers} fleet outliers")


def fleet_table(groups: Sequence[dict[str, Any]], gpus: Sequence[dict[str, Any]]) -> str:
    """Returns: the fleet's groups (SKU and test: devices, median, spread, outlier limit),
    then the devices judged outliers."""
    head = ("SKU", "TEST", "DEVICES", "MEDIAN", "SCALED MAD", "OUTLIER BELOW")
    rows = [
        (
            str(g["sku"]),
            str(g["test"]),
            str(g["count"]),
            number(g["median"]),
            number(g["scaled_mad"]),
            number(g["limit"]) if g.get("limit") is not None else "too few to judge",
        )
        for g in groups
    ]
    lines = [table(head, rows, f"{len(groups)} groups")]
    outliers = [g for g in gpus if g["fleet"]["outlier"]]
    device_head = ("NODE", "DEV", "DEVICE", "SKU", "TEST", "VALUE", "VS MEDIAN")
    device_rows = [
        (
            str(g["node"]),
            str(g["gpu_index"]),
            str(g["gpu"]),
            str(g["sku"]),
            str(g["test"]),
            f"{number(g['value'])} {g['unit']}",
            _ratio(g["fleet"].get("ratio")),
            str(g["fleet"].get("reason") or ""),
        )
        for g in outliers
    ]
    lines.append(table(device_head, device_rows, f"{len(outliers)} fleet outliers"))
    return "\n".join(lines)


def _ratio(value: object) -> str:
    return f"{value:.2f}x" if isinstance(value, int | float) else "-"

"""Prometheus beside dcmon for ``bench/promql.py``: the same samples backfilled, then served.

The simulated nodes of ``bench/loadgen.py`` are rendered again from the seed (the very batches
a flat-out plan pushes to dcmon) and written as OpenMetrics text, one file per 2-hour window
aligned as Prometheus aligns its blocks, so each ``promtool tsdb create-blocks-from
openmetrics`` run makes exactly one block and no blocks overlap. Each series gets the labels
dcmon gives it (its own plus ``instance`` = the node's name); no ``# TYPE`` lines, so names stay
as they are. Values are written as Python's shortest round-trip text of the parsed float, so
both sides hold the same doubles; timestamps are seconds with milliseconds, nudged by a quarter
millisecond where the decimal text times 1,000 would fall short of the integer millisecond
(the OpenMetrics parser truncates). Also here: comparing two Prometheus API answers.
"""

from __future__ import annotations

import gzip
import json
import math
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_overhead import BenchError, Child, free_port, http_get, started, wait_until
from loadgen import READY_TIMEOUT_SECONDS, Layout, Plan, SimNode

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
BLOCK_MS = 2 * 3600 * 1000
RELATIVE_TOLERANCE = 1e-9


def prometheus_version() -> str | None:
    """Returns: ``prometheus --version``'s first line, or None when either binary is missing."""
    if not (Path(PROMETHEUS).exists() and Path(PROMTOOL).exists()):
        return None
    done = subprocess.run(
        [PROMETHEUS, "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else "prometheus"


def _label_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _stamp(ts_ms: int) -> str:
    text = f"{ts_ms // 1000}.{ts_ms % 1000:03d}"
    if int(float(text) * 1000) != ts_ms:
        text = repr((ts_ms + 0.25) / 1000)
    return text


def _series_keys(document: dict[str, Any], node: str) -> list[str]:
    keys = []
    for metric in document["metrics"]:
        for labels, _value in metric["samples"]:
            pairs = {**labels, "instance": node}
            inner = ",".join(f'{k}="{_label_text(v)}"' for k, v in sorted(pairs.items()))
            keys.append(f"{metric['name']}{{{inner}}} ")
    return keys


def _values(document: dict[str, Any]) -> list[float]:
    return [float(value) for metric in document["metrics"] for _l, value in metric["samples"]]


def backfill(plan: Plan, scratch: Path, data_dir: Path) -> int:
    """Write ``plan``'s samples into a Prometheus data folder; returns: the samples written."""
    assert plan.ticks is not None
    layout = Layout.build(plan.profile, plan.interval_seconds, plan.extra)
    nodes = [
        SimNode(layout, "dcmon", plan.seed, plan.prefix, i, plan.nodes) for i in range(plan.nodes)
    ]
    interval_ms = round(plan.interval_seconds * 1000)
    keys: dict[int, list[str]] = {}
    written = 0
    tick = 0
    while tick < plan.ticks:
        window = (plan.start_ms + tick * interval_ms) // BLOCK_MS
        path = scratch / f"window-{window}.om"
        with path.open("w") as sink:
            while tick < plan.ticks:
                base = plan.start_ms + tick * interval_ms
                if base // BLOCK_MS != window:
                    break
                for node in nodes:
                    ts_ms = base + node.phase_ms
                    document = json.loads(gzip.decompress(node.render(ts_ms)))
                    names = keys.setdefault(node.index, _series_keys(document, node.name))
                    stamp = " " + _stamp(ts_ms) + "\n"
                    sink.writelines(
                        k + repr(v) + stamp for k, v in zip(names, _values(document), strict=True)
                    )
                    written += len(names)
                tick += 1
            sink.write("# EOF\n")
        done = subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(path), str(data_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        path.unlink()
        if done.returncode != 0:
            raise BenchError(f"promtool failed ({done.returncode}): {done.stderr[-1000:]}")
    return written


@dataclass
class Prometheus:
    child: Child
    port: int


@contextmanager
def prometheus(scratch: Path, data_dir: Path) -> Iterator[Prometheus]:
    """Start Prometheus on ``data_dir`` (no scrape jobs) on a free port; wait for /-/ready."""
    config = scratch / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 10s\nscrape_configs: []\n")
    port = free_port()
    argv = [
        PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y",
        "--log.level=warn",
    ]  # fmt: skip
    with started("Prometheus", argv, scratch / "prometheus.log") as child:
        wait_until(
            "Prometheus to be ready",
            child,
            lambda: http_get(port, "/-/ready", 2.0)[0] == 200,
            READY_TIMEOUT_SECONDS,
        )
        yield Prometheus(child, port)


# --- comparing answers ----------------------------------------------------------------------


def _number(text: str) -> float:
    return float(text)  # "NaN", "+Inf", "-Inf" parse as such


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b))


def _points(data: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    kind, result = data["resultType"], data["result"]
    if kind in ("scalar", "string"):
        return {"(scalar)": [(float(result[0]), _number(result[1]))]}
    out: dict[str, list[tuple[float, float]]] = {}
    for item in result:
        key = json.dumps(item["metric"], sort_keys=True)
        pairs = item["values"] if kind == "matrix" else [item["value"]]
        out[key] = [(float(t), _number(v)) for t, v in pairs]
    return out


def differences(ours: dict[str, Any], theirs: dict[str, Any], limit: int = 3) -> list[str]:
    """Returns: how two ``data`` objects differ (at most ``limit`` lines); empty when equal."""
    if ours["resultType"] != theirs["resultType"]:
        return [f"result type {ours['resultType']} vs {theirs['resultType']}"]
    a, b = _points(ours), _points(theirs)
    problems = [f"only in dcmon: {key}" for key in sorted(a.keys() - b.keys())]
    problems += [f"only in Prometheus: {key}" for key in sorted(b.keys() - a.keys())]
    for key in sorted(a.keys() & b.keys()):
        left, right = a[key], b[key]
        if [t for t, _ in left] != [t for t, _ in right]:
            problems.append(f"{key}: {len(left)} vs {len(right)} points at different times")
            continue
        for (t, x), (_, y) in zip(left, right, strict=True):
            if not _close(x, y):
                problems.append(f"{key} at {t:.3f}: {x!r} vs {y!r}")
                break
    return problems[:limit] + ([f"... {len(problems) - limit} more"] * (len(problems) > limit))

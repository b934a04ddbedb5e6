"""Benchmark figures for simulated GPUs: a scripted scenario modelled on each GPU's SKU.

Stage: a node whose GPUs are simulated (``[gpu] backend = "simulated"``, the demo) -> the
scripted backend. Nothing is measured: each figure is the GPU's SKU reference (the measured
one, else 75 % of the spec, which is what dense products and copies reach in practice) times a
steady per-GPU factor between 0.97 and 1.01, so a fleet of simulated GPUs spreads as healthy
parts of one SKU do. ``degraded`` scales chosen figures of chosen GPUs (the demo's
``DEMO_DEGRADED``: GPU 6 with a slow HBM stack), which is what fleet judgement is there to
catch. The result names the backend ``simulated`` and says, in its note, that nothing was
measured; the health checks, conditions and identity come from the same simulated NVML as
the node's telemetry, so the UUIDs match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.collectors.gpu.backend import NvmlBackend
from agent.statefile import write_atomically
from agent.wire.skus import TESTS, SkuTable

NOTE = (
    "simulated GPUs: figures modelled on each GPU's SKU reference, nothing was measured "
    "(dcmon demo)"
)
DEMO_DEGRADED: Mapping[int, Mapping[str, float]] = {6: {"memory_copy": 0.82}}
SPEC_FRACTION = 0.75
NVLINK_GBPS = 370.0  # a healthy H100 SXM pair, one direction
SECONDS_PER_TEST = 0.2


def scenario(
    nvml: NvmlBackend,
    table: SkuTable,
    *,
    seed: int = 0,
    degraded: Mapping[int, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Returns: a scripted scenario (``agent.bench.scripted``) for the GPUs ``nvml`` shows."""
    count = nvml.device_count()
    devices, device_figures = [], {}
    for index in range(count):
        name = nvml.name(index)
        sku = table.find_sku(name=name)
        figures = {}
        for test in TESTS:
            if sku is None:
                continue
            if test in sku.measured:
                reference = sku.measured[test].value
            elif test in sku.spec:
                reference = sku.spec[test] * SPEC_FRACTION
            else:
                continue
            factor = (degraded or {}).get(index, {}).get(test, 1.0)
            figures[test] = reference * _spread(seed, index, test) * factor
        devices.append({"index": index, "name": name})
        device_figures[str(index)] = figures
    peers = {
        f"{a},{b}": NVLINK_GBPS * _spread(seed, a, f"p2p{b}")
        for a in range(count)
        for b in range(count)
        if a != b
    }
    return {
        "devices": devices,
        "device_figures": device_figures,
        "peer_figures": peers,
        "seconds_per_test": SECONDS_PER_TEST,
        "sleep": True,
        "backend": "simulated",
        "note": NOTE,
    }


def write_scenario(path: Path, data: Mapping[str, Any]) -> Path:
    write_atomically(path, json.dumps(data))
    return path


def _spread(seed: int, index: int, test: str) -> float:
    """Returns: a steady factor in [0.97, 1.01] for one GPU and test."""
    digest = hashlib.sha256(f"{seed}:{index}:{test}".encode()).digest()
    return 0.97 + 0.04 * int.from_bytes(digest[:4], "big") / 0xFFFFFFFF

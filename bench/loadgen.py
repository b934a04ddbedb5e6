"""Simulated GPU nodes pushing batches over real HTTP: the load behind the server benchmarks.

Each simulated node sends what a real agent on an 8-GPU node sends: about 400 series with the
catalog's names and labels (dcgm-exporter's GPU label set, node_exporter's host labels), gauges
that random-walk within their range, counters that only grow (with a rare reset to 0), one batch
per tick. Two encoders carry exactly the same samples (same series, values and timestamps):

- ``dcmon``: gzip JSON per ``agent/wire/schema.py`` to ``POST /api/v1/ingest`` with a bearer
  token; a push counts when the server answers 200 and its Ack says how many samples it stored;
- ``vm``: VictoriaMetrics' JSON line import, ``POST /api/v1/import``, one line per series and one
  request per node batch; a push counts when it answers 204 (VictoriaMetrics acknowledges before
  its data is durable: it buffers about a second in memory; dcmon acknowledges after commit).

Two ways to push:

- paced: every node pushes once per interval in real time, spread evenly over the interval,
  stamped "now"; per-push latency is request sent -> response read, and how late each push
  started against its schedule is recorded too (a late start means every connection was still
  busy with earlier pushes: the server fell behind);
- flat-out: as fast as the connections allow, each node's timestamps marching forward in
  simulated time from a start in the past, so the server sees history, not duplicates; bounded
  by a deadline, by a number of ticks per node (loading history), and never past "now".

The generator must not be the bottleneck: each node's batch is rendered once into a printf
template (literal JSON with a placeholder per value) so a tick is one vectorised update of the
node's values and one ``template % values``; bodies are gzip level 1; worker processes each own
a shard of nodes and a few keep-alive ``http.client`` connections, one thread per connection.
Values depend only on the seed, the node and the tick, so two runs load identical data.

Also here, shared by ``bench/ingest.py`` and ``bench/query.py``: starting a ``dcmon server`` and
VictoriaMetrics on 127.0.0.1 and reading the server's storage report.

Standalone, against a server that is already running:

    .venv/bin/python bench/loadgen.py --port 8470 --token-file agent.token --nodes 100 \\
        --mode paced --seconds 30
    .venv/bin/python bench/loadgen.py --self-test    # one batch of each kind through the wire
                                                     # schema, and the render cost per batch
    .venv/bin/python bench/loadgen.py --smoke        # CI: the self-test, then a fresh server
                                                     # (and VictoriaMetrics) fed flat and paced
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zlib
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from agent_overhead import (
    BenchError,
    Child,
    free_port,
    http_get,
    new_token,
    peer_required,
    smoke_verdict,
    started,
    wait_until,
)

from agent.wire.protocol import LAYOUTS_HEADER

ROOT = Path(__file__).resolve().parents[1]
VICTORIA_METRICS = "/usr/bin/victoria-metrics"
READY_TIMEOUT_SECONDS = 60.0
SETUP_TIMEOUT_SECONDS = 180.0
REQUEST_TIMEOUT_SECONDS = 60.0
GZIP_LEVEL = 1
RESET_SIGMA = 4.5  # a counter resets when its tick's normal draw exceeds this: p ~ 3.4e-6
_MARK_HOST = "@@HOST@@"
_MARK_NODE = "@@NODE@@"
_MARK_TS = "@@TS@@"
_MARK_LAYOUT = "@@LAYOUT@@"
DRIVER_VERSION = "550.90.07"
MODEL_NAME = "NVIDIA H100 80GB HBM3"
PCI_BUSES = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")  # an HGX H100 board's GPU buses

Mode = Literal["paced", "flat"]
TargetKind = Literal["dcmon", "vm"]
Profile = Literal["full", "small"]


# --- the node model ------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesSpec:
    """One series of a simulated node and how its value moves from tick to tick.

    A gauge random-walks by ``step`` (standard deviation per tick) within [lo, hi]; a counter
    grows by about ``rate_per_second`` times the interval each tick and rarely resets to 0;
    with neither it is constant. ``fmt`` is how the agent would print it (%d for integers).
    """

    name: str
    labels: dict[str, str]
    fmt: str
    init: tuple[float, float]
    lo: float = 0.0
    hi: float = math.inf
    step: float = 0.0
    rate_per_second: float = 0.0


def _gpu_labels(gpu: int) -> dict[str, str]:
    return {
        "gpu": str(gpu),
        "UUID": f"@@UUID{gpu}@@",
        "pci_bus_id": f"00000000:{PCI_BUSES[gpu]}:00.0",
        "device": f"nvidia{gpu}",
        "modelName": MODEL_NAME,
        "Hostname": _MARK_HOST,
        "DCGM_FI_DRIVER_VERSION": DRIVER_VERSION,
    }


def _gpu_series(gpus: int, profile: Profile) -> list[SeriesSpec]:
    mib = 81559.0
    # (name, fmt, init, lo, hi, step, rate per second)
    table: list[tuple[str, str, tuple[float, float], float, float, float, float]] = [
        ("DCGM_FI_DEV_GPU_UTIL", "%d", (0, 100), 0, 100, 8, 0),
        ("DCGM_FI_DEV_GPU_TEMP", "%d", (30, 70), 25, 87, 0.7, 0),
        ("DCGM_FI_DEV_POWER_USAGE", "%.3f", (70, 690), 65, 700, 25, 0),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "%d", (1e10, 1e12), 0, math.inf, 0, 4e5),
    ]
    if profile == "full":
        table += [
            ("dcmon_gpu_up", "%d", (1, 1), 0, 1, 0, 0),
            ("DCGM_FI_DEV_MEM_COPY_UTIL", "%d", (0, 60), 0, 100, 5, 0),
            ("DCGM_FI_DEV_FB_USED", "%d", (0, mib), 0, mib, 400, 0),
            ("DCGM_FI_DEV_FB_FREE", "%d", (0, mib), 0, mib, 400, 0),
            ("DCGM_FI_DEV_FB_RESERVED", "%d", (551, 551), 0, mib, 0, 0),
            ("DCGM_FI_DEV_MEMORY_TEMP", "%d", (32, 75), 25, 95, 0.7, 0),
            ("DCGM_FI_DEV_SM_CLOCK", "%d", (1755, 1980), 345, 1980, 40, 0),
            ("DCGM_FI_DEV_MEM_CLOCK", "%d", (2619, 2619), 0, 2619, 0, 0),
            ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "%d", (0, 0), 0, 0, 0, 0),
            ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "%.6f", (0, 1), 0, 1, 0.05, 0),
            ("DCGM_FI_PROF_SM_ACTIVE", "%.6f", (0, 1), 0, 1, 0.05, 0),
            ("DCGM_FI_PROF_SM_OCCUPANCY", "%.6f", (0, 0.5), 0, 1, 0.03, 0),
            ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "%.6f", (0, 0.6), 0, 1, 0.04, 0),
            ("DCGM_FI_PROF_DRAM_ACTIVE", "%.6f", (0, 0.8), 0, 1, 0.04, 0),
            ("DCGM_FI_PROF_PCIE_TX_BYTES", "%d", (1e6, 5e9), 0, 5.5e10, 3e8, 0),
            ("DCGM_FI_PROF_PCIE_RX_BYTES", "%d", (1e6, 5e9), 0, 5.5e10, 3e8, 0),
            ("DCGM_FI_PROF_NVLINK_TX_BYTES", "%d", (0, 1e11), 0, 4.5e11, 5e9, 0),
            ("DCGM_FI_PROF_NVLINK_RX_BYTES", "%d", (0, 1e11), 0, 4.5e11, 5e9, 0),
            ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "%d", (0, 3), 0, math.inf, 0, 1e-4),
            ("DCGM_FI_DEV_POWER_VIOLATION", "%d", (0, 1e9), 0, math.inf, 0, 2e3),
            ("DCGM_FI_DEV_THERMAL_VIOLATION", "%d", (0, 1e7), 0, math.inf, 0, 20),
            ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "%d", (0, 10), 0, math.inf, 0, 2e-4),
            ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "%d", (0, 0), 0, math.inf, 0, 0),
        ]
    specs = [
        SeriesSpec(name, _gpu_labels(gpu), fmt, init, lo, hi, step, rate)
        for name, fmt, init, lo, hi, step, rate in table
        for gpu in range(gpus)
    ]
    if profile == "full":
        for name in ("dcmon_gpu_nvlink_tx_bytes_total", "dcmon_gpu_nvlink_rx_bytes_total"):
            specs += [
                SeriesSpec(
                    name,
                    {**_gpu_labels(gpu), "link": str(link)},
                    "%d",
                    (1e12, 1e14),
                    rate_per_second=2e9,
                )
                for gpu in range(gpus)
                for link in range(4)  # 4 of an H100's 18 links: keeps the node near 400 series
            ]
    return specs


def _host_series(cpus: int) -> list[SeriesSpec]:
    gib = float(1 << 30)
    specs: list[SeriesSpec] = []
    cpu_modes = {
        "user": 0.35, "nice": 0.0, "system": 0.08, "idle": 0.55,
        "iowait": 0.01, "irq": 0.0, "softirq": 0.01, "steal": 0.0,
    }  # fmt: skip
    for cpu in range(cpus):
        for mode, rate in cpu_modes.items():
            specs.append(
                SeriesSpec(
                    "node_cpu_seconds_total",
                    {"cpu": str(cpu), "mode": mode},
                    "%.2f",
                    (1e4 * rate, 1e6 * rate),
                    rate_per_second=rate,
                )
            )
    specs += [
        SeriesSpec("node_load1", {}, "%.2f", (5, 60), 0, 200, 2.0),
        SeriesSpec("node_load5", {}, "%.2f", (5, 60), 0, 200, 0.8),
        SeriesSpec("node_load15", {}, "%.2f", (5, 60), 0, 200, 0.3),
        SeriesSpec("node_procs_running", {}, "%d", (1, 40), 0, 300, 3),
        SeriesSpec("node_procs_blocked", {}, "%d", (0, 2), 0, 20, 0.5),
        SeriesSpec("node_context_switches_total", {}, "%d", (1e9, 1e11), rate_per_second=2e5),
        SeriesSpec("node_intr_total", {}, "%d", (1e9, 1e11), rate_per_second=1e5),
        SeriesSpec("node_forks_total", {}, "%d", (1e6, 1e8), rate_per_second=30),
        SeriesSpec("node_boot_time_seconds", {}, "%d", (1.7e9, 1.7e9)),
        SeriesSpec("node_filefd_allocated", {}, "%d", (5e3, 5e4), 0, 1e6, 50),
        SeriesSpec("node_vmstat_pgfault", {}, "%d", (1e9, 1e11), rate_per_second=5e4),
    ]
    memory = {
        "MemTotal": (2048 * gib, 0.0), "MemFree": (1200 * gib, 2e8),
        "MemAvailable": (1700 * gib, 2e8), "Buffers": (2 * gib, 1e6),
        "Cached": (400 * gib, 1e8), "Active": (300 * gib, 1e8), "Inactive": (200 * gib, 1e8),
        "Dirty": (0.05 * gib, 1e6), "Shmem": (8 * gib, 1e6), "Slab": (20 * gib, 1e6),
        "SwapTotal": (0.0, 0.0), "SwapFree": (0.0, 0.0), "Committed_AS": (600 * gib, 1e8),
        "PageTables": (1 * gib, 1e5), "AnonPages": (250 * gib, 1e8), "Mapped": (10 * gib, 1e6),
    }  # fmt: skip
    for key, (value, step) in memory.items():
        specs.append(
            SeriesSpec(f"node_memory_{key}_bytes", {}, "%d", (value, value), 0, 2048 * gib, step)
        )
    for device, rate in (("eth0", 1e7), ("ib0", 2e9), ("ib1", 2e9), ("lo", 1e5)):
        for name, scale in (
            ("node_network_receive_bytes_total", 1.0),
            ("node_network_transmit_bytes_total", 1.0),
            ("node_network_receive_packets_total", 1 / 4000),
            ("node_network_transmit_packets_total", 1 / 4000),
        ):
            specs.append(
                SeriesSpec(
                    name,
                    {"device": device},
                    "%d",
                    (1e9 * scale, 1e14 * scale),
                    rate_per_second=rate * scale,
                )
            )
    for device, fstype, mountpoint, size in (
        ("/dev/nvme0n1p2", "ext4", "/", 1.8e12),
        ("/dev/nvme0n1p3", "ext4", "/var", 1.0e12),
        ("/dev/md0", "xfs", "/scratch", 3.0e13),
    ):
        labels = {"device": device, "fstype": fstype, "mountpoint": mountpoint}
        specs += [
            SeriesSpec("node_filesystem_size_bytes", labels, "%d", (size, size), 0, size),
            SeriesSpec(
                "node_filesystem_free_bytes", labels, "%d", (0.3 * size, size), 0, size, 5e7
            ),
            SeriesSpec(
                "node_filesystem_avail_bytes", labels, "%d", (0.25 * size, 0.9 * size), 0, size, 5e7
            ),
        ]
    for device in ("nvme0n1", "nvme1n1"):
        for name, rate in (
            ("node_disk_read_bytes_total", 5e7),
            ("node_disk_written_bytes_total", 2e7),
        ):
            specs.append(
                SeriesSpec(name, {"device": device}, "%d", (1e11, 1e14), rate_per_second=rate)
            )
    return specs


def node_series(profile: Profile, extra: Sequence[SeriesSpec] = ()) -> list[SeriesSpec]:
    """Returns: the series of one simulated node, grouped by metric name (family order).

    ``full`` is an 8-GPU H100 node with 8 CPUs' worth of host series (400 series); ``small``
    is 8 GPUs x 4 metrics (32 series), for long histories. ``extra`` (a benchmark's own
    series, e.g. those its rules read) are added to the profile's.
    """
    specs = _gpu_series(8, profile)
    if profile == "full":
        specs += _host_series(8)
    specs += extra
    order: dict[str, int] = {}
    for spec in specs:
        order.setdefault(spec.name, len(order))
    return sorted(specs, key=lambda spec: order[spec.name])  # stable: labels keep their order


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Layout:
    """What every node of a profile shares: templates with per-node marks, value dynamics."""

    profile: Profile
    interval_seconds: float
    series: int
    dcmon_template: str
    compact_template: str
    vm_template: str
    init_lo: np.ndarray[Any, np.dtype[np.float64]]
    init_hi: np.ndarray[Any, np.dtype[np.float64]]
    lo: np.ndarray[Any, np.dtype[np.float64]]
    hi: np.ndarray[Any, np.dtype[np.float64]]
    step: np.ndarray[Any, np.dtype[np.float64]]
    increment: np.ndarray[Any, np.dtype[np.float64]]
    counter: np.ndarray[Any, np.dtype[np.bool_]]

    @classmethod
    def build(
        cls, profile: Profile, interval_seconds: float, extra: Sequence[SeriesSpec] = ()
    ) -> Layout:
        specs = node_series(profile, extra)
        # dcmon: the batch document; the first two placeholders are seq (%d) and timestamp (%s).
        parts = [
            '{"schema_version":1,"node":' + _MARK_NODE + ',"seq":%d,"timestamp":%s,'
            f'"interval_seconds":{interval_seconds!r},"metrics":['
        ]
        previous: str | None = None
        for spec in specs:
            if spec.name != previous:
                if previous is not None:
                    parts.append("]},")
                parts.append('{"name":' + _json(spec.name) + ',"samples":[')
            else:
                parts.append(",")
            parts.append("[" + _escape(_json(spec.labels)) + "," + spec.fmt + "]")
            previous = spec.name
        parts.append("]}]}")
        # dcmon's compact form: the node's layout key (from the first acknowledgement), values.
        compact = (
            '{"schema_version":2,"node":' + _MARK_NODE + ',"seq":%d,"timestamp":%s,'
            f'"interval_seconds":{interval_seconds!r},"layout":"{_MARK_LAYOUT}","values":['
            + ",".join(spec.fmt for spec in specs)
            + "]}"
        )
        # VictoriaMetrics: one JSON line per series; the timestamp mark is replaced per tick.
        lines = [
            '{"metric":'
            + _escape(_json({"__name__": spec.name, "instance": _MARK_HOST, **spec.labels}))
            + ',"values":['
            + spec.fmt
            + '],"timestamps":['
            + _MARK_TS
            + "]}\n"
            for spec in specs
        ]

        def column(values: Sequence[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
            return np.array(values, dtype=np.float64)

        rates = column([spec.rate_per_second for spec in specs])
        return cls(
            profile=profile,
            interval_seconds=interval_seconds,
            series=len(specs),
            dcmon_template="".join(parts),
            compact_template=compact,
            vm_template="".join(lines),
            init_lo=column([spec.init[0] for spec in specs]),
            init_hi=column([spec.init[1] for spec in specs]),
            lo=column([spec.lo for spec in specs]),
            hi=column([spec.hi for spec in specs]),
            step=column([spec.step for spec in specs]),
            increment=rates * interval_seconds,
            counter=rates > 0,
        )


def node_name(prefix: str, index: int) -> str:
    return f"{prefix}{index:04d}"


def node_id(seed: int, prefix: str, index: int) -> str:
    """Returns: a stable 32-hex node id (the wire schema's ``node_id``)."""
    return uuid.uuid5(uuid.NAMESPACE_OID, f"dcmon-bench:{seed}:{prefix}:{index}").hex


class SimNode:
    """One simulated node: its rendered templates, its values, its sequence number."""

    def __init__(
        self,
        layout: Layout,
        kind: TargetKind,
        seed: int,
        prefix: str,
        index: int,
        total: int,
        first_tick: int = 0,
    ) -> None:
        self.index = index
        self.name = node_name(prefix, index)
        self.series = layout.series
        # Spread evenly over the interval, the same in paced and flat-out modes.
        self.phase_ms = round(index * layout.interval_seconds * 1000 / max(total, 1))
        self._layout = layout
        self._kind = kind
        self._rng = np.random.default_rng([seed, zlib.crc32(prefix.encode()), index])
        span = layout.init_hi - layout.init_lo
        self._values = layout.init_lo + span * self._rng.random(layout.series)
        for _ in range(first_tick):  # where an earlier plan left this node
            self.advance()
        self.seq = first_tick
        template = layout.dcmon_template if kind == "dcmon" else layout.vm_template
        identity = _json(
            {"node_id": node_id(seed, prefix, index), "name": self.name, "hostname": self.name}
        )
        template = template.replace(_MARK_NODE, _escape(identity))
        template = template.replace(_MARK_HOST, _escape(self.name))
        self._compact_template = layout.compact_template.replace(_MARK_NODE, _escape(identity))
        self._compact: str | None = None
        """The compact template with this node's layout key, once the server gave one."""
        self.layout_key: str | None = None
        for gpu in range(8):
            gpu_uuid = uuid.uuid5(uuid.NAMESPACE_OID, f"dcmon-bench:{seed}:{self.name}:{gpu}")
            template = template.replace(f"@@UUID{gpu}@@", f"GPU-{gpu_uuid}")
        self._template = template

    def advance(self) -> None:
        """Move every value one tick: gauges walk, counters grow (a rare one resets)."""
        layout = self._layout
        draw = self._rng.standard_normal(layout.series)
        values = self._values
        values += layout.step * draw + layout.increment * (0.7 + 0.3 * np.abs(draw))
        np.clip(values, layout.lo, layout.hi, out=values)
        resets = layout.counter & (draw > RESET_SIGMA)
        if resets.any():
            values[resets] = 0.0

    def learn(self, layout: str | None) -> None:
        """Take the layout key an acknowledgement gave (None: the server no longer holds it,
        the next batch goes in full)."""
        if layout is None:
            self._compact = self.layout_key = None
        elif self._compact is None:
            self._compact = self._compact_template.replace(_MARK_LAYOUT, layout)
            self.layout_key = layout

    def render(self, ts_ms: int) -> bytes:
        """Returns: the next batch at ``ts_ms`` (milliseconds), gzip-compressed; advances.
        A dcmon batch is compact once the node has a layout key (``learn``)."""
        self.advance()
        values = self._values.tolist()
        seconds, millis = divmod(ts_ms, 1000)
        stamp = f"{seconds}.{millis:03d}"
        if self._kind == "dcmon":
            self.seq += 1
            template = self._template if self._compact is None else self._compact
            text = template % (self.seq, stamp, *values)
        else:
            text = (self._template % tuple(values)).replace(_MARK_TS, str(ts_ms))
        return gzip.compress(text.encode(), compresslevel=GZIP_LEVEL, mtime=0)


# --- pushing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where batches go: a dcmon server (with its token) or VictoriaMetrics."""

    kind: TargetKind
    port: int
    token: str = ""
    host: str = "127.0.0.1"
    compact: bool = True
    """dcmon: ask for layout keys and send compact batches once a node has one, as the agent
    does by default (False: every batch in full, as an older agent sends)."""

    @property
    def path(self) -> str:
        return "/api/v1/ingest" if self.kind == "dcmon" else "/api/v1/import"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if self.kind == "dcmon":
            headers["Authorization"] = f"Bearer {self.token}"
            if self.compact:
                headers[LAYOUTS_HEADER] = "1"
        return headers


@dataclass(frozen=True)
class Plan:
    """One load: who pushes where, how, and for how long.

    ``flat``: tick ``k`` of a node is stamped ``start_ms`` + its phase + k intervals; the plan
    pushes ticks ``first_tick`` .. ``first_tick + ticks - 1`` (``ticks`` None: no limit) for at
    most ``seconds`` (None: no limit), and never past now; with ``segments`` > 1 each node's
    ticks are split into that many consecutive runs pushed side by side (each in order, so a
    long history loads over more connections than there are nodes). ``paced``: pushes stamped
    now, once per interval per node, for ``warmup_seconds`` (not recorded) and then ``seconds``.
    """

    target: Target
    mode: Mode
    nodes: int
    connections: int
    workers: int
    profile: Profile = "full"
    interval_seconds: float = 10.0
    seconds: float | None = None
    ticks: int | None = None
    start_ms: int = 0
    first_tick: int = 0
    segments: int = 1
    warmup_seconds: float = 0.0
    prefix: str = "node-"
    first_index: int = 0
    seed: int = 1
    extra: tuple[SeriesSpec, ...] = ()  # series beside the profile's (``node_series``)
    layouts: tuple[tuple[str, str], ...] = ()
    """(node name, layout key) from an earlier plan's ``Tally.layouts``: those nodes send
    compact batches from their first push, as agents that keep running do."""


@dataclass
class Tally:
    """What one worker (or all of them, merged) saw."""

    requests: int = 0
    accepted: int = 0
    compact: int = 0  # accepted pushes that were compact batches (dcmon)
    samples: int = 0
    duplicates: int = 0
    failures: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    lateness: array[float] = field(default_factory=lambda: array("d"))
    reached_now: bool = False
    began: float = math.inf  # monotonic time of the first request sent
    ended: float = 0.0  # monotonic time of the last response read
    cpu_seconds: float = 0.0  # the generator's own CPU
    body_bytes: int = 0
    layouts: dict[str, str] = field(default_factory=dict)
    """Node name -> the layout key the server gave it (dcmon, compact): a later plan's nodes
    start with them (``Plan.layouts``), as running agents keep theirs."""

    def merge(self, other: Tally) -> None:
        self.requests += other.requests
        self.accepted += other.accepted
        self.compact += other.compact
        self.samples += other.samples
        self.duplicates += other.duplicates
        self.failures += other.failures
        self.statuses.update(other.statuses)
        self.errors.extend(other.errors[: max(0, 5 - len(self.errors))])
        self.latencies.extend(other.latencies)
        self.lateness.extend(other.lateness)
        self.reached_now = self.reached_now or other.reached_now
        self.began = min(self.began, other.began)
        self.ended = max(self.ended, other.ended)
        self.cpu_seconds += other.cpu_seconds
        self.body_bytes += other.body_bytes
        self.layouts.update(other.layouts)

    @property
    def window_seconds(self) -> float:
        return max(self.ended - self.began, 1e-9) if self.requests else 0.0

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.window_seconds if self.requests else 0.0

    def latency_ms(self, quantile: float) -> float:
        return percentile(self.latencies, quantile) * 1000

    def lateness_ms(self, quantile: float) -> float:
        return percentile(self.lateness, quantile) * 1000

    def scheduled_latency_ms(self, quantile: float) -> float:
        """Returns: the quantile of due time -> response read (paced mode), in ms: the push
        latency plus any wait for a free connection, what an agent of its own would see."""
        if len(self.lateness) != len(self.latencies):
            return math.nan
        total = [late + took for late, took in zip(self.lateness, self.latencies, strict=True)]
        return percentile(total, quantile) * 1000


def percentile(values: Sequence[float], quantile: float) -> float:
    """Returns: the ``quantile`` (0..1) of ``values`` (nearest rank), NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(quantile * len(ordered)) - 1))
    return ordered[rank]


class _Pusher:
    """One keep-alive connection to the target, used by one thread."""

    def __init__(self, target: Target, tally: Tally, lock: threading.Lock) -> None:
        self._target = target
        self._headers = target.headers()
        self._tally = tally
        self._lock = lock
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def push(
        self,
        body: bytes,
        series: int,
        late: float | None,
        record: bool,
        node: SimNode | None = None,
    ) -> bool:
        """POST one batch (one retry after a dropped keep-alive connection) and count it;
        returns whether it was stored. ``node`` learns the layout key the answer gives, or
        forgets its key on a 409 ``unknown_layout`` (which counts as a failed push).

        Pushes not ``record``-ed (a warm-up) count only when they fail.
        """
        sent = time.monotonic()
        compact = node is not None and node.layout_key is not None  # how it was rendered
        status, data, error = 0, b"", ""
        for _attempt in range(2):
            sent = time.monotonic()
            try:
                if self._connection is None:
                    self._connection = http.client.HTTPConnection(
                        self._target.host, self._target.port, timeout=REQUEST_TIMEOUT_SECONDS
                    )
                self._connection.request("POST", self._target.path, body, self._headers)
                response = self._connection.getresponse()
                data = response.read()
                status = response.status
                if response.will_close:
                    self.close()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                error = f"{type(exc).__name__}: {exc}"
        done = time.monotonic()
        accepted, samples, duplicate, layout = self._judge(status, data, series)
        if node is not None and self._target.kind == "dcmon" and (accepted or status == 409):
            node.learn(layout)
        if not record and accepted:
            return accepted
        with self._lock:
            tally = self._tally
            tally.requests += 1
            tally.body_bytes += len(body)
            tally.began = min(tally.began, sent)
            tally.ended = max(tally.ended, done)
            tally.statuses[str(status) if status else "error"] += 1
            if accepted:
                tally.accepted += 1
                tally.compact += compact
                tally.samples += samples
                tally.duplicates += duplicate
                tally.latencies.append(done - sent)
                if late is not None:
                    tally.lateness.append(late)
            else:
                tally.failures += 1
                if len(tally.errors) < 5:
                    detail = error or data[:300].decode(errors="replace")
                    tally.errors.append(f"{status or 'no answer'}: {detail}")
        return accepted

    def _judge(self, status: int, data: bytes, series: int) -> tuple[bool, int, int, str | None]:
        """Returns: (accepted, samples acknowledged, 1 if a duplicate, the layout key given)."""
        if self._target.kind == "vm":
            return (status == 204, series if status == 204 else 0, 0, None)
        if status != 200:
            return (False, 0, 0, None)
        try:
            ack = json.loads(data)
        except ValueError:
            return (False, 0, 0, None)
        accepted = (True, int(ack.get("samples", 0)), int(ack.get("status") == "duplicate"))
        return (*accepted, ack.get("layout"))


@dataclass
class _Lane:
    """A node's run of ticks [tick, end) in flat-out mode, pushed in order."""

    node: SimNode
    tick: int
    end: float


def _lanes(plan: Plan, layout: Layout, indices: list[int]) -> list[_Lane]:
    """Returns: one lane per node, or ``plan.segments`` per node over consecutive tick ranges."""
    end = math.inf if plan.ticks is None else plan.first_tick + plan.ticks
    segments = plan.segments if plan.mode == "flat" and plan.ticks is not None else 1
    lanes = []
    known = dict(plan.layouts)
    for index in indices:
        for segment in range(segments):
            first = plan.first_tick
            last = end
            if segments > 1:
                assert plan.ticks is not None
                first = plan.first_tick + plan.ticks * segment // segments
                last = plan.first_tick + plan.ticks * (segment + 1) // segments
            node = SimNode(
                layout, plan.target.kind, plan.seed, plan.prefix, index, plan.nodes, first
            )
            if plan.target.kind == "dcmon" and plan.target.compact and node.name in known:
                node.learn(known[node.name])
            lanes.append(_Lane(node, first, last))
    return lanes


def _flat_loop(
    plan: Plan, lanes: list[_Lane], pusher: _Pusher, tally: Tally, stop: threading.Event
) -> None:
    interval_ms = round(plan.interval_seconds * 1000)
    active = list(lanes)
    while active and not stop.is_set():
        for lane in active:
            if stop.is_set():
                return
            node = lane.node
            ts_ms = plan.start_ms + node.phase_ms + lane.tick * interval_ms
            if ts_ms > time.time() * 1000:
                tally.reached_now = True
                lane.end = lane.tick
                continue
            pusher.push(node.render(ts_ms), node.series, None, record=True, node=node)
            lane.tick += 1
        active = [lane for lane in active if lane.tick < lane.end]


def _paced_loop(
    plan: Plan, lanes: list[_Lane], pusher: _Pusher, start_at: float, stop: threading.Event
) -> None:
    assert plan.seconds is not None
    nodes = [lane.node for lane in lanes]
    record_from = start_at + plan.warmup_seconds
    end_at = record_from + plan.seconds
    period = 0
    while True:
        for node in nodes:
            due = start_at + period * plan.interval_seconds + node.phase_ms / 1000
            if due >= end_at:
                return
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            late = time.monotonic() - due
            body = node.render(round(time.time() * 1000))
            pusher.push(body, node.series, late, record=due >= record_from, node=node)
        period += 1


def _worker(plan: Plan, indices: list[int], pipe: multiprocessing.connection.Connection) -> None:
    """One generator process: build its nodes, report ready, push when told, report the tally."""
    try:
        layout = Layout.build(plan.profile, plan.interval_seconds, plan.extra)
        lanes = _lanes(plan, layout, indices)
        threads = max(1, min(plan.connections, len(lanes)))
        shards = [lanes[i::threads] for i in range(threads)]
        pipe.send(("ready", len(lanes)))
        if not pipe.poll(SETUP_TIMEOUT_SECONDS):
            return
        message = pipe.recv()
        if message[0] != "go":
            return
        start_at: float = message[1]
        tally = Tally()
        lock = threading.Lock()
        stop = threading.Event()
        pushers = [_Pusher(plan.target, tally, lock) for _ in shards]
        workers = []
        for shard, pusher in zip(shards, pushers, strict=True):
            if plan.mode == "flat":
                target: Any = _flat_loop
                args: tuple[Any, ...] = (plan, shard, pusher, tally, stop)
            else:
                target, args = _paced_loop, (plan, shard, pusher, start_at, stop)
            workers.append(threading.Thread(target=target, args=args, daemon=True))
        time.sleep(max(0.0, start_at - time.monotonic()))
        cpu_before = time.process_time()
        for thread in workers:
            thread.start()
        deadline = (
            start_at + plan.warmup_seconds + plan.seconds if plan.seconds is not None else math.inf
        )
        last_progress = time.monotonic()
        while any(thread.is_alive() for thread in workers):
            if pipe.poll(0) and pipe.recv()[0] == "stop":
                break
            if time.monotonic() >= deadline:
                break
            if time.monotonic() - last_progress >= 5.0:
                with lock:
                    pipe.send(("progress", tally.requests, tally.samples, tally.failures))
                last_progress = time.monotonic()
            time.sleep(0.05)
        stop.set()
        for thread in workers:
            thread.join(timeout=REQUEST_TIMEOUT_SECONDS + 5)
        for pusher in pushers:
            pusher.close()
        tally.cpu_seconds = time.process_time() - cpu_before
        tally.layouts = {
            lane.node.name: lane.node.layout_key for lane in lanes if lane.node.layout_key
        }
        pipe.send(("done", tally))
    except KeyboardInterrupt:
        pass
    except BaseException as exc:  # noqa: BLE001 (report the worker's failure to the parent)
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))


class LoadRun:
    """The worker processes of one plan: ``start()`` them, then ``finish()``; always ``close()``.

    Use as a context manager so that Ctrl-C or an error ends every worker.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        context = multiprocessing.get_context("spawn")
        indices = list(range(plan.first_index, plan.first_index + plan.nodes))
        workers = max(1, min(plan.workers, plan.nodes))
        per_worker = max(1, plan.connections // workers)
        shard_plan = Plan(**{**plan.__dict__, "connections": per_worker})
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for number in range(workers):
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(shard_plan, indices[number::workers], child),
                name=f"loadgen-{number}",
                daemon=True,
            )
            self._pipes.append(parent)
            self._processes.append(process)
        self.start_at = 0.0

    def __enter__(self) -> LoadRun:
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for pipe in self._pipes:
            with suppress(OSError):
                pipe.send(("stop",))
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for pipe in self._pipes:
            pipe.close()

    def start(self, delay: float = 0.5) -> float:
        """Wait until every worker has built its nodes; returns: the monotonic start time."""
        deadline = time.monotonic() + SETUP_TIMEOUT_SECONDS
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            while not pipe.poll(0.2):
                if not process.is_alive() or time.monotonic() > deadline:
                    raise BenchError(f"load generator {process.name} did not start")
            try:
                message = pipe.recv()
            except EOFError:
                raise BenchError(f"load generator {process.name} died while starting") from None
            if message[0] != "ready":
                raise BenchError(f"load generator {process.name} failed: {message[1]}")
        self.start_at = time.monotonic() + delay
        for pipe in self._pipes:
            pipe.send(("go", self.start_at))
        return self.start_at

    def finish(self, timeout: float, progress: bool = False) -> Tally:
        """Wait for every worker's tally (at most ``timeout`` s); returns: them merged."""
        deadline = time.monotonic() + timeout
        total = Tally()
        pending = dict(zip(self._pipes, self._processes, strict=True))
        counts: dict[int, tuple[int, int, int]] = {}
        last_print = time.monotonic()
        stop_sent = False
        while pending:
            if time.monotonic() > deadline:
                if stop_sent:
                    raise BenchError("the load generators did not stop when asked")
                print(f"    (stopping the load after {timeout:.0f} s: the bound)", flush=True)
                for pipe in pending:
                    pipe.send(("stop",))
                stop_sent = True
                deadline = time.monotonic() + REQUEST_TIMEOUT_SECONDS + 10
            ready = multiprocessing.connection.wait(list(pending), timeout=0.5)
            for item in ready:
                assert isinstance(item, multiprocessing.connection.Connection)
                try:
                    message = item.recv()
                except EOFError:
                    raise BenchError(f"load generator {pending[item].name} died") from None
                if message[0] == "progress":
                    counts[id(item)] = message[1:]
                elif message[0] == "done":
                    total.merge(message[1])
                    del pending[item]
                else:
                    raise BenchError(f"load generator {pending[item].name}: {message[1]}")
            if progress and time.monotonic() - last_print >= 15:
                requests = sum(c[0] for c in counts.values())
                samples = sum(c[1] for c in counts.values())
                elapsed = time.monotonic() - self.start_at
                print(
                    f"    ... {elapsed:.0f} s: {requests} pushes, {samples} samples acknowledged "
                    f"({samples / max(elapsed, 1e-9):,.0f}/s)",
                    flush=True,
                )
                last_print = time.monotonic()
        return total


def run_plan(plan: Plan, timeout: float, progress: bool = False) -> Tally:
    """Run one plan to its end; returns: the merged tally."""
    with LoadRun(plan) as run:
        run.start()
        return run.finish(timeout, progress)


# --- the processes under load ---------------------------------------------------------------


def dcmon_command() -> list[str]:
    """Returns: how to run ``dcmon`` from this interpreter's environment."""
    script = Path(sys.executable).parent / "dcmon"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent"]


@dataclass
class Server:
    child: Child
    port: int
    token: str  # ingest
    data_dir: Path
    read_token: str  # reads (API, /metrics) are closed without one

    def target(self) -> Target:
        return Target("dcmon", self.port, self.token)


@contextmanager
def dcmon_server(
    scratch: Path, *, database_url: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start a fresh ``dcmon server`` on a free port and wait for /readyz."""
    token, digest = new_token()
    read_token, read_digest = new_token()
    port = free_port()
    data_dir = scratch / "dcmon"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [*dcmon_command(), "server", "--data-dir", str(data_dir), "--port", str(port)]
    if database_url:
        argv += ["--database-url", database_url]
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("DCMON_SERVER_")}
    # A list setting: pydantic-settings reads it from the environment as JSON.
    server_env["DCMON_SERVER_INGEST_TOKEN_SHA256"] = json.dumps([digest])
    server_env["DCMON_SERVER_READ_TOKEN_SHA256"] = json.dumps([read_digest])
    server_env.update(env or {})
    with started("dcmon server", argv, scratch / "dcmon-server.log", env=server_env) as child:
        wait_until(
            "the dcmon server to be ready",
            child,
            lambda: http_get(port, "/readyz", 2.0)[0] == 200,
            READY_TIMEOUT_SECONDS,
        )
        yield Server(child, port, token, data_dir, read_token)


def print_setup(database_url: str | None, peer: str | None, no_peer: bool, detail: str) -> None:
    """Print which backend the dcmon server runs on and whether the peer runs (and how)."""
    backend = "PostgreSQL (--database-url)" if database_url else "SQLite in a temporary folder"
    print(f"  dcmon server: {backend}")
    if peer:
        print(f"  peer: {peer}, {detail}")
    elif no_peer:
        print("  peer: skipped (--no-peer)")
    else:
        print(
            "  peer: skipped: /usr/bin/victoria-metrics is missing "
            "(apt-get install victoria-metrics)"
        )


def victoria_metrics_version() -> str | None:
    """Returns: VictoriaMetrics' version, or None when its binary is missing."""
    if not Path(VICTORIA_METRICS).exists():
        return None
    if shutil.which("dpkg-query"):
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "victoria-metrics"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        if done.returncode == 0 and done.stdout.strip():
            return f"VictoriaMetrics {done.stdout.strip()} (Debian)"
    return "VictoriaMetrics"


@dataclass
class Victoria:
    child: Child
    port: int
    data_dir: Path

    def target(self) -> Target:
        return Target("vm", self.port)


@contextmanager
def victoria_metrics(scratch: Path) -> Iterator[Victoria]:
    """Start VictoriaMetrics on a free port with its own storage folder; wait for /health."""
    port = free_port()
    scratch.mkdir(parents=True, exist_ok=True)
    data_dir = scratch / "victoria-metrics"
    argv = [
        VICTORIA_METRICS, f"-storageDataPath={data_dir}", f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y", "-search.disableCache", "-loggerLevel=WARN",
    ]  # fmt: skip
    with started("VictoriaMetrics", argv, scratch / "victoria-metrics.log") as child:
        wait_until(
            "VictoriaMetrics to be ready",
            child,
            lambda: http_get(port, "/health", 2.0)[0] == 200,
            READY_TIMEOUT_SECONDS,
        )
        yield Victoria(child, port, data_dir)


def storage_report(server: Server) -> dict[str, Any] | None:
    """Returns: the server's ``GET /api/v1/storage`` answer, or None when it has no such route."""
    status, text = http_get(server.port, "/api/v1/storage", 30.0, server.read_token)
    if status == 404:
        return None
    if status != 200:
        raise BenchError(f"GET /api/v1/storage answered {status}: {text[:300]}")
    report: dict[str, Any] = json.loads(text)
    return report


@dataclass(frozen=True)
class Compacted:
    """How waiting for compaction ended."""

    report: dict[str, Any] | None  # the last storage report; None: the server has no route
    seconds: float
    outcome: Literal["empty", "stalled", "timed out", "no report"]

    def describe(self) -> str:
        head = (self.report or {}).get("head", {})
        if self.outcome == "empty":
            return f"head empty after {self.seconds:.0f} s"
        if self.outcome == "no report":
            return "GET /api/v1/storage: missing (404), so compaction was not waited for"
        return (
            f"head NOT empty after {self.seconds:.0f} s ({self.outcome}): {head.get('samples')} "
            f"samples in {head.get('rows')} rows"
        )


def wait_compacted(server: Server, timeout: float, stall_seconds: float = 30.0) -> Compacted:
    """Poll the storage report until no samples are left in the head, the head has not
    shrunk for ``stall_seconds`` (open windows, or compaction stuck), or ``timeout``."""
    began = time.monotonic()
    report = storage_report(server)
    last_samples, last_change = -1, began
    while report is not None:
        samples = int(report.get("head", {}).get("samples", 0))
        now = time.monotonic()
        if samples == 0:
            return Compacted(report, now - began, "empty")
        if samples != last_samples:
            last_samples, last_change = samples, now
        elif now - last_change > stall_seconds:
            return Compacted(report, now - began, "stalled")
        if now - began > timeout:
            return Compacted(report, now - began, "timed out")
        time.sleep(1.0)
        report = storage_report(server)
    return Compacted(None, time.monotonic() - began, "no report")


def tree_bytes(path: Path) -> int:
    """Returns: the apparent size of every file under ``path``, in bytes."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


# --- standalone ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="target port on 127.0.0.1")
    parser.add_argument("--target", choices=["dcmon", "vm"], default="dcmon")
    parser.add_argument("--token-file", type=Path, help="ingest token (dcmon target)")
    parser.add_argument("--mode", choices=["paced", "flat"], default="paced")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--history-hours", type=float, default=6.0, help="flat: start this far back"
    )
    parser.add_argument("--profile", choices=["full", "small"], default="full")
    args = parser.parse_args()
    token = args.token_file.read_text().strip() if args.token_file else ""
    if args.target == "dcmon" and not token:
        parser.error("--token-file is needed for a dcmon target")
    interval = 10.0
    start_ms = int((time.time() - args.history_hours * 3600) // interval * interval * 1000)
    plan = Plan(
        Target(args.target, args.port, token),
        args.mode,
        args.nodes,
        args.connections,
        args.workers,
        args.profile,
        interval,
        args.seconds,
        None,
        start_ms,
    )
    try:
        tally = run_plan(plan, args.seconds + 120)
    except BenchError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    describe(tally)
    return 0


def describe(tally: Tally) -> None:
    print(
        f"{tally.requests} pushes ({tally.failures} failed), {tally.samples} samples in "
        f"{tally.window_seconds:.1f} s = {tally.samples_per_second:,.0f} samples/s; latency "
        f"p50 {tally.latency_ms(0.5):.1f} ms, p99 {tally.latency_ms(0.99):.1f} ms; generator "
        f"CPU {tally.cpu_seconds:.1f} s"
    )
    if tally.lateness:
        print(
            f"start lateness p50 {tally.lateness_ms(0.5):.1f} ms, max {max(tally.lateness):.3f} s"
        )
    for error in tally.errors:
        print(f"  error: {error}")


def self_test() -> None:
    """Encode one batch of each kind and check it against the wire schema (a quick sanity run)."""
    sys.path.insert(0, str(ROOT))
    from agent.wire.codec import decode_batch  # noqa: PLC0415 (only for the self-test)
    from agent.wire.schema import CompactBatch  # noqa: PLC0415

    layout = Layout.build("full", 10.0)
    node = SimNode(layout, "dcmon", 1, "node-", 0, 1)
    batch = decode_batch(node.render(1_700_000_000_123), "gzip", 64 << 20)
    vm = SimNode(layout, "vm", 1, "node-", 0, 1)
    lines = gzip.decompress(vm.render(1_700_000_000_123)).decode().splitlines()
    print(f"{batch.sample_count()} samples in {len(batch.metrics)} families; {len(lines)} lines")
    started_at = time.perf_counter()
    count = 2000
    for tick in range(count):
        node.render(1_700_000_000_000 + tick * 10_000)
    each = (time.perf_counter() - started_at) / count
    print(f"render + gzip: {each * 1e6:.0f} us per batch ({layout.series / each:,.0f} samples/s)")
    node.learn("0123456789abcdef" * 2)
    compact = decode_batch(node.render(1_800_000_000_000), "gzip", 64 << 20)
    if not isinstance(compact, CompactBatch) or compact.sample_count() != batch.sample_count():
        raise BenchError(f"the compact batch does not carry the full batch's samples: {compact}")
    started_at = time.perf_counter()
    for tick in range(count):
        node.render(1_800_000_000_000 + tick * 10_000)
    each = (time.perf_counter() - started_at) / count
    print(f"compact render + gzip: {each * 1e6:.0f} us per batch")


SMOKE_NODES = 3
SMOKE_TICKS = 4


def smoke() -> int:
    """The self-test, then a fresh ``dcmon server`` (and VictoriaMetrics, when installed) fed a
    few flat-out ticks and a few paced seconds through the same workers and connections as the
    benchmarks; returns: 0 only if every push was acknowledged with every sample."""
    import tempfile  # noqa: PLC0415 (only the smoke run needs a scratch folder)

    self_test()
    problems: list[str] = []
    series = Layout.build("full", 1.0).series
    start_ms = int((time.time() - 3600) * 1000)
    with tempfile.TemporaryDirectory(prefix="dcmon-bench-loadgen-") as scratch_dir:
        scratch = Path(scratch_dir)
        with dcmon_server(scratch / "dcmon") as server:
            problems += _smoke_target(server.target(), series, start_ms)
            server.child.check_alive()
            status, text = http_get(server.port, "/metrics", 10.0, server.read_token)
            if status != 200 or f'instance="node-{SMOKE_NODES - 1:04d}"' not in text:
                problems.append(f"dcmon: /metrics answered {status} without the pushed nodes")
        if victoria_metrics_version() is not None:
            with victoria_metrics(scratch / "vm") as vm:
                problems += _smoke_target(vm.target(), series, start_ms)
        elif peer_required():
            problems.append(f"{VICTORIA_METRICS} is missing (DCMON_REQUIRE_INTEGRATION=1)")
        else:
            print("  VictoriaMetrics is not installed: its smoke run is skipped")
    return smoke_verdict("loadgen", problems)


def _smoke_target(target: Target, series: int, start_ms: int) -> list[str]:
    """Returns: what failed when ``target`` was fed SMOKE_TICKS flat ticks and 2 s paced."""
    flat = run_plan(
        Plan(target, "flat", SMOKE_NODES, 2, 1, interval_seconds=1.0, ticks=SMOKE_TICKS,
             start_ms=start_ms),
        REQUEST_TIMEOUT_SECONDS,
    )  # fmt: skip
    paced = run_plan(
        Plan(target, "paced", SMOKE_NODES, 2, 1, interval_seconds=1.0, seconds=2.0,
             first_tick=SMOKE_TICKS),
        REQUEST_TIMEOUT_SECONDS,
    )  # fmt: skip
    print(f"  {target.kind} flat:  ", end="")
    describe(flat)
    print(f"  {target.kind} paced: ", end="")
    describe(paced)
    problems = []
    want = SMOKE_NODES * SMOKE_TICKS
    if flat.failures or flat.accepted != want or flat.samples != want * series:
        problems.append(
            f"{target.kind} flat: {flat.accepted}/{want} pushes and {flat.samples:,}/"
            f"{want * series:,} samples acknowledged; {flat.errors}"
        )
    if paced.failures or paced.accepted < SMOKE_NODES or paced.samples != paced.accepted * series:
        problems.append(
            f"{target.kind} paced: {paced.accepted} pushes, {paced.samples:,} samples "
            f"acknowledged, {paced.failures} failed; {paced.errors}"
        )
    return problems


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        sys.exit(0)
    if sys.argv[1:] == ["--smoke"]:
        sys.exit(smoke())
    sys.exit(main())

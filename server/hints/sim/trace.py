"""Trace files -> node and pod tables.

Stage: simulator input. Reads the Alibaba GPU-cluster v2023 CSV files (FGD's openb traces):
nodes ``sn,cpu_milli,memory_mib,gpu,model`` and pods ``name,cpu_milli,memory_mib,num_gpu,
gpu_milli,gpu_spec,qos,...``. Output: column tables (numpy arrays), one row per node or pod.

Units: CPU in milli-cores, memory in MiB, GPU share in milli-GPUs per GPU (1000 = a whole GPU).
A pod's ``gpu_milli`` is normalised as FGD's trace converter does: a share above 1000 is 1000;
a pod asking for GPUs with a share of 0 uses no GPU and is kept as a CPU-only pod.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MILLI = 1000
TRACE_DIR_ENV = "DCMON_TRACE_DIR"
DEFAULT_TRACE_DIR = Path("../shared/data/traces")
TRACE_SUBDIR = "alibaba-gpu-v2023"
NODE_FILE = "openb_node_list_gpu_node.csv"
DEFAULT_WORKLOAD = "openb_pod_list_default"

IntArray = npt.NDArray[np.int64]


class TraceError(ValueError):
    """A trace file is missing, or a row does not parse."""


@dataclass(frozen=True, eq=False)
class NodeTable:
    """Nodes: capacity per node (milli-cores, MiB, GPUs) and GPU model ("" = no GPU)."""

    names: tuple[str, ...]
    cpu_milli: IntArray
    memory_mib: IntArray
    num_gpu: IntArray
    model: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.names)
        for column in (self.cpu_milli, self.memory_mib, self.num_gpu):
            if column.shape != (n,):
                raise TraceError(f"node column of shape {column.shape}, expected ({n},)")
        if len(self.model) != n:
            raise TraceError("node models do not match the node count")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def total_gpus(self) -> int:
        return int(self.num_gpu.sum())

    @property
    def total_gpu_milli(self) -> int:
        return self.total_gpus * MILLI

    @property
    def max_gpus_per_node(self) -> int:
        return int(self.num_gpu.max()) if len(self) else 0


@dataclass(frozen=True, eq=False)
class PodTable:
    """Pod requests: milli-cores, MiB, GPU count, milli-GPUs per GPU, allowed GPU models, QoS.

    ``gpu_spec`` is the set of GPU models a pod may use, "|"-separated as in the trace; "" means
    any model.
    """

    names: tuple[str, ...]
    cpu_milli: IntArray
    memory_mib: IntArray
    num_gpu: IntArray
    gpu_milli: IntArray
    gpu_spec: tuple[str, ...]
    qos: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.names)
        for column in (self.cpu_milli, self.memory_mib, self.num_gpu, self.gpu_milli):
            if column.shape != (n,):
                raise TraceError(f"pod column of shape {column.shape}, expected ({n},)")
        if len(self.gpu_spec) != n or len(self.qos) != n:
            raise TraceError("pod gpu_spec/qos do not match the pod count")
        bad = (self.num_gpu > 0) & ((self.gpu_milli <= 0) | (self.gpu_milli > MILLI))
        bad |= (self.num_gpu == 0) & (self.gpu_milli != 0)
        bad |= (self.num_gpu > 1) & (self.gpu_milli != MILLI)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise TraceError(
                f"pod {self.names[row]}: {self.num_gpu[row]} GPUs x {self.gpu_milli[row]} milli"
                " (a share is 1..1000 milli of one GPU; several GPUs are whole)"
            )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def gpu_milli_total(self) -> IntArray:
        """Per pod: GPU milli requested over all its GPUs."""
        return self.num_gpu * self.gpu_milli


def allowed_models(spec: str) -> frozenset[str]:
    """Returns: the GPU models a ``gpu_spec`` allows; empty = any model."""
    return frozenset(part for part in spec.split("|") if part)


def _rows(path: Path, columns: Iterable[str]) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = set(columns) - set(reader.fieldnames or ())
            if missing:
                raise TraceError(f"{path}: missing columns {sorted(missing)}")
            return list(reader)
    except OSError as exc:
        raise TraceError(f"cannot read {path}: {exc}") from exc


def _int(path: Path, row: dict[str, str], key: str) -> int:
    try:
        return int(row[key] or 0)
    except ValueError as exc:
        raise TraceError(f"{path}: {key}={row[key]!r} is not an integer") from exc


def load_nodes(path: Path) -> NodeTable:
    """Reads a node list (``sn,cpu_milli,memory_mib,gpu,model``)."""
    rows = _rows(path, ("sn", "cpu_milli", "memory_mib", "gpu", "model"))
    num_gpu = np.array([_int(path, r, "gpu") for r in rows], dtype=np.int64)
    return NodeTable(
        names=tuple(r["sn"] for r in rows),
        cpu_milli=np.array([_int(path, r, "cpu_milli") for r in rows], dtype=np.int64),
        memory_mib=np.array([_int(path, r, "memory_mib") for r in rows], dtype=np.int64),
        num_gpu=num_gpu,
        model=tuple(r["model"] if g > 0 else "" for r, g in zip(rows, num_gpu, strict=True)),
    )


def load_pods(path: Path) -> PodTable:
    """Reads a pod list (``name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,...``)."""
    rows = _rows(path, ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"))
    num_gpu = np.array([_int(path, r, "num_gpu") for r in rows], dtype=np.int64)
    share = np.array([_int(path, r, "gpu_milli") for r in rows], dtype=np.int64)
    share = np.where(num_gpu > 0, np.clip(share, 0, MILLI), 0)
    num_gpu = np.where(share > 0, num_gpu, 0)
    return PodTable(
        names=tuple(r["name"] for r in rows),
        cpu_milli=np.array([_int(path, r, "cpu_milli") for r in rows], dtype=np.int64),
        memory_mib=np.array([_int(path, r, "memory_mib") for r in rows], dtype=np.int64),
        num_gpu=num_gpu,
        gpu_milli=share,
        gpu_spec=tuple(r.get("gpu_spec") or "" for r in rows),
        qos=tuple(r.get("qos") or "" for r in rows),
    )


def default_trace_dir() -> Path:
    """Returns: ``$DCMON_TRACE_DIR`` if set, else ``../shared/data/traces`` from here."""
    return Path(os.environ.get(TRACE_DIR_ENV) or DEFAULT_TRACE_DIR)


def trace_files(trace_dir: Path, workload: str = DEFAULT_WORKLOAD) -> tuple[Path, Path]:
    """Returns: (node file, pod file) under ``trace_dir`` or its ``alibaba-gpu-v2023/``."""
    for folder in (trace_dir / TRACE_SUBDIR, trace_dir):
        nodes, pods = folder / NODE_FILE, folder / f"{workload}.csv"
        if nodes.is_file() and pods.is_file():
            return nodes, pods
    raise TraceError(
        f"no {NODE_FILE} and {workload}.csv in {trace_dir} or {trace_dir / TRACE_SUBDIR}"
        f" (set --trace-dir or ${TRACE_DIR_ENV})"
    )


def load_trace(trace_dir: Path, workload: str = DEFAULT_WORKLOAD) -> tuple[NodeTable, PodTable]:
    """Returns: the GPU node list and the named pod list of a trace folder."""
    nodes, pods = trace_files(trace_dir, workload)
    return load_nodes(nodes), load_pods(pods)

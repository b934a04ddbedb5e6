"""The metric catalog: every metric dcmon emits, as data.

Input: the TOML files in ``agent/wire/catalog/`` (one per source area). Output: a ``Catalog`` of
``MetricSpec`` entries (name, exposition type, unit, label names, help, source). Collectors,
exposition, dashboards, rules and the contract tests all read this one table.

File format::

    [label_sets]
    gpu = ["gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"]

    [[metric]]
    name = "DCGM_FI_DEV_GPU_UTIL"
    type = "gauge"            # counter | gauge | histogram | untyped (text format types)
    unit = "percent"
    labels = ["@gpu"]         # "@name" expands a label set of the same file
    help = "GPU utilization (in %)."
    source = "gpu"            # the collector (or "server") that produces it
    monotonic = true          # optional; defaults to type == "counter"
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from agent.wire.schema import LABEL_NAME_RE, METRIC_NAME_RE

MetricType = Literal["counter", "gauge", "histogram", "untyped"]
_TYPES: frozenset[str] = frozenset({"counter", "gauge", "histogram", "untyped"})


class CatalogError(ValueError):
    """A catalog file is malformed; raised at load time with the file and entry named."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: its exposition name and type, unit, label names and origin."""

    name: str
    type: MetricType
    unit: str
    labels: tuple[str, ...]
    help: str
    source: str
    monotonic: bool

    @property
    def label_set(self) -> frozenset[str]:
        return frozenset(self.labels)


class Catalog(Mapping[str, MetricSpec]):
    """An immutable name -> spec mapping."""

    def __init__(self, specs: Iterable[MetricSpec]) -> None:
        self._specs: dict[str, MetricSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise CatalogError(f"metric {spec.name!r} is listed twice")
            self._specs[spec.name] = spec

    def __getitem__(self, name: str) -> MetricSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def from_source(self, source: str) -> list[MetricSpec]:
        """Returns: the specs a given collector (or "server") produces, in file order."""
        return [spec for spec in self._specs.values() if spec.source == source]


@cache
def default_catalog() -> Catalog:
    """Returns: the catalog shipped with dcmon (loaded once, then cached)."""
    folder = resources.files("agent.wire").joinpath("catalog")
    specs: list[MetricSpec] = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".toml"):
            specs.extend(parse_catalog(entry.read_text(encoding="utf-8"), entry.name))
    return Catalog(specs)


def parse_catalog(text: str, origin: str) -> list[MetricSpec]:
    """Parse one catalog file.

    Raises:
        CatalogError: the file is not valid TOML or an entry is malformed.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{origin}: {exc}") from None
    label_sets = document.get("label_sets", {})
    return [_parse_entry(entry, label_sets, origin) for entry in document.get("metric", [])]


def _parse_entry(
    entry: dict[str, Any], label_sets: dict[str, list[str]], origin: str
) -> MetricSpec:
    name = entry.get("name", "")
    where = f"{origin}: metric {name!r}"
    if not isinstance(name, str) or not METRIC_NAME_RE.match(name):
        raise CatalogError(f"{where}: invalid metric name")
    unknown = set(entry) - {"name", "type", "unit", "labels", "help", "source", "monotonic"}
    if unknown:
        raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
    metric_type = entry.get("type")
    if metric_type not in _TYPES:
        raise CatalogError(f"{where}: type must be one of {sorted(_TYPES)}")
    for key in ("unit", "help", "source"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise CatalogError(f"{where}: {key} must be a non-empty string")
    labels: list[str] = []
    for label in entry.get("labels", []):
        if label.startswith("@"):
            if label[1:] not in label_sets:
                raise CatalogError(f"{where}: unknown label set {label!r}")
            labels.extend(label_sets[label[1:]])
        else:
            labels.append(label)
    for label in labels:
        if not LABEL_NAME_RE.match(label):
            raise CatalogError(f"{where}: invalid label name {label!r}")
    if len(set(labels)) != len(labels):
        raise CatalogError(f"{where}: a label is listed twice")
    return MetricSpec(
        name=name,
        type=metric_type,
        unit=entry["unit"],
        labels=tuple(labels),
        help=entry["help"],
        source=entry["source"],
        monotonic=bool(entry.get("monotonic", metric_type == "counter")),
    )

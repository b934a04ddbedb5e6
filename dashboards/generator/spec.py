"""The dashboards' specs: compact descriptions of dashboards, rows, panels and queries.

Stage: dashboards (build time). Input: none; output: the frozen dataclasses each dashboard
module fills (``Dashboard`` of ``Row``s of ``Panel``s with their ``Query``s, ``Variable``s,
threshold ``Step``s, ``ValueMap``s and drill-down ``Link``s), the panel kinds, and ``stat``,
the shorthand for a small one-query stat panel. ``grafana.build`` turns a spec into Grafana's
model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GRID_COLUMNS = 24
TAG = "dcmon"
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}
MIB_BYTES = 1048576  # DCGM reports framebuffer memory in MiB
TIME_SERIES = "timeseries"
STAT = "stat"
TABLE = "table"
BAR_GAUGE = "bargauge"
STATE_TIMELINE = "state-timeline"
INSTANT_KINDS = (STAT, TABLE, BAR_GAUGE)  # one value per series: instant queries
JSON = dict[str, Any]


@dataclass(frozen=True)
class ValueMap:
    """A value mapping: the value ``value`` reads ``text`` in ``color``."""

    value: str
    text: str
    color: str


@dataclass(frozen=True)
class Query:
    """One target: a PromQL expression, its legend, in a table its value's header, and a unit
    and value mappings of its own where they differ from the panel's."""

    expr: str
    legend: str = ""
    column: str = ""
    unit: str = ""
    mappings: tuple[ValueMap, ...] = ()


@dataclass(frozen=True)
class Step:
    """A threshold step: from ``value`` (None: the base) up, the colour ``color``."""

    value: float | None
    color: str


@dataclass(frozen=True)
class Link:
    """A drill-down: the dashboard ``dcmon-<target>``, its variables set from the clicked
    series' labels (``variable -> label``)."""

    target: str
    title: str
    variables: Mapping[str, str]


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    width: int = 8
    height: int = 8
    steps: tuple[Step, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    decimals: int | None = None
    mappings: tuple[ValueMap, ...] = ()
    link: Link | None = None
    no_value: str | None = None
    stack: bool = False
    columns: tuple[tuple[str, str], ...] = ()  # table: (label, header) shown before the values


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A query variable from ``label_values(...)``; ``numeric`` sorts its values as numbers."""

    name: str
    label: str
    query: str
    multi: bool = False
    include_all: bool = False
    numeric: bool = False


@dataclass(frozen=True)
class Dashboard:
    name: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    time_from: str = "now-1h"

    @property
    def uid(self) -> str:
        return f"dcmon-{self.name}"


def stat(
    title: str,
    expr: str,
    unit: str = "short",
    *,
    legend: str = "",
    description: str = "",
    steps: tuple[Step, ...] = (),
    mappings: tuple[ValueMap, ...] = (),
    no_value: str | None = None,
    decimals: int | None = None,
    width: int = 4,
    height: int = 4,
) -> Panel:
    """Returns: a one-query stat panel, small by default (six to a line)."""
    return Panel(
        title, STAT, (Query(expr, legend),), unit, description=description, width=width,
        height=height, steps=steps, decimals=decimals, mappings=mappings, no_value=no_value,
    )  # fmt: skip

"""Typed rule files: what ``load`` produces and ``group``, ``compile`` and ``export`` consume.

A rule file holds groups of rules, in Prometheus' format. dcmon's optional extensions to an
alerting rule sit under one key, ``dcmon``, so a reader can tell them apart and ``export`` can
strip them:

    dcmon:
      hold: DCGM_FI_DEV_GPU_TEMP > 80   # hysteresis: once firing, stay firing while this holds
      no_data: keep_state               # ok (Prometheus' behaviour) | keep_state | alerting
      data: DCGM_FI_DEV_GPU_TEMP        # what "no data" means: absent(<data>); default: the
                                        # expression's only metric selector
      notify_delay: 2m                  # notify only once an alert has fired this long

Hysteresis clears only after ``hold`` (and ``expr``) stopped returning the alert's series for
``keep_firing_for``, the rule's own clear duration. Durations are milliseconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

Pairs = tuple[tuple[str, str], ...]
"""Label or annotation pairs in file order (templates not yet expanded)."""


class NoData(enum.Enum):
    """What an alerting rule does while its data is absent."""

    OK = "ok"  # Prometheus' behaviour: no result, so firing alerts resolve
    KEEP_STATE = "keep_state"  # firing alerts keep firing (pending ones start over)
    ALERTING = "alerting"  # the absence itself is an alert (labels from absent())


@dataclass(frozen=True)
class Extensions:
    """dcmon's additions to an alerting rule (all optional)."""

    hold: str | None = None
    no_data: NoData = NoData.OK
    data: str | None = None
    notify_delay_ms: int = 0

    @property
    def empty(self) -> bool:
        return self == Extensions()


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str
    labels: Pairs = ()
    line: int = 0

    @property
    def name(self) -> str:
        return self.record


@dataclass(frozen=True)
class AlertingRule:
    alert: str
    expr: str
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    labels: Pairs = ()
    annotations: Pairs = ()
    dcmon: Extensions = field(default_factory=Extensions)
    line: int = 0

    @property
    def name(self) -> str:
        return self.alert


Rule = RecordingRule | AlertingRule


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Rule, ...]
    interval_ms: int | None = None  # None: the evaluator's default interval
    query_offset_ms: int | None = None  # None: the evaluator's default offset (0)
    limit: int = 0  # 0: unlimited
    labels: Pairs = ()  # added to every rule's output (Prometheus 3.x groups)


@dataclass(frozen=True)
class RuleFile:
    path: str
    groups: tuple[Group, ...]

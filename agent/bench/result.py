"""The benchmark run's result: a tree of frozen dataclasses that serialises to JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.bench.backend import Device

#: ok: measured (and, for the burn, no miscompare); fail: the burn miscompared; error: the
#: test raised; unsupported / not_applicable: the backend or device cannot or need not run it;
#: skipped: the level's time budget was spent before the test could start.
Status = Literal["ok", "fail", "error", "unsupported", "not_applicable", "skipped"]
Param = int | float | str


@dataclass(frozen=True)
class BenchResult:
    """One test on one device: its figure in ``unit``, parameters and wall duration."""

    test: str
    device: int
    status: Status
    value: float | None
    unit: str
    params: dict[str, Param]
    duration_s: float
    detail: str = ""
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceReport:
    device: Device
    results: tuple[BenchResult, ...]

    @property
    def passed(self) -> bool:
        """True when no test failed or raised (unsupported and skipped tests do not fail)."""
        return all(r.status not in ("fail", "error") for r in self.results)


@dataclass(frozen=True)
class RunResult:
    level: str
    backend: str
    started_at: float  # Unix seconds
    duration_s: float
    devices: tuple[DeviceReport, ...]
    note: str = ""

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.devices)

    def to_dict(self) -> dict[str, Any]:
        tree = dataclasses.asdict(self)
        tree["passed"] = self.passed
        for report, data in zip(self.devices, tree["devices"], strict=True):
            data["passed"] = report.passed
        return tree

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

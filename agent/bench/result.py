"""The benchmark run's result: a tree of frozen dataclasses that serialises to JSON.

``to_dict`` gives plain lists and dicts, the shape ``agent.wire.bench`` validates: a test's
``conditions`` (what NVML saw while it ran, attached by the job) are left out where there are
none, as on a CPU.
"""

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
Spread = tuple[float, float, float]  # min, median, max


@dataclass(frozen=True)
class Conditions:
    """What a GPU did during one test: NVML samples taken while it ran.

    Each spread is (min, median, max), empty when no sample had the reading; units are in the
    names. ``throttle_reasons`` are the clock-event reasons any sample showed, by NVML's name.
    """

    samples: int
    sm_clock_mhz: Spread | tuple[()] = ()
    power_w: Spread | tuple[()] = ()
    temperature_c: Spread | tuple[()] = ()
    throttle_reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "sm_clock_mhz": list(self.sm_clock_mhz),
            "power_w": list(self.power_w),
            "temperature_c": list(self.temperature_c),
            "throttle_reasons": list(self.throttle_reasons),
        }


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
    conditions: Conditions | None = None

    def to_dict(self) -> dict[str, Any]:
        tree = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        tree["params"], tree["extra"] = dict(self.params), dict(self.extra)
        if self.conditions is None:
            del tree["conditions"]
        else:
            tree["conditions"] = self.conditions.to_dict()
        return tree


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
    """A run; ``complete`` is False when it stopped early (cancelled, or the worker died),
    and such a run never passes, whatever its finished tests say."""

    level: str
    backend: str
    started_at: float  # Unix seconds
    duration_s: float
    devices: tuple[DeviceReport, ...]
    note: str = ""
    complete: bool = True

    @property
    def passed(self) -> bool:
        return self.complete and all(d.passed for d in self.devices)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "backend": self.backend,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "note": self.note,
            "complete": self.complete,
            "passed": self.passed,
            "devices": [
                {
                    "device": dataclasses.asdict(report.device),
                    "results": [r.to_dict() for r in report.results],
                    "passed": report.passed,
                }
                for report in self.devices
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

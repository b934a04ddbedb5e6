"""The pressure collector: PSI totals in seconds, optional files."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from agent.collectors.host import pressure
from agent.collectors.host._files import MalformedFileError, read_optional
from agent.collectors.host.pressure import PressureCollector
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, names, tree_paths, value, write_tree


def test_gpu_server_all_four_resources() -> None:
    samples = PressureCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_pressure_cpu_waiting_seconds_total") == 98765.432101
    assert value(samples, "node_pressure_memory_waiting_seconds_total") == 1.234567
    assert value(samples, "node_pressure_memory_stalled_seconds_total") == 0.654321
    assert value(samples, "node_pressure_io_waiting_seconds_total") == 5432.109876
    assert value(samples, "node_pressure_io_stalled_seconds_total") == 4321.098765
    assert value(samples, "node_pressure_irq_stalled_seconds_total") == 7.654321
    assert len(samples) == 6  # cpu "full" is not exported, as in node_exporter
    assert_conforms(samples, source="pressure")


def test_recorded_vm_without_irq_accounting_has_no_irq_metric() -> None:
    samples = PressureCollector(tree_paths(RECORDED)).collect(0.0)

    assert value(samples, "node_pressure_cpu_waiting_seconds_total") == 3.554856
    assert "node_pressure_irq_stalled_seconds_total" not in names(samples)
    assert len(samples) == 5


def test_kernel_without_psi_yields_nothing(scratch: Path) -> None:
    assert PressureCollector(write_tree(scratch, {"proc/stat": ""})).collect(0.0) == []


def test_psi_disabled_at_boot_yields_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path) -> str | None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported", str(path))

    monkeypatch.setattr(pressure, "read_optional", refuse)

    assert PressureCollector(tree_paths(GPU_SERVER)).collect(0.0) == []


def test_irq_refused_alone_keeps_the_other_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse_irq(path: Path) -> str | None:
        if path.name == "irq":
            raise OSError(errno.EOPNOTSUPP, "Operation not supported", str(path))
        return read_optional(path)

    monkeypatch.setattr(pressure, "read_optional", refuse_irq)

    samples = PressureCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert len(samples) == 5
    assert "node_pressure_irq_stalled_seconds_total" not in names(samples)


def test_permission_denied_is_an_error_not_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    def deny(path: Path) -> str | None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(pressure, "read_optional", deny)

    with pytest.raises(PermissionError):
        PressureCollector(tree_paths(GPU_SERVER)).collect(0.0)


@pytest.mark.parametrize(
    "text",
    ["some avg10=0.00 avg60=0.00\n", "some avg10=0.00 total=lots\n"],
    ids=["no-total", "nan"],
)
def test_malformed_psi_file_raises(scratch: Path, text: str) -> None:
    paths = write_tree(scratch, {"proc/pressure/io": text})

    with pytest.raises(MalformedFileError, match="pressure/io"):
        PressureCollector(paths).collect(0.0)

"""The benchmark's pre- and post-checks over the scripted NVML backend: a healthy GPU has no
finding; each fault the health job must catch gives its finding, and an error counter that
changes between pre and post fails the run."""

from __future__ import annotations

from agent.bench.checks import Health, Identity, findings, identity, snapshot
from agent.collectors.gpu.backend import (
    ClocksEventReason,
    FieldId,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlTimeout,
    PcieLink,
    RemappedRows,
)
from agent.collectors.gpu.scripted import DeviceScript, ScriptedBackend, sequence
from agent.wire.skus import default_table

H100 = default_table().skus["h100_sxm"]


def _backend(**changes: object) -> ScriptedBackend:
    script = DeviceScript(uuid="GPU-a", pci_bus_id="00000000:18:00.0", minor_number=0)
    for name, value in changes.items():
        setattr(script, name, value)
    backend = ScriptedBackend([script])
    backend.init()
    return backend


def _checks(backend: ScriptedBackend) -> list[tuple[str, str]]:
    before, after = snapshot(backend, 0), snapshot(backend, 0)
    return [(f.level, f.check) for f in findings(before, after, H100)]


def test_a_healthy_gpu_has_no_finding_and_its_facts_are_read() -> None:
    backend = _backend(pcie_link=PcieLink(5, 16, 5, 16))
    health = snapshot(backend, 0)
    assert health.ecc_dbe_volatile == 0 and health.remapped == RemappedRows(0, 0, False, False)
    assert (health.persistence, health.power_limit_w) == (True, 700.0)
    assert health.compute_processes == 0 and health.errors == {}
    assert findings(health, snapshot(backend, 0), H100) == []


def test_each_standing_fault_is_found() -> None:
    assert ("fail", "pcie") in _checks(_backend(pcie_link=PcieLink(5, 8, 5, 16)))  # x8 of x16
    assert ("fail", "pcie") in _checks(_backend(pcie_link=PcieLink(2, 16, 5, 16)))  # below gen 3
    assert ("warn", "pcie") in _checks(_backend(pcie_link=PcieLink(4, 16, 5, 16)))
    pending = RemappedRows(0, 1, pending=True, failure=False)
    assert ("fail", "row_remap") in _checks(_backend(remapped_rows=pending))
    assert ("warn", "persistence") in _checks(_backend(persistence_mode=False))
    assert ("warn", "power_limit") in _checks(_backend(enforced_power_limit_mw=500_000))
    fields = {(int(FieldId.ECC_DBE_VOL_TOTAL), 0): 2.0, (int(FieldId.RETIRED_PENDING), 0): 1.0}
    found = _checks(_backend(fields=fields))
    assert ("fail", "ecc") in found and ("fail", "retired_pages") in found


def test_a_counter_that_changes_during_the_run_fails_it() -> None:
    dbe = {(int(FieldId.ECC_DBE_VOL_TOTAL), 0): sequence(0.0, 1.0)}
    assert _checks(_backend(fields=dbe)) == [("fail", "ecc")]
    rows = sequence(RemappedRows(0, 0, False, False), RemappedRows(0, 2, True, False))
    assert set(_checks(_backend(remapped_rows=rows))) == {("fail", "row_remap")}
    link = sequence(PcieLink(5, 16, 5, 16), PcieLink(5, 8, 5, 16))
    assert ("fail", "pcie") in _checks(_backend(pcie_link=link))
    slowed = sequence(0x1, int(ClocksEventReason.HW_THERMAL_SLOWDOWN))
    assert _checks(_backend(clocks_event_reasons=slowed)) == [("fail", "clocks")]
    replays = sequence(0, 500)
    assert _checks(_backend(pcie_replay_count=replays)) == [("warn", "pcie")]
    few = sequence(0, 3)  # a few replays are normal
    assert _checks(_backend(pcie_replay_count=few)) == []


def test_an_unsupported_reading_is_absent_and_a_failing_one_is_kept_as_an_error() -> None:
    backend = _backend(
        remapped_rows=NvmlNotSupported("no row remapping", code=3),
        pcie_replay_count=NvmlTimeout("the driver timed out", code=10),
        fields={},
    )
    health = snapshot(backend, 0)
    assert health.remapped is None and health.ecc_dbe_volatile is None
    assert set(health.errors) == {"pcie_replays"} and not health.lost
    assert findings(health, health, H100) == []  # nothing is guessed from missing facts
    assert findings(Health(0), Health(0)) == []


def test_a_gpu_lost_during_the_run_fails_it_and_names_nvmls_words() -> None:
    backend = _backend()
    before = snapshot(backend, 0)
    backend.fail_device(0, NvmlGpuLost("nvmlDeviceGetPcieReplayCounter: GPU is lost", code=15))
    after = snapshot(backend, 0)
    assert after.lost and not before.lost and after.compute_processes is None
    (finding,) = findings(before, after, H100)
    assert (finding.level, finding.check) == ("fail", "gpu_lost")
    assert "lost during the run" in finding.message and "GPU is lost" in finding.message
    assert [f.check for f in findings(after, None, H100)] == ["gpu_lost"]


def test_identity_names_the_gpu_and_a_failed_reading_is_none() -> None:
    backend = _backend(pci_bus_id=NvmlGpuLost("GPU is lost", code=15))
    assert identity(backend, 0) == Identity("GPU-a", None, "NVIDIA H100 80GB HBM3")

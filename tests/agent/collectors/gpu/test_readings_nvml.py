"""The real NVML backend's new readings over the fake pynvml module: probing, mapping, records.

Covers the R535 process-struct drift, clock-event fallbacks, per-entry field statuses, GPM's
two-sample computation (and that no sample leaks), MIG instances and the small readings.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agent.collectors.gpu.backend import (
    FieldId,
    GpmMetric,
    GpuProcess,
    MemoryInfo,
    MigInstance,
    MigMode,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNotFound,
    NvmlNotSupported,
    PcieCounter,
    PcieLink,
    ProcessUtilization,
    RemappedRows,
)
from agent.collectors.gpu.nvml import load_pynvml
from agent.collectors.gpu.nvml_backend import PynvmlBackend
from agent.collectors.gpu.readings import READINGS
from tests.fakes.nvml import (
    R535_DRIVER_LACKS,
    FakeGpu,
    FakeMigDevice,
    FakeNvmlLibrary,
    r535_struct_drift,
)


def backend_over(library: FakeNvmlLibrary) -> PynvmlBackend:
    backend = PynvmlBackend(module=library.module())
    backend.init()
    return backend


def test_small_readings_in_nvml_units() -> None:
    gpu = FakeGpu(
        0,
        encoder=(12, 167_000),
        decoder=(7, 167_000),
        remapped_rows=(3, 1, 1, 0),
        pcie=(4, 8, 5, 16),
        pcie_replays=17,
        default_limit_mw=650_000,
        persistence=0,
        compute_mode=3,
        mig_mode=(0, 1),
    )
    backend = backend_over(FakeNvmlLibrary([gpu]))
    assert backend.encoder_utilization_percent(0) == 12
    assert backend.decoder_utilization_percent(0) == 7
    assert backend.remapped_rows(0) == RemappedRows(3, 1, pending=True, failure=False)
    assert backend.pcie_link(0) == PcieLink(4, 8, 5, 16)
    assert backend.pcie_replay_count(0) == 17
    assert backend.pcie_throughput_kib_per_s(0, PcieCounter.TX) == 768
    assert backend.pcie_throughput_kib_per_s(0, PcieCounter.RX) == 1024
    assert backend.default_power_limit_mw(0) == 650_000
    assert backend.persistence_mode(0) is False
    assert backend.compute_mode(0) == 3
    assert backend.mig_mode(0) == MigMode(current=False, pending=True)
    assert backend.supported_clocks_event_reasons(0) == 0x1FF


def test_supported_clock_event_reasons_fall_back_to_the_throttle_call() -> None:
    library = FakeNvmlLibrary(
        [FakeGpu(0, supported_reasons=0x7)],
        driver_lacks=frozenset({"nvmlDeviceGetSupportedClocksEventReasons"}),
    )
    backend = backend_over(library)
    assert [backend.supported_clocks_event_reasons(0) for _ in range(2)] == [0x7, 0x7]
    assert library.count("nvmlDeviceGetSupportedClocksEventReasons") == 1
    assert library.count("nvmlDeviceGetSupportedClocksThrottleReasons") == 2


def test_field_values_keep_each_entrys_status_and_type() -> None:
    gpu = FakeGpu(0)
    gpu.fields[(FieldId.PERF_POLICY_THERMAL, 0)] = (0, 0, 1.5e9)  # a double
    gpu.fields[(FieldId.NVLINK_THROUGHPUT_DATA_TX, 3)] = (0, 3, 12345)
    gpu.fields[(FieldId.ECC_SBE_AGG_TOTAL, 0)] = (4, 3, 0)  # no permission
    library = FakeNvmlLibrary([gpu])
    backend = backend_over(library)
    wanted = [
        (FieldId.PERF_POLICY_THERMAL, 0),
        (FieldId.NVLINK_THROUGHPUT_DATA_TX, 3),
        (FieldId.RETIRED_SBE, 0),
        (FieldId.ECC_SBE_AGG_TOTAL, 0),
    ]
    entries = backend.field_values(0, [(int(f), s) for f, s in wanted])
    assert library.count("nvmlDeviceGetFieldValues") == 1
    assert [(e.field, e.scope, e.value) for e in entries[:2]] == [(75, 0, 1.5e9), (138, 3, 12345)]
    assert isinstance(entries[2].error, NvmlNotSupported) and entries[2].value is None
    assert entries[3].error is not None and entries[3].error.code == 4
    assert backend.field_values(0, []) == []


def test_field_values_with_real_structs(real: Any) -> None:
    gpu = FakeGpu(0)
    gpu.fields[(FieldId.NVLINK_CRC_FLIT_ERROR_COUNT, 5)] = (0, 3, 77)
    backend = backend_over(FakeNvmlLibrary([gpu], structs=real))
    (entry,) = backend.field_values(0, [(int(FieldId.NVLINK_CRC_FLIT_ERROR_COUNT), 5)])
    assert (entry.field, entry.scope, entry.value, entry.error) == (38, 5, 77.0, None)


def test_a_lost_gpu_in_a_field_entry_drops_the_handle() -> None:
    gpu = FakeGpu(0)
    gpu.fields[(FieldId.PERF_POLICY_POWER, 0)] = (15, 0, 0)
    library = FakeNvmlLibrary([gpu])
    backend = backend_over(library)
    (entry,) = backend.field_values(0, [(int(FieldId.PERF_POLICY_POWER), 0)])
    assert isinstance(entry.error, NvmlGpuLost)
    backend.uuid(0)
    assert library.count("nvmlDeviceGetHandleByIndex") == 2


def test_nvlink_states_stop_past_the_last_link_and_map_not_supported() -> None:
    backend = backend_over(FakeNvmlLibrary([FakeGpu(0, nvlink_states=[1, 0, 1]), FakeGpu(1)]))
    assert backend.nvlink_states(0) == [True, False, True]
    with pytest.raises(NvmlNotSupported):
        backend.nvlink_states(1)


def test_gpm_needs_two_samples_and_frees_the_older_one() -> None:
    gpu = FakeGpu(0, gpm={1: 42.0, 2: 36.5, 20: 900.0})
    library = FakeNvmlLibrary([gpu])
    backend = backend_over(library)
    wanted = [GpmMetric.GRAPHICS_UTIL, GpmMetric.SM_UTIL, GpmMetric.PCIE_TX_PER_SEC]
    wanted.append(GpmMetric.FP64_UTIL)  # this GPU does not compute it
    assert backend.gpm_supported(0) is True
    with pytest.raises(NvmlNotFound):
        backend.gpm_metrics(0, wanted)
    assert len(library.live_gpm_samples) == 1
    for _ in range(3):
        assert backend.gpm_metrics(0, wanted) == {
            GpmMetric.GRAPHICS_UTIL: 42.0,
            GpmMetric.SM_UTIL: 36.5,
            GpmMetric.PCIE_TX_PER_SEC: 900.0,
        }
        assert len(library.live_gpm_samples) == 1, "only the latest sample is kept"
    assert library.count("nvmlGpmQueryDeviceSupport") == 1
    backend.shutdown()
    assert library.live_gpm_samples == set(), "samples are freed with the session"


def test_gpm_unsupported_device() -> None:
    library = FakeNvmlLibrary([FakeGpu(0, gpm_supported=0)])
    backend = backend_over(library)
    assert backend.gpm_supported(0) is False
    with pytest.raises(NvmlNotSupported):
        backend.gpm_metrics(0, [GpmMetric.SM_UTIL])
    assert library.count("nvmlGpmSampleAlloc") == 0
    old = FakeNvmlLibrary([FakeGpu(0)], driver_lacks=frozenset({"nvmlGpmQueryDeviceSupport"}))
    assert backend_over(old).gpm_supported(0) is False


def test_gpm_failure_frees_the_new_sample() -> None:
    library = FakeNvmlLibrary([FakeGpu(0, errors={"nvmlGpmSampleGet": 15})])
    backend = backend_over(library)
    with pytest.raises(NvmlGpuLost):
        backend.gpm_metrics(0, [GpmMetric.SM_UTIL])
    assert library.live_gpm_samples == set()


def test_mig_instances_and_their_gpm() -> None:
    gpu = FakeGpu(
        0,
        mig_mode=(1, 1),
        mig_devices=[
            FakeMigDevice(1, slices=3, memory_mb=40_192, used_bytes=8 << 30),
            FakeMigDevice(1, slices=3, memory_mb=40_192, used_bytes=8 << 30),  # 2nd CI of GI 1
            FakeMigDevice(5, slices=1, memory_mb=9_856),
        ],
        mig_gpm={1: {2: 81.5}, 5: {2: 0.0}},
    )
    library = FakeNvmlLibrary([gpu])
    backend = backend_over(library)
    instances = backend.mig_instances(0)
    assert [(i.gpu_instance_id, i.profile) for i in instances] == [(1, "3g.40gb"), (5, "1g.10gb")]
    assert instances[0] == MigInstance(
        1, "3g.40gb", MemoryInfo(40_192 << 20, 8 << 30, (40_192 << 20) - (8 << 30), 0)
    )
    with pytest.raises(NvmlNotFound):
        backend.gpm_metrics(0, [GpmMetric.SM_UTIL], gpu_instance_id=1)
    assert backend.gpm_metrics(0, [GpmMetric.SM_UTIL], gpu_instance_id=1) == {
        GpmMetric.SM_UTIL: 81.5
    }


def test_vgpu_license_status() -> None:
    backend = backend_over(
        FakeNvmlLibrary([FakeGpu(0), FakeGpu(1, grid=(1, [0, 1])), FakeGpu(2, grid=(1, [0]))])
    )
    with pytest.raises(NvmlNotSupported):
        backend.vgpu_license_status(0)
    assert backend.vgpu_license_status(1) == 1
    assert backend.vgpu_license_status(2) == 0


# Processes


def test_running_processes_merge_compute_and_graphics_one_entry_per_pid() -> None:
    gpu = FakeGpu(
        0,
        compute_processes=[(4242, 7_226_785_792), (4343, (1 << 64) - 1)],
        graphics_processes=[(4242, 7_226_785_792), (5151, 64 << 20)],
    )
    library = FakeNvmlLibrary([gpu])
    backend = backend_over(library)
    assert backend.running_processes(0) == [
        GpuProcess(4242, 7_226_785_792, "compute"),
        GpuProcess(4343, None, "compute"),
        GpuProcess(5151, 64 << 20, "graphics"),
    ]
    assert library.count("nvmlDeviceGetComputeRunningProcesses_v3") == 1


def test_r535_struct_drift_is_read_with_the_wide_layout(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.collectors.gpu.nvml_processes")
    library = r535_struct_drift()
    backend = backend_over(library)
    expected = [
        GpuProcess(4242, 7_226_785_792, "compute"),
        GpuProcess(4343, 1 << 30, "compute"),
        GpuProcess(5151, 64 << 20, "graphics"),
    ]
    assert backend.running_processes(0) == expected
    assert backend.running_processes(0) == expected
    assert library.count("nvmlDeviceGetComputeRunningProcesses_v3") == 0, "binding's _v3 unused"
    assert library.count("raw nvmlDeviceGetComputeRunningProcesses_v3") == 4  # size, then fill
    probes = [call for call in library.calls if call.startswith("lookup nvmlDeviceGetConf")]
    assert len(probes) == 1, "the driver is probed once per session"
    assert any("r535" in message for message in caplog.messages)


def test_the_binding_alone_would_scramble_r535_processes() -> None:
    """The scenario is real: without the probe, nvidia-ml-py's _v3 garbles the second PID."""
    library = r535_struct_drift()
    module = library.module()
    library.initialized = True
    garbled = module.nvmlDeviceGetComputeRunningProcesses_v3(module.nvmlDeviceGetHandleByIndex(0))
    assert [entry.pid for entry in garbled] != [4242, 4343]


def test_old_driver_without_v3_uses_v2() -> None:
    library = FakeNvmlLibrary(
        [FakeGpu(0, compute_processes=[(77, 1 << 20)])],
        driver_lacks=frozenset({"nvmlDeviceGetComputeRunningProcesses_v3"}) | R535_DRIVER_LACKS,
    )
    backend = backend_over(library)
    assert backend.running_processes(0) == [GpuProcess(77, 1 << 20, "compute")]
    assert library.count("nvmlDeviceGetComputeRunningProcesses_v2") == 1


def test_process_utilization_since_a_timestamp_and_not_found_is_empty() -> None:
    gpu = FakeGpu(0, process_samples=[(405, 1_000, 56, 9), (406, 3_000, 12, 1)])
    backend = backend_over(FakeNvmlLibrary([gpu, FakeGpu(1)]))
    assert backend.process_utilization(0, 2_000) == [ProcessUtilization(406, 12, 1, 3_000)]
    assert backend.process_utilization(0, 5_000) == []
    assert backend.process_utilization(1, 0) == []  # idle GPU: NVML says NOT_FOUND


def test_process_errors_are_mapped() -> None:
    gpu = FakeGpu(0, errors={"nvmlDeviceGetComputeRunningProcesses_v3": 3})
    backend = backend_over(FakeNvmlLibrary([gpu]))
    with pytest.raises(NvmlNotSupported):
        backend.running_processes(0)
    none = FakeNvmlLibrary(
        [FakeGpu(0)],
        driver_lacks=frozenset(
            {"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"}
        ),
    )
    with pytest.raises(NvmlFunctionNotFound):
        backend_over(none).running_processes(0)


def test_every_reading_answers_over_the_real_backend() -> None:
    """Each reading runs end to end through nvml.py's mapping, with the fake H100's answers."""
    backend = backend_over(FakeNvmlLibrary([FakeGpu(0)]))
    outcomes: dict[str, object] = {}
    for _ in range(2):
        for reading in READINGS:
            try:
                outcomes[reading.name] = reading.read(backend, 0)
            except NvmlError as exc:
                outcomes[reading.name] = type(exc)
    failed = {name: error for name, error in outcomes.items() if not isinstance(error, list)}
    assert failed == {
        "retired_pages": NvmlNotSupported,
        "nvlink": NvmlNotSupported,
        "vgpu_license": NvmlNotSupported,
        "pcie_throughput": NvmlNotSupported,
    }
    assert outcomes["gpm"], "GPM answers from the second sample on"


@pytest.fixture(scope="module")
def real() -> Any:
    return load_pynvml()

"""The real NVML backend's own logic, over an injected fake pynvml module (no driver needed).

Also checks the fake against the installed nvidia-ml-py (names, signatures, structs, error
classes), so what is tested here is what the real binding offers.
"""

from __future__ import annotations

import ctypes
import inspect
import logging
import subprocess
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

import pytest

from agent.collectors.gpu import GpuCollector
from agent.collectors.gpu.backend import (
    Clock,
    MemoryInfo,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNoPermission,
    NvmlNotFound,
    NvmlNotSupported,
    NvmlTimeout,
    NvmlUnavailable,
    Utilization,
)
from agent.collectors.gpu.nvml import load_pynvml
from agent.collectors.gpu.nvml_backend import PynvmlBackend
from tests.catalog_check import assert_conforms
from tests.fakes.nvml import FakeGpu, FakeNVMLError, FakeNvmlLibrary, bus_id, gpu_uuid

TOTAL, RESERVED = 85_520_809_984, 503_316_480


def backend_over(library: FakeNvmlLibrary) -> PynvmlBackend:
    backend = PynvmlBackend(module=library.module())
    backend.init()
    return backend


def test_readings_are_decoded_and_in_nvml_units() -> None:
    library = FakeNvmlLibrary([FakeGpu(0), FakeGpu(1, utilization=(55, 20), power_mw=412_345)])
    backend = backend_over(library)
    assert backend.driver_version() == "580.159.04"
    assert backend.device_count() == 2
    assert backend.uuid(1) == gpu_uuid(1)
    assert backend.name(1) == "NVIDIA H100 80GB HBM3"
    assert backend.pci_bus_id(1) == bus_id(1)
    assert backend.minor_number(1) == 1
    assert backend.serial(1) == "1650923000001"
    assert backend.vbios_version(1) == "96.00.99.00.01"
    assert backend.enforced_power_limit_mw(1) == 700_000
    assert backend.max_clock_mhz(1, Clock.SM) == 1980
    assert backend.memory_info(1) == MemoryInfo(TOTAL, 0, TOTAL - RESERVED, RESERVED)
    assert backend.utilization(1) == Utilization(55, 20)
    assert backend.power_usage_mw(1) == 412_345
    assert backend.total_energy_mj(1) == 2_273_122
    assert backend.temperature_c(1) == 43
    assert backend.memory_temperature_c(1) == 46
    assert backend.clock_mhz(1, Clock.SM) == 885
    assert backend.clock_mhz(1, Clock.MEM) == 2619
    assert backend.clocks_event_reasons(1) == 0x1
    assert library.count("nvmlDeviceGetMemoryInfo_v2") == 1
    assert library.count("nvmlDeviceGetTemperatureV") == 1
    assert library.count("nvmlDeviceGetCurrentClocksEventReasons") == 1
    assert library.count("nvmlDeviceGetCurrentClocksThrottleReasons") == 0
    assert library.count("nvmlDeviceGetHandleByIndex") == 1, "handles are cached"


def test_clocks_event_reasons_fall_back_when_the_driver_lacks_the_new_symbol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="agent.collectors.gpu.nvml")
    library = FakeNvmlLibrary(
        [FakeGpu(0, reasons=0x4), FakeGpu(1, reasons=0x1)],
        driver_lacks=frozenset({"nvmlDeviceGetCurrentClocksEventReasons"}),
    )
    backend = backend_over(library)
    assert [backend.clocks_event_reasons(i) for i in (0, 1, 0, 1)] == [0x4, 0x1, 0x4, 0x1]
    assert library.count("nvmlDeviceGetCurrentClocksEventReasons") == 2, "probed once per GPU"
    assert library.count("nvmlDeviceGetCurrentClocksThrottleReasons") == 4
    fallback_lines = [m for m in caplog.messages if "ThrottleReasons" in m]
    assert len(fallback_lines) == 1


def test_clocks_event_reasons_fall_back_when_the_binding_is_old() -> None:
    library = FakeNvmlLibrary(
        [FakeGpu(0, reasons=0x20)], missing=frozenset({"nvmlDeviceGetCurrentClocksEventReasons"})
    )
    backend = backend_over(library)
    assert backend.clocks_event_reasons(0) == 0x20
    assert library.count("nvmlDeviceGetCurrentClocksThrottleReasons") == 1


def test_no_variant_at_all_is_function_not_found() -> None:
    library = FakeNvmlLibrary(
        [FakeGpu(0)],
        driver_lacks=frozenset(
            {
                "nvmlDeviceGetCurrentClocksEventReasons",
                "nvmlDeviceGetCurrentClocksThrottleReasons",
            }
        ),
    )
    with pytest.raises(NvmlFunctionNotFound):
        backend_over(library).clocks_event_reasons(0)


@pytest.mark.parametrize(
    "library_options",
    [
        {"driver_lacks": frozenset({"nvmlDeviceGetMemoryInfo_v2"})},
        {"missing": frozenset({"nvmlMemory_v2"})},
    ],
    ids=["driver-without-v2", "binding-without-v2"],
)
def test_memory_info_falls_back_to_v1_without_reserved(library_options: dict[str, Any]) -> None:
    used = 3 << 30
    gpu = FakeGpu(0, memory=(TOTAL, RESERVED, used, TOTAL - RESERVED - used))
    library = FakeNvmlLibrary([gpu], **library_options)
    backend = backend_over(library)
    v1 = MemoryInfo(TOTAL, used + RESERVED, TOTAL - RESERVED - used, None)
    assert backend.memory_info(0) == v1
    assert backend.memory_info(0) == v1
    assert library.count("nvmlDeviceGetMemoryInfo") == 2
    assert library.count("nvmlDeviceGetMemoryInfo_v2") <= 1


def test_memory_info_v2_struct_version_mismatch_falls_back() -> None:
    gpu = FakeGpu(0, errors={"nvmlDeviceGetMemoryInfo_v2": 25})
    backend = backend_over(FakeNvmlLibrary([gpu]))
    assert backend.memory_info(0).reserved_bytes is None


def test_temperature_falls_back_to_the_legacy_call() -> None:
    library = FakeNvmlLibrary(
        [FakeGpu(0, temperature_c=61)], driver_lacks=frozenset({"nvmlDeviceGetTemperatureV"})
    )
    backend = backend_over(library)
    assert [backend.temperature_c(0), backend.temperature_c(0)] == [61, 61]
    assert library.count("nvmlDeviceGetTemperatureV") == 1
    assert library.count("nvmlDeviceGetTemperature") == 2


def test_a_lost_gpu_during_probing_decides_nothing() -> None:
    gpu = FakeGpu(0, errors={"nvmlDeviceGetCurrentClocksEventReasons": 15})
    library = FakeNvmlLibrary([gpu])
    backend = backend_over(library)
    with pytest.raises(NvmlGpuLost):
        backend.clocks_event_reasons(0)
    gpu.errors.clear()
    assert backend.clocks_event_reasons(0) == 0x1
    assert library.count("nvmlDeviceGetCurrentClocksThrottleReasons") == 0


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ((0, 1, 46), 46),  # unsigned int
        ((0, 5, 47), 47),  # signed int
        ((0, 0, 48.0), 48),  # double
        ((0, 3, 49), 49),  # unsigned long long
    ],
)
def test_memory_temperature_reads_the_union_member_its_type_names(
    entry: tuple[int, int, float], expected: int
) -> None:
    backend = backend_over(FakeNvmlLibrary([FakeGpu(0, memory_temp=entry)]))
    assert backend.memory_temperature_c(0) == expected


@pytest.mark.parametrize(
    ("status", "error"),
    [(3, NvmlNotSupported), (15, NvmlGpuLost), (4, NvmlNoPermission), (999, NvmlError)],
)
def test_memory_temperature_checks_the_entrys_own_status(
    status: int, error: type[NvmlError]
) -> None:
    backend = backend_over(FakeNvmlLibrary([FakeGpu(0, memory_temp=(status, 1, 0))]))
    with pytest.raises(error) as caught:
        backend.memory_temperature_c(0)
    assert type(caught.value) is error
    assert caught.value.code == status


def test_memory_temperature_of_unknown_value_type_is_an_error() -> None:
    backend = backend_over(FakeNvmlLibrary([FakeGpu(0, memory_temp=(0, 9, 46))]))
    with pytest.raises(NvmlError, match="unknown type 9"):
        backend.memory_temperature_c(0)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (3, NvmlNotSupported),
        (4, NvmlNoPermission),
        (6, NvmlNotFound),
        (10, NvmlTimeout),
        (13, NvmlFunctionNotFound),
        (15, NvmlGpuLost),
        (16, NvmlGpuLost),
        (18, NvmlUnavailable),
        (999, NvmlError),
    ],
)
def test_pynvml_errors_are_mapped_once_to_our_tree(code: int, error: type[NvmlError]) -> None:
    backend = backend_over(FakeNvmlLibrary([FakeGpu(0, errors={"nvmlDeviceGetPowerUsage": code})]))
    with pytest.raises(error) as caught:
        backend.power_usage_mw(0)
    assert type(caught.value) is error
    assert caught.value.code == code
    assert isinstance(caught.value.__cause__, FakeNVMLError)
    assert "nvmlDeviceGetPowerUsage" in str(caught.value)


def test_a_lost_gpus_handle_is_dropped_and_fetched_again() -> None:
    gpu = FakeGpu(0, errors={"nvmlDeviceGetPowerUsage": 15})
    library = FakeNvmlLibrary([gpu])
    backend = backend_over(library)
    with pytest.raises(NvmlGpuLost):
        backend.power_usage_mw(0)
    gpu.errors.clear()
    assert backend.power_usage_mw(0) == 128_727
    assert library.count("nvmlDeviceGetHandleByIndex") == 2


@pytest.mark.parametrize(
    ("code", "reason", "hint"),
    [
        (12, "no NVIDIA driver: NVML library not found", "libnvidia-ml.so.1"),
        (9, "no NVIDIA driver: kernel driver not loaded", "modprobe nvidia"),
        (18, "NVIDIA driver version mismatch", "reboot"),
        (4, "no permission to use the NVIDIA driver", "/dev/nvidiactl"),
        (999, "NVML failed to initialise: NVML error 999", "driver's logs"),
    ],
)
def test_init_failures_say_why_and_what_to_do(code: int, reason: str, hint: str) -> None:
    backend = PynvmlBackend(module=FakeNvmlLibrary([FakeGpu(0)], init_error=code).module())
    with pytest.raises(NvmlUnavailable) as caught:
        backend.init()
    assert str(caught.value).startswith(reason)
    assert hint in caught.value.hint
    assert caught.value.code == code
    with pytest.raises(NvmlError, match="not initialised"):
        backend.device_count()


def test_init_refuses_a_module_that_is_not_nvidia_ml_py() -> None:
    library = FakeNvmlLibrary([FakeGpu(0)], missing=frozenset({"nvmlInitWithFlags"}))
    with pytest.raises(NvmlUnavailable, match="not nvidia-ml-py") as caught:
        PynvmlBackend(module=library.module()).init()
    assert "nvidia-ml-py" in caught.value.hint
    assert library.count("nvmlInit") == 0


def test_session_lifecycle() -> None:
    library = FakeNvmlLibrary([FakeGpu(0)])
    backend = PynvmlBackend(module=library.module())
    with pytest.raises(NvmlError, match="not initialised"):
        backend.uuid(0)
    backend.init()
    backend.init()
    assert library.count("nvmlInit") == 1
    assert backend.uuid(0) == gpu_uuid(0)
    backend.shutdown()
    backend.shutdown()
    assert library.count("nvmlShutdown") == 1
    with pytest.raises(NvmlError, match="not initialised"):
        backend.uuid(0)
    backend.init()
    assert backend.uuid(0) == gpu_uuid(0)
    assert library.count("nvmlDeviceGetHandleByIndex") == 2, "handles do not outlive a session"


def test_collector_over_the_real_backend() -> None:
    library = FakeNvmlLibrary([FakeGpu(0, memory_temp=(3, 1, 0)), FakeGpu(1)])
    collector = GpuCollector(PynvmlBackend(module=library.module()), "node-a1")
    samples = collector.collect(1.0)
    collector.collect(2.0)
    assert_conforms(samples, source="gpu")
    table = {(s.name, s.labels["gpu"]): s.value for s in samples}
    assert ("DCGM_FI_DEV_MEMORY_TEMP", "0") not in table
    assert table[("DCGM_FI_DEV_MEMORY_TEMP", "1")] == 46.0
    assert table[("DCGM_FI_DEV_POWER_USAGE", "1")] == 128.727
    assert table[("DCGM_FI_DEV_FB_RESERVED", "1")] == 480.0
    assert table[("DCGM_FI_DEV_FB_FREE", "1")] == 81079.0
    assert samples[0].labels == {
        "gpu": "0",
        "UUID": gpu_uuid(0),
        "pci_bus_id": bus_id(0),
        "device": "nvidia0",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": "node-a1",
        "DCGM_FI_DRIVER_VERSION": "580.159.04",
    }
    # Memory temperature: GPU 0 once (unsupported), GPU 1 each tick; plus one batch per GPU
    # for each slower field reading (violations, recovery action, ECC, retired pages) on the
    # first tick only: their periods have not elapsed at the second.
    assert library.count("nvmlDeviceGetFieldValues") == 3 + 2 * 4
    collector.close()
    assert library.count("nvmlShutdown") == 1


def test_importing_dcmon_does_not_load_pynvml() -> None:
    code = "import sys, agent.collectors.gpu; sys.exit('pynvml' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# The fake against the installed nvidia-ml-py


@pytest.fixture(scope="module")
def real() -> Any:
    return load_pynvml()


def test_the_fake_module_offers_only_what_nvidia_ml_py_offers(real: Any) -> None:
    fake = FakeNvmlLibrary([FakeGpu(0)]).module()
    for name, value in vars(fake).items():
        assert hasattr(real, name), f"nvidia-ml-py has no {name}"
        if name.startswith("nvml") and callable(value):
            fake_params = list(inspect.signature(value).parameters)
            real_params = list(inspect.signature(getattr(real, name)).parameters)
            assert fake_params == real_params, name
        elif name.startswith("NVML_") or name.startswith("nvmlMemory"):
            assert value == getattr(real, name), name


def test_real_structs_are_read_correctly(real: Any) -> None:
    structs = FakeNvmlLibrary([FakeGpu(0, memory_temp=(0, 1, 52))], structs=real)
    namespaces = FakeNvmlLibrary([FakeGpu(0, memory_temp=(0, 1, 52))])
    with_structs, with_namespaces = backend_over(structs), backend_over(namespaces)
    reads: list[Callable[[PynvmlBackend], object]] = [
        lambda b: b.memory_info(0),
        lambda b: b.utilization(0),
        lambda b: b.pci_bus_id(0),
        lambda b: b.memory_temperature_c(0),
    ]
    for read in reads:
        assert read(with_structs) == read(with_namespaces)
    assert with_structs.pci_bus_id(0) == bus_id(0)
    assert with_structs.memory_temperature_c(0) == 52


def test_real_nvml_error_classes_are_mapped(real: Any) -> None:
    def lost(handle: object) -> int:
        error: Exception = real.NVMLError(real.NVML_ERROR_GPU_IS_LOST)
        raise error

    module = types.SimpleNamespace(
        NVMLError=real.NVMLError,
        nvmlInit=lambda: None,
        nvmlInitWithFlags=lambda flags: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda index: object(),
        nvmlDeviceGetPowerUsage=lost,
    )
    backend = PynvmlBackend(module=module)
    backend.init()
    with pytest.raises(NvmlGpuLost, match="nvmlDeviceGetPowerUsage: GPU is lost") as caught:
        backend.power_usage_mw(0)
    assert isinstance(caught.value.__cause__, real.NVMLError_GpuIsLost)


def _driver_library_present() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(_driver_library_present(), reason="a driver is installed: see test_real_gpu")
def test_real_backend_without_a_driver_says_so() -> None:
    backend = PynvmlBackend()
    with pytest.raises(NvmlUnavailable) as caught:
        backend.init()
    assert str(caught.value) == "no NVIDIA driver: NVML library not found"
    assert caught.value.code == 12
    assert "libnvidia-ml.so.1" in caught.value.hint
    collector = GpuCollector(backend, "node-a1")
    assert collector.collect(1.0) == []
    assert collector.inventory().status == "no NVIDIA driver: NVML library not found"


def test_a_call_hanging_in_the_driver_does_not_block_calls_on_other_gpus() -> None:
    """The backend holds no lock around driver calls, so the watchdog can abandon one GPU."""
    library = FakeNvmlLibrary([FakeGpu(0), FakeGpu(1)])
    module = library.module()
    release = threading.Event()
    entered = threading.Event()
    original = module.nvmlDeviceGetPowerUsage

    def power(handle: Any) -> int:
        if handle.index == 0:
            entered.set()
            release.wait()
        return int(original(handle))

    module.nvmlDeviceGetPowerUsage = power
    backend = PynvmlBackend(module=module)
    backend.init()
    stuck = threading.Thread(target=backend.power_usage_mw, args=(0,), daemon=True)
    stuck.start()
    try:
        assert entered.wait(5)
        done = threading.Event()
        threading.Thread(
            target=lambda: (backend.power_usage_mw(1), done.set()), daemon=True
        ).start()
        assert done.wait(5), "a hung call on GPU 0 blocked GPU 1"
    finally:
        release.set()
        stuck.join(5)

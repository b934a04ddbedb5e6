"""The benchmark job through ``run_job``: the in-process worker over the scripted backend, the
fake NVML and a scripted XID source, one scenario per failure the job must catch; each judged
tree is checked against the wire contract."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agent.bench.backend import Device
from agent.bench.job import run_job
from agent.bench.jobspec import JobEvent, JobOutcome, JobSpec
from agent.bench.scripted import ScriptedBackend
from agent.bench.workers import InProcessWorker
from agent.collectors.gpu.backend import (
    ClocksEventReason,
    FieldId,
    GpuProcess,
    NvmlGpuLost,
    PcieLink,
)
from agent.collectors.gpu.scripted import ScriptedBackend as ScriptedNvml
from agent.collectors.gpu.scripted import sequence
from agent.events.model import XidObservation
from agent.wire.bench import BenchOrder, BenchProgress, BenchRun
from tests.agent.bench.support import ScriptedXids
from tests.fakes.nvml import bus_id, gpu_uuid, h100

H100 = "NVIDIA H100 80GB HBM3"
HEALTHY = {  # an H100 SXM's figures near its measured references (and its spec where none)
    "matmul_fp64": 55.0,
    "matmul_fp32": 51.0,
    "matmul_tf32": 400.0,
    "matmul_bf16": 790.0,
    "matmul_fp16": 760.0,
    "matmul_fp8": 1280.0,
    "memory_copy": 3000.0,
    "host_to_device": 55.0,
    "device_to_host": 55.0,
}


def _bench(gpus: int = 2, name: str = H100, **script: Any) -> ScriptedBackend:
    devices = tuple(Device(i, name, "cuda") for i in range(gpus))
    script.setdefault("figures", HEALTHY)
    script.setdefault("seconds_per_test", 0.01)
    return ScriptedBackend(device_list=devices, **script)


def _nvml(gpus: int = 2, **steps: dict[str, object]) -> ScriptedNvml:
    """The fake NVML of ``gpus`` H100s; ``steps`` by device name ``gpu1`` -> its changes."""
    nvml = ScriptedNvml([h100(i, **steps.get(f"gpu{i}", {})) for i in range(gpus)])
    nvml.init()
    return nvml


def _job(
    bench: ScriptedBackend,
    nvml: ScriptedNvml | None,
    spec: JobSpec | None = None,
    *,
    xids: ScriptedXids | None = None,
    on_event: Callable[[JobEvent], None] = lambda event: None,
    cancel: threading.Event | None = None,
    events: list[JobEvent] | None = None,
) -> JobOutcome:
    heard = events if events is not None else []

    def hear(event: JobEvent) -> None:
        heard.append(event)
        on_event(event)

    return run_job(
        spec or JobSpec("quick"),
        on_event=hear,
        cancel=cancel or threading.Event(),
        worker=InProcessWorker(bench, clock=bench.clock),
        nvml=nvml,
        xids=xids,
        sample_interval_s=0.002,
    )


def _tree(outcome: JobOutcome) -> dict[str, Any]:
    assert outcome.result is not None, outcome.message
    BenchRun.model_validate(outcome.result)  # the wire contract holds
    return outcome.result


def _results(outcome: JobOutcome, device: int) -> dict[str, dict[str, Any]]:
    report = _tree(outcome)["devices"][device]
    return {r["test"]: r for r in report["results"]}


def _checks(outcome: JobOutcome, device: int) -> list[tuple[str, str]]:
    return [(f["level"], f["check"]) for f in _tree(outcome)["checks"][str(device)]]


def test_a_healthy_run_is_done_with_identity_conditions_and_progress() -> None:
    events: list[JobEvent] = []
    bench = _bench(seconds_per_test=0.03, sleep=time.sleep)
    outcome = _job(bench, _nvml(), events=events)
    assert (outcome.state, outcome.busy) == ("done", False)
    assert outcome.message == "passed: 12 tests on 2 device(s)"
    tree = _tree(outcome)
    first = tree["devices"][0]["device"]
    assert (first["uuid"], first["pci_bus_id"], first["sku"]) == (
        gpu_uuid(0),
        bus_id(0),
        "h100_sxm",
    )
    conditions = _results(outcome, 1)["matmul_bf16"]["conditions"]
    assert conditions["samples"] >= 1 and conditions["sm_clock_mhz"] == [885.0, 885.0, 885.0]
    assert conditions["power_w"][0] == 101.0 and conditions["temperature_c"][1] == 41.0
    assert conditions["throttle_reasons"] == ["GPU_IDLE"]
    assert tree["checks"] == {"0": [], "1": []}
    assert [e.kind for e in events[:3]] == ["planned", "started", "finished"]
    assert events[0].total == 12
    finished = [e for e in events if e.kind == "finished"]
    assert [e.done for e in finished] == list(range(1, 13))
    assert finished[-1].result is not None and finished[-1].result.conditions is not None
    assert (finished[-1].device, finished[-1].test) == (1, "burn_fp32")


def test_a_listener_that_raises_does_not_break_the_job() -> None:
    def explode(event: JobEvent) -> None:
        raise RuntimeError("the progress report failed")

    assert _job(_bench(), _nvml(), on_event=explode).state == "done"


def test_a_gpu_at_70_percent_of_its_peers_is_reported_and_judged_only_by_its_sku() -> None:
    # A model the table does not know: the node's job passes; the fleet judges it.
    slow = {1: {"matmul_bf16": 0.7 * HEALTHY["matmul_bf16"]}}
    unknown = _job(_bench(name="NVIDIA Future GPU", device_figures=slow), None)
    assert unknown.state == "done"
    assert _results(unknown, 1)["matmul_bf16"]["value"] == pytest.approx(553.0)
    judged = {(j["device"], j["test"]): j["status"] for j in _tree(unknown)["judgement"]}
    assert judged[(1, "matmul_bf16")] == "unjudged"
    # An H100 SXM: 70 % of a healthy figure is below 0.75 x its measured reference: a fail.
    h100_sxm = _job(_bench(device_figures=slow), _nvml())
    assert h100_sxm.state == "failed"
    assert "device 1 matmul_bf16: 553 TFLOP/s is 0.70 x the H100 SXM5 80GB measured" in (
        h100_sxm.message
    )
    # Against a spec only (fp64 has no measured reference), 0.70 x passes.
    spec_only = {1: {"matmul_fp64": 0.7 * 67}}
    fp64 = _job(_bench(device_figures=spec_only), _nvml(), JobSpec("standard"))
    verdict = next(
        j for j in _tree(fp64)["judgement"] if (j["device"], j["test"]) == (1, "matmul_fp64")
    )
    assert (verdict["status"], verdict["basis"]) == ("pass", "spec") and fp64.state == "done"


def test_a_pcie_link_trained_at_x8_of_x16_fails_the_run() -> None:
    nvml = _nvml(gpu1={"pcie_link": PcieLink(5, 8, 5, 16)})
    outcome = _job(_bench(), nvml)
    assert outcome.state == "failed"
    assert "device 1 pcie: PCIe link trained at gen 5 x8, below its x16" in outcome.message
    assert ("fail", "pcie") in _checks(outcome, 1) and _checks(outcome, 0) == []


def test_a_burn_miscompare_fails_the_run() -> None:
    outcome = _job(_bench(miscompares={1: 7}), _nvml())
    assert outcome.state == "failed"
    assert "device 1 burn_fp32: fail: 7 elements differed from the first product" in (
        outcome.message
    )
    assert _results(outcome, 1)["burn_fp32"]["value"] == 7.0
    assert _tree(outcome)["devices"][0]["passed"] is True


def test_an_xid_during_the_run_fails_it_naming_the_xid() -> None:
    xids = ScriptedXids()
    xids.pending = [XidObservation(source="nvml", time=1.0, code=48, gpu_index=0)]  # before

    def strike(event: JobEvent) -> None:
        if event.kind == "finished" and event.done == 2:
            xids.pending.append(
                XidObservation(source="kmsg", time=2.0, code=79, pci_bus_id="0000:2a:00")
            )

    outcome = _job(_bench(), _nvml(), xids=xids, on_event=strike)
    assert outcome.state == "failed"
    assert "device 1 xid: Xid 79 (GPU_HAS_FALLEN_OFF_THE_BUS) during the run" in outcome.message
    assert _checks(outcome, 0) == [] and _checks(outcome, 1) == [("fail", "xid")]
    assert xids.polls >= 2 and not xids.closed  # a source passed in is the caller's to close


def test_a_gpu_that_falls_off_the_bus_fails_clearly_and_the_others_results_stay() -> None:
    nvml = _nvml()

    def fall(event: JobEvent) -> None:
        if (event.kind, event.device, event.test) == ("started", 1, "memory_copy"):
            nvml.fail_device(1, NvmlGpuLost("nvmlDeviceGetPcieReplayCounter: GPU is lost"))

    outcome = _job(_bench(lost={1: 2}), nvml, on_event=fall)
    assert outcome.state == "failed"
    assert outcome.message.startswith(
        "failed: device 1 gpu_lost: the GPU was lost during the run"
    ), outcome.message
    assert "device 1 memory_copy: error: RuntimeError: CUDA error" in outcome.message
    healthy, lost = _results(outcome, 0), _results(outcome, 1)
    assert {r["status"] for r in healthy.values()} == {"ok"} and len(healthy) == 6
    assert [lost[t]["status"] for t in ("matmul_fp32", "matmul_bf16", "memory_copy")] == [
        "ok", "ok", "error"
    ]  # fmt: skip
    assert ("fail", "gpu_lost") in _checks(outcome, 1) and _checks(outcome, 0) == []


def test_a_busy_gpu_is_refused_unless_forced() -> None:
    busy = {"running_processes": [GpuProcess(4242, 1 << 30)]}
    bench = _bench()
    refused = _job(bench, _nvml(gpu1=busy))
    assert (refused.state, refused.busy, refused.result) == ("refused", True, None)
    assert refused.message.startswith("GPU 1 run compute processes")
    assert bench.calls == []
    forced = _job(bench, _nvml(gpu1=busy), JobSpec("quick", force=True))
    assert forced.state == "done" and len(bench.calls) == 12
    only_idle = _job(_bench(), _nvml(gpu1=busy), JobSpec("quick", gpus=[0]))
    assert only_idle.state == "done" and len(_tree(only_idle)["devices"]) == 1


def test_an_error_counter_growing_during_the_run_fails_it() -> None:
    dbe = {(int(FieldId.ECC_DBE_VOL_TOTAL), 0): sequence(0.0, 1.0)}
    outcome = _job(_bench(), _nvml(gpu0={"fields": dbe}))
    assert outcome.state == "failed" and _checks(outcome, 0) == [("fail", "ecc")]
    assert "device 0 ecc: 1 uncorrectable ECC errors during the run" in outcome.message


def test_throttle_reasons_during_the_run_are_judged() -> None:
    thermal = int(ClocksEventReason.SW_THERMAL_SLOWDOWN | ClocksEventReason.SW_POWER_CAP)
    hardware = int(ClocksEventReason.HW_SLOWDOWN)
    nvml = _nvml(gpu0={"clocks_event_reasons": thermal}, gpu1={"clocks_event_reasons": hardware})
    outcome = _job(_bench(seconds_per_test=0.02, sleep=time.sleep), nvml)
    assert outcome.state == "failed"
    assert _checks(outcome, 0) == [("warn", "throttle")]
    assert ("fail", "throttle") in _checks(outcome, 1)
    reasons = _results(outcome, 0)["memory_copy"]["conditions"]["throttle_reasons"]
    assert reasons == ["SW_POWER_CAP", "SW_THERMAL_SLOWDOWN"]


def test_cancel_mid_run_stops_between_tests_and_keeps_what_finished() -> None:
    cancel = threading.Event()
    bench = _bench(seconds_per_test=0.05, sleep=time.sleep)

    def stop(event: JobEvent) -> None:
        if event.kind == "started" and event.done == 2:
            cancel.set()

    outcome = _job(bench, _nvml(), on_event=stop, cancel=cancel)
    assert outcome.state == "cancelled"
    assert outcome.message == "cancelled after 3 of 12 tests"
    assert len(bench.calls) == 3
    tree = _tree(outcome)
    assert tree["complete"] is False and tree["passed"] is False
    assert [r["test"] for r in tree["devices"][0]["results"]] == [
        "matmul_fp32", "matmul_bf16", "memory_copy"
    ]  # fmt: skip


def test_the_cpu_has_no_nvml_facts_even_where_nvml_sees_gpus() -> None:
    cpu = ScriptedBackend(device_list=(Device(0, "CPU x86_64", "cpu"),), seconds_per_test=0.01)
    outcome = _job(cpu, _nvml(), xids=ScriptedXids())
    tree = _tree(outcome)
    assert outcome.state == "done" and tree["checks"] == {}
    device = tree["devices"][0]["device"]
    assert (device["uuid"], device["sku"], device["pci_bus_id"]) == (None, None, None)
    assert all("conditions" not in r for r in tree["devices"][0]["results"])


@pytest.mark.parametrize(
    ("spec", "nvml", "message"),
    [
        (JobSpec("slow"), True, "unknown level 'slow'"),
        (JobSpec("burn", duration_s=-1.0), True, "the burn duration must be positive"),
        (JobSpec("quick", gpus=[4]), True, "no device 4 (devices: 0, 1)"),
        (JobSpec("quick", gpus=[3]), False, "no device 3 (devices: 0, 1)"),  # the worker's
    ],
)
def test_a_request_that_cannot_run_is_refused(spec: JobSpec, nvml: bool, message: str) -> None:
    bench = _bench()
    outcome = _job(bench, _nvml() if nvml else None, spec)
    assert (outcome.state, outcome.busy, outcome.result) == ("refused", False, None)
    assert message in outcome.message and bench.calls == []


def test_nvml_facts_cover_only_the_gpus_the_worker_measures() -> None:
    outcome = _job(_bench(gpus=1), _nvml(gpus=2, gpu1={"pcie_link": PcieLink(5, 8, 5, 16)}))
    tree = _tree(outcome)
    assert outcome.state == "done" and list(tree["checks"]) == ["0"]
    assert [d["device"]["uuid"] for d in tree["devices"]] == [gpu_uuid(0)]


def test_a_servers_order_becomes_a_job_and_its_progress_a_report() -> None:
    order = BenchOrder(id="r1", level="burn", gpus=[1], duration_s=30.0, force=True)
    assert JobSpec.from_order(order) == JobSpec("burn", [1], 30.0, True, "auto")
    assert JobSpec.from_order(BenchOrder(id="r2")).gpus is None
    progress = JobEvent("started", 3, 12, "memory_copy", 1).progress()
    assert progress == BenchProgress(done=3, total=12, test="memory_copy", device=1)

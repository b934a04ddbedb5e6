"""XIDs during a run: matched to the benchmarked GPUs by index or bus id, each one a failure
that names its code; old ones are not the run's, and other GPUs' are left alone."""

from __future__ import annotations

from agent.bench.xids import XidWatch
from agent.events.model import XidObservation
from tests.agent.bench.support import ScriptedXids
from tests.fakes.nvml import bus_id


def _xid(code: int, **where: object) -> XidObservation:
    return XidObservation(source="nvml", time=1.0, code=code, **where)  # type: ignore[arg-type]


def test_an_xid_on_a_benchmarked_gpu_fails_it_by_index_or_bus_id() -> None:
    source = ScriptedXids()
    watch = XidWatch(source, {0: bus_id(0), 1: bus_id(1)}, wall=lambda: 5.0)
    source.pending = [_xid(48, gpu_index=0)]
    watch.drain()  # from before the run
    source.pending = [
        _xid(79, gpu_index=1, message="GPU has fallen off the bus"),
        XidObservation(source="kmsg", time=2.0, code=94, pci_bus_id="0000:18:00"),
        _xid(13, gpu_index=5),  # a GPU not benchmarked
    ]
    watch.poll()
    found = watch.findings()
    ((fail_0,), (fail_1,)) = found[0], found[1]
    assert (fail_1.level, fail_1.check) == ("fail", "xid")
    assert fail_1.message.startswith("Xid 79 (GPU_HAS_FALLEN_OFF_THE_BUS) during the run")
    assert "fallen off the bus" in fail_1.message
    assert fail_0.message.startswith("Xid 94 (") and fail_0.level == "fail"


def test_an_xid_that_names_no_gpu_warns_on_every_benchmarked_gpu() -> None:
    source = ScriptedXids()
    watch = XidWatch(source, {0: None, 1: None})
    source.pending = [_xid(31)]
    watch.poll()
    found = watch.findings()
    assert [f.level for f in found[0]] == ["warn"] and [f.level for f in found[1]] == ["warn"]
    assert "did not name" in found[0][0].message
    assert XidWatch(ScriptedXids(), {0: None}).findings() == {0: []}

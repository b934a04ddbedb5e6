"""The events collector: GPU resolution, NVML/kmsg de-duplication, counters, fatal XIDs, queue."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import pytest

from agent.events.collector import (
    LAST_XID,
    XID_ERRORS_TOTAL,
    EventsCollector,
    labels_resolver,
)
from agent.events.kmsg import KmsgReader
from agent.events.model import XidEvent, XidObservation
from agent.wire.schema import Batch, GpuEvent, NodeIdentity
from tests.catalog_check import catalog_problems
from tests.fakes.nvml import HOSTNAME, bus_id, gpu_uuid

NOW = 1_700_000_000.0
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "kmsg" / "xid.kmsg"


def _gpu_labels(index: int) -> dict[str, str]:
    return {
        "gpu": str(index),
        "UUID": gpu_uuid(index),
        "pci_bus_id": bus_id(index),
        "device": f"nvidia{index}",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": HOSTNAME,
        "DCGM_FI_DRIVER_VERSION": "580.159.04",
    }


GPUS = [_gpu_labels(index) for index in range(8)]


class ScriptedSource:
    """An XID source that returns one scripted list per poll."""

    def __init__(self, name: str, *polls: list[XidObservation]) -> None:
        self.name = name
        self._polls = list(polls)
        self.closed = False

    def poll(self, now: float) -> list[XidObservation]:
        return self._polls.pop(0) if self._polls else []

    def close(self) -> None:
        self.closed = True


def kmsg(code: int, bus: str, time: float = NOW - 1, **kwargs: object) -> XidObservation:
    return XidObservation(source="kmsg", time=time, code=code, pci_bus_id=bus, **kwargs)  # type: ignore[arg-type]


def nvml(code: int, index: int, time: float = NOW - 1, **kwargs: object) -> XidObservation:
    return XidObservation(
        source="nvml",
        time=time,
        code=code,
        gpu_index=index,
        pci_bus_id=bus_id(index),
        message=f"NVML critical XID event: Xid {code}",
        **kwargs,  # type: ignore[arg-type]
    )


def _collector(*sources: ScriptedSource, **kwargs: object) -> EventsCollector:
    return EventsCollector(
        list(sources),
        labels_resolver(lambda: GPUS),
        hostname=HOSTNAME,
        **kwargs,  # type: ignore[arg-type]
    )


def _settled(collector: EventsCollector, now: float) -> dict[tuple[str, str], float]:
    """Returns: the counters as the next tick (nothing new) reports them: a counter is born at
    zero in the tick of its first XID and carries the count from the next one."""
    return _counters(collector.collect(now))


def _counters(samples: list) -> dict[tuple[str, str], float]:  # type: ignore[type-arg]
    return {
        (s.labels["gpu"], s.labels["xid"]): s.value for s in samples if s.name == XID_ERRORS_TOTAL
    }


def test_the_same_xid_from_nvml_and_kmsg_is_one_event_with_the_kmsg_details() -> None:
    text = "NVRM: Xid (PCI:0000:2a:00): 94, pid=51877, name=pt_main_thread, Contained: SM (0x1)."
    collector = _collector(
        ScriptedSource("nvml", [nvml(94, 1, time=NOW - 3.0)]),
        ScriptedSource(
            "kmsg", [kmsg(94, "00000000:2A:00.0", time=NOW - 1.5, pid=51877, message=text)]
        ),
    )
    collector.collect(NOW)
    (event,) = collector.drain_events()
    assert (event.source, event.code, event.pid, event.message) == ("kmsg", 94, 51877, text)
    assert (event.gpu_index, event.uuid, event.pci_bus_id) == (1, gpu_uuid(1), bus_id(1))
    assert (event.mnemonic, event.severity, event.action) == (
        "ROBUST_CHANNEL_CONTAINED_ERROR",
        "warning",
        "RESTART_APP",
    )
    assert _settled(collector, NOW + 10) == {("1", "94"): 1.0}


def test_a_twin_in_the_next_tick_is_not_counted_again() -> None:
    collector = _collector(
        ScriptedSource("nvml", [nvml(48, 0, time=NOW - 0.5)], []),
        ScriptedSource("kmsg", [], [kmsg(48, "0000:18:00", time=NOW - 0.4)]),
    )
    collector.collect(NOW)
    collector.collect(NOW + 10)
    assert [event.source for event in collector.drain_events()] == ["nvml"]
    assert _settled(collector, NOW + 10) == {("0", "48"): 1.0}


def test_repeats_from_one_source_and_distant_twins_are_separate_events() -> None:
    collector = _collector(
        ScriptedSource("nvml", [nvml(13, 2, time=NOW - 60)], []),
        ScriptedSource(
            "kmsg",
            [],
            [kmsg(13, "0000:3a:00", time=NOW + 8), kmsg(13, "0000:3a:00", time=NOW + 9)],
        ),
    )
    collector.collect(NOW)
    collector.collect(NOW + 10)
    assert sorted(event.source for event in collector.drain_events()) == ["kmsg", "kmsg", "nvml"]
    assert _settled(collector, NOW + 10) == {("2", "13"): 3.0}


def test_twins_drained_in_one_tick_pair_up_one_to_one_whatever_their_times() -> None:
    # The kernel's clock may have drifted: the kmsg times are off by a minute.
    collector = _collector(
        ScriptedSource("nvml", [nvml(13, 2, time=NOW - 3), nvml(13, 2, time=NOW - 2)]),
        ScriptedSource(
            "kmsg",
            [
                kmsg(13, "0000:3a:00", time=NOW - 63, pid=1),
                kmsg(13, "0000:3a:00", time=NOW - 62, pid=2),
                kmsg(13, "0000:3a:00", time=NOW - 61, pid=3),
            ],
        ),
    )
    collector.collect(NOW)
    assert [(e.source, e.pid) for e in collector.drain_events()] == [
        ("kmsg", 1),
        ("kmsg", 2),
        ("kmsg", 3),
    ]
    assert _settled(collector, NOW + 10) == {("2", "13"): 3.0}


def test_the_same_code_on_another_gpu_is_not_a_twin() -> None:
    collector = _collector(
        ScriptedSource("nvml", [nvml(79, 4)]),
        ScriptedSource("kmsg", [kmsg(79, "0000:9a:00"), kmsg(79, "0000:ba:00")]),
    )
    collector.collect(NOW)
    assert _settled(collector, NOW + 10) == {("4", "79"): 1.0, ("6", "79"): 1.0}


def test_counters_per_gpu_and_code_and_the_last_xid_gauge() -> None:
    source = ScriptedSource(
        "kmsg",
        [kmsg(48, "0000:18:00", time=NOW - 3), kmsg(63, "0000:18:00", time=NOW - 2)],
        [kmsg(48, "0000:18:00", time=NOW + 5), kmsg(79, "0000:9a:00", time=NOW + 6)],
    )
    collector = _collector(source)
    first = collector.collect(NOW)
    # a counter is born at zero in the tick of its code's first XID, so that increase() over
    # the series sees that XID; the last-XID gauge has it at once
    assert _counters(first) == {("0", "48"): 0.0, ("0", "63"): 0.0}
    assert {s.labels["gpu"]: s.value for s in first if s.name == LAST_XID} == {"0": 63.0}
    second = collector.collect(NOW + 10)
    assert _counters(second) == {("0", "48"): 2.0, ("0", "63"): 1.0, ("4", "79"): 0.0}
    last = {s.labels["gpu"]: s.value for s in second if s.name == LAST_XID}
    assert last == {"0": 48.0, "4": 79.0}
    third = collector.collect(NOW + 20)
    assert _counters(third) == {("0", "48"): 2.0, ("0", "63"): 1.0, ("4", "79"): 1.0}
    assert collector.collect(NOW + 30) == third  # counters are cumulative, nothing new
    second = third
    problems = catalog_problems(second, source="events")
    assert not problems, problems
    sample = next(s for s in second if s.name == XID_ERRORS_TOTAL and s.labels["xid"] == "79")
    assert sample.labels == {**GPUS[4], "xid": "79"}


def test_every_listed_gpu_reports_the_last_xid_gauge_from_the_start() -> None:
    source = ScriptedSource("kmsg", [], [kmsg(79, "0000:9a:00", time=NOW + 6)])
    collector = _collector(source, gpus=lambda: GPUS)

    first = {s.labels["gpu"]: s for s in collector.collect(NOW) if s.name == LAST_XID}
    second = {s.labels["gpu"]: s.value for s in collector.collect(NOW + 10) if s.name == LAST_XID}

    # dcgm-exporter reports 0 for a GPU without an XID; no counter is made up for them
    assert {gpu: s.value for gpu, s in first.items()} == {str(i): 0.0 for i in range(8)}
    assert first["3"].labels == GPUS[3]
    assert second == {**{str(i): 0.0 for i in range(8)}, "4": 79.0}
    assert _counters(collector.collect(NOW + 20)) == {("4", "79"): 1.0}


def test_without_a_gpu_list_only_gpus_with_an_xid_report_the_gauge() -> None:
    collector = _collector(ScriptedSource("kmsg", []))

    assert [s for s in collector.collect(NOW) if s.name == LAST_XID] == []


def test_an_unknown_gpu_is_still_counted_under_its_bus_id() -> None:
    collector = _collector(ScriptedSource("kmsg", [kmsg(79, "0000:c1:00")]))
    samples = collector.collect(NOW)
    (event,) = collector.drain_events()
    assert (event.gpu_index, event.uuid, event.pci_bus_id) == (None, None, "00000000:C1:00.0")
    (counter,) = [s for s in samples if s.name == XID_ERRORS_TOTAL]
    assert counter.labels["pci_bus_id"] == "00000000:C1:00.0"
    assert counter.labels["Hostname"] == HOSTNAME and counter.labels["UUID"] == ""
    assert not catalog_problems(samples, source="events")


def test_fatal_codes_call_back_once_per_event() -> None:
    fatal: list[XidEvent] = []
    collector = _collector(
        ScriptedSource(
            "kmsg",
            [
                kmsg(48, "0000:18:00"),
                kmsg(119, "0000:5d:00", time=NOW - 0.9),
                kmsg(120, "0000:5d:00", time=NOW - 0.8),
                kmsg(13, "0000:3a:00", root_cause=79),
            ],
        ),
        ScriptedSource("nvml", [nvml(79, 4)]),
        on_fatal=fatal.append,
    )
    collector.collect(NOW)
    assert [(event.code, event.gpu_index) for event in fatal] == [
        (13, 2),
        (119, 3),
        (120, 3),
        (79, 4),
    ]
    assert all(event.severity == "critical" for event in fatal)


def test_recovery_action_from_nvml_completes_the_kmsg_twin() -> None:
    collector = _collector(
        ScriptedSource("nvml", [nvml(154, 5, recovery_action=2)]),
        ScriptedSource("kmsg", [kmsg(154, "0000:ab:00", message="NVRM: Xid (...): 154, ...")]),
    )
    collector.collect(NOW)
    (event,) = collector.drain_events()
    assert (event.source, event.action, event.severity) == ("kmsg", "NODE_REBOOT", "critical")


def test_the_event_queue_keeps_the_newest(caplog: pytest.LogCaptureFixture) -> None:
    codes = [31, 43, 45, 48, 63]
    collector = _collector(
        ScriptedSource(
            "kmsg", [kmsg(code, "0000:18:00", time=NOW - 10 + i) for i, code in enumerate(codes)]
        ),
        max_events=3,
    )
    with caplog.at_level(logging.WARNING):
        samples = collector.collect(NOW)
    assert [event.code for event in collector.drain_events()] == [45, 48, 63]
    assert collector.dropped_events == 2
    assert collector.drain_events() == []
    assert len(_counters(samples)) == 5  # dropping events does not drop counts
    (record,) = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert "dropped the 2 oldest" in record.getMessage()


def test_events_are_valid_wire_events() -> None:
    collector = _collector(
        ScriptedSource("kmsg", [kmsg(79, "0000:ba:00", pid=7, root_cause=145, message="x" * 5000)]),
        ScriptedSource("nvml", [nvml(119, 3)]),
    )
    collector.collect(NOW)
    events = collector.drain_events()
    wire = [GpuEvent.model_validate(dataclasses.asdict(event)) for event in events]
    assert [event.code for event in wire] == [79, 119]
    assert len(wire[0].message) == 1024
    constructed = [GpuEvent.model_construct(**dataclasses.asdict(event)) for event in events]
    batch = Batch(
        node=NodeIdentity(node_id="0" * 32, name="n", hostname=HOSTNAME),
        seq=1,
        timestamp=NOW,
        interval_seconds=10.0,
        events=constructed,
    )
    assert Batch.model_validate_json(batch.model_dump_json()).events == wire
    assert {field.name for field in dataclasses.fields(XidEvent)} == set(GpuEvent.model_fields)


def test_close_closes_every_source() -> None:
    sources = [ScriptedSource("kmsg"), ScriptedSource("nvml")]
    _collector(*sources).close()
    assert all(source.closed for source in sources)


def test_the_recorded_kernel_log_end_to_end(tmp_path: Path) -> None:
    log = tmp_path / "kmsg"
    shutil.copyfile(SAMPLE, log)
    fatal: list[int] = []
    reader = KmsgReader(log, start_at_end=False, monotonic=lambda: 5100.0)
    collector = EventsCollector(
        [reader],
        labels_resolver(lambda: GPUS),
        HOSTNAME,
        on_fatal=lambda event: fatal.append(event.code),
    )
    try:
        samples = collector.collect(NOW)
        assert set(_counters(samples).values()) == {0.0}  # born at zero...
        settled = _settled(collector, NOW + 10)  # ...counted from the next tick
    finally:
        collector.close()
    assert not reader.active
    assert settled == {
        ("0", "48"): 1.0,
        ("0", "63"): 1.0,
        ("1", "94"): 1.0,
        ("2", "13"): 1.0,
        ("3", "119"): 1.0,
        ("3", "120"): 1.0,
        ("4", "79"): 1.0,
        ("5", "154"): 1.0,
        ("6", "79"): 1.0,
        ("7", "31"): 1.0,
        ("7", "43"): 1.0,
    }
    assert sorted(fatal) == [79, 79, 119, 120]
    events = {(e.gpu_index, e.code): e for e in collector.drain_events()}
    assert events[(5, 154)].action == "GPU_RESET"  # the recovery action in the line
    assert events[(6, 79)].severity == "critical"
    assert events[(0, 63)].action == "IGNORE"
    assert not catalog_problems(samples, source="events")


def test_labels_resolver_matches_both_bus_id_spellings_and_indices() -> None:
    resolve = labels_resolver(lambda: GPUS)
    assert resolve("0000:9a:00") == GPUS[4]
    assert resolve("00000000:9A:00.0") == GPUS[4]
    assert resolve(4) == GPUS[4]
    assert resolve("0000:c1:00") is None
    assert resolve("not a bus id") is None
    assert resolve(9) is None

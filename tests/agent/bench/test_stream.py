"""The worker's stream: every event survives its line, and a line it does not write is refused."""

from __future__ import annotations

import json

import pytest

from agent.bench.backend import Device
from agent.bench.harness import run
from agent.bench.scripted import ScriptedBackend
from agent.bench.stream import (
    Completed,
    Finished,
    Planned,
    Refused,
    Started,
    StreamError,
    decode,
    encode,
)


def test_each_event_round_trips_through_one_line() -> None:
    backend = ScriptedBackend(miscompares={0: 3})
    result = run(backend, "quick", clock=backend.clock, wall=lambda: 1000.0)
    events = [
        Planned(6, "scripted", "a note", (Device(0, "Scripted GPU", "cuda"),)),
        Started(0, "matmul_fp32"),
        Finished(result.devices[0].results[-1]),
        Completed(result),
        Refused("no device 4 (devices: 0)"),
    ]
    for event in events:
        line = encode(event)
        assert "\n" not in line and decode(line) == event
    assert json.loads(encode(events[0]))["event"] == "plan"
    burn = decode(encode(events[2]))
    assert isinstance(burn, Finished) and burn.result.value == 3.0


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[]",
        '{"event": "explode"}',
        '{"event": "start", "device": 0}',
        '{"event": "result", "result": {"test": "x", "device": 0, "status": "weird"}}',
        '{"event": "plan", "total": 1, "backend": "b", "note": "", "devices": [{"index": 0}]}',
    ],
)
def test_a_line_the_worker_does_not_write_is_a_stream_error(line: str) -> None:
    with pytest.raises(StreamError):
        decode(line)

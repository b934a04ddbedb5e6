"""GPU events: stored once per node however often a batch arrives, served newest first with
filters; bad parameters and future event times are refused with the parameter named."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.wire.schema import Batch, GpuEvent
from tests.factories import GPU_LABELS, identity, make_batch
from tests.server.conftest import START, FakeClock, push, row_counts

UUID0 = GPU_LABELS["UUID"]
UUID1 = "GPU-99999999-8888-7777-6666-555555555555"
OTHER_NODE = identity(name="gpu02", node_id="f" * 32)


def xid(
    time: float, code: int, uuid: str = UUID0, severity: str = "critical", gpu_index: int = 0
) -> GpuEvent:
    return GpuEvent(
        time=time,
        source="nvml",
        code=code,
        gpu_index=gpu_index,
        uuid=uuid,
        pci_bus_id="00000000:00:06.0",
        message=f"Xid {code} seen",
        mnemonic="TEST",
        severity=severity,
        action="RESET_GPU" if severity == "critical" else "NONE",
    )


def with_events(batch: Batch, events: list[GpuEvent]) -> Batch:
    return batch.model_copy(update={"events": events})


def event_rows(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute("SELECT count(*) FROM gpu_events").fetchone()[0])


def test_events_are_stored_once_even_when_the_batch_is_resent(
    client: TestClient, tmp_path: Path
) -> None:
    batch = with_events(
        make_batch(seq=1, timestamp=START), [xid(START - 5, 79), xid(START - 2, 48)]
    )
    assert push(client, batch).json()["status"] == "accepted"
    assert push(client, batch).json()["status"] == "duplicate"
    # The agent lost its batch record and sent the same events in a new batch: still once.
    again = with_events(make_batch(seq=2, timestamp=START + 10), list(batch.events))
    assert push(client, again).json()["status"] == "accepted"
    assert event_rows(tmp_path / "dcmon.db") == 2
    events = client.get("/api/v1/events").json()["events"]
    assert [(e["code"], e["time"]) for e in events] == [(48, START - 2), (79, START - 5)]
    assert events[0] == {
        "node": "gpu01",
        "node_id": identity().node_id,
        "time": START - 2,
        "kind": "xid",
        "source": "nvml",
        "code": 48,
        "severity": "critical",
        "action": "RESET_GPU",
        "mnemonic": "TEST",
        "message": "Xid 48 seen",
        "gpu_index": 0,
        "uuid": UUID0,
        "pci_bus_id": "00000000:00:06.0",
        "pid": None,
    }


def _seed(client: TestClient) -> None:
    push(
        client,
        with_events(
            make_batch(seq=1, timestamp=START),
            [
                xid(START - 30, 79),
                xid(START - 20, 13, uuid=UUID1, severity="warning", gpu_index=1),
                xid(START - 10, 48),
            ],
        ),
    )
    push(
        client,
        with_events(
            make_batch(seq=1, timestamp=START, node=OTHER_NODE, with_inventory=False),
            [xid(START - 15, 79)],
        ),
    )


FILTERS = [
    pytest.param({}, [48, 79, 13, 79], id="all-newest-first"),
    pytest.param({"node": "gpu02"}, [79], id="node-name"),
    pytest.param({"node": "f" * 32}, [79], id="node-id"),
    pytest.param({"node": "nope"}, [], id="unknown-node"),
    pytest.param({"uuid": UUID1}, [13], id="uuid"),
    pytest.param({"code": 79}, [79, 79], id="code"),
    pytest.param({"severity": "warning"}, [13], id="severity"),
    pytest.param({"start": START - 20, "end": START - 15}, [79, 13], id="time-range-inclusive"),
    pytest.param({"limit": 2}, [48, 79], id="limit"),
]


@pytest.mark.parametrize(("params", "codes"), FILTERS)
def test_event_filters(client: TestClient, params: dict[str, object], codes: list[int]) -> None:
    _seed(client)
    response = client.get("/api/v1/events", params=params)
    assert response.status_code == 200
    assert [event["code"] for event in response.json()["events"]] == codes


def test_time_range_accepts_rfc3339(client: TestClient) -> None:
    _seed(client)
    start = datetime.fromtimestamp(START - 12, UTC).isoformat()
    events = client.get("/api/v1/events", params={"start": start}).json()["events"]
    assert [event["code"] for event in events] == [48]


BAD_PARAMS = [
    pytest.param({"code": "abc"}, "code", id="code-not-int"),
    pytest.param({"code": 70_000}, "code", id="code-too-large"),
    pytest.param({"severity": "fatal"}, "severity", id="severity"),
    pytest.param({"start": "yesterday"}, "start", id="start"),
    pytest.param({"end": "nan"}, "end", id="end-nan"),
    pytest.param({"start": START, "end": START - 1}, "end", id="end-before-start"),
    pytest.param({"limit": 0}, "limit", id="limit-zero"),
    pytest.param({"limit": 100_000}, "limit", id="limit-over-max"),
]


@pytest.mark.parametrize(("params", "name"), BAD_PARAMS)
def test_bad_parameters_are_refused_naming_them(
    client: TestClient, params: dict[str, object], name: str
) -> None:
    response = client.get("/api/v1/events", params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert name in error["message"]
    assert error["code"] in {"invalid_parameter", "invalid_request"}


def test_event_from_the_future_refuses_the_whole_batch(
    client: TestClient, clock: FakeClock, tmp_path: Path
) -> None:
    push(client, make_batch(seq=1, timestamp=START))
    before = row_counts(tmp_path / "dcmon.db")
    batch = with_events(
        make_batch(seq=2, timestamp=START + 10), [xid(START, 79), xid(START + 3600, 48)]
    )
    clock.now = START + 10
    response = push(client, batch)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "timestamp_in_future"
    assert "events.1.time" in response.json()["error"]["message"]
    assert row_counts(tmp_path / "dcmon.db") == before
    assert event_rows(tmp_path / "dcmon.db") == 0

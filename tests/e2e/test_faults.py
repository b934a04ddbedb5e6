"""Delivery under faults, with real processes on 127.0.0.1: a server killed while agents push,
a server away for 15 minutes (compressed with a fake clock), agents killed mid-run with a spool
file corrupted, and a spool directory on a full disk."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from agent.config import AgentSettings
from agent.main import build
from agent.transport.http import HttpTransport
from server.storage import head
from tests.e2e.processes import (
    ServerSpec,
    agent_argv,
    get,
    running,
    server_spec,
    wait_for,
)
from tests.integration import require_binary

SPOOL_SUFFIX = ".batch"


class _Stored:
    """What the server's SQLite database holds for one node (read-only, beside the server)."""

    def __init__(self, seqs: set[int], samples: int, distinct: int, rows: int) -> None:
        self.seqs = seqs
        self.samples = samples  # samples stored in the head
        self.distinct = distinct  # distinct (series, timestamp) pairs among them
        self.rows = rows  # head rows: one per batch timestamp


def _stored(spec: ServerSpec, tmp_path: Path, name: str) -> _Stored:
    database = tmp_path / "server" / "dcmon.db"
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT id FROM nodes WHERE name = ?", (name,)).fetchone()
        assert row is not None, f"node {name} is not in the database"
        pk = row[0]
        seqs = {s for (s,) in db.execute("SELECT seq FROM ingested_batches WHERE node_pk=?", (pk,))}
        samples = 0
        pairs: set[tuple[int, int]] = set()
        rows = 0
        for ts_ms, n, payload in db.execute(
            "SELECT ts_ms, n, payload FROM head_chunks WHERE node_pk=?", (pk,)
        ):
            rows += 1
            samples += n
            ids, _values = head.unpack(n, payload)
            pairs.update((int(i), ts_ms) for i in ids)
        return _Stored(seqs, samples, len(pairs), rows)
    finally:
        db.close()


def _spooled(state_dir: Path) -> list[Path]:
    spool = state_dir / "spool"
    return sorted(spool.glob(f"*{SPOOL_SUFFIX}")) if spool.is_dir() else []


def _latest(spec: ServerSpec, metric: str, node: str) -> float | None:
    body = get(f"{spec.url}/api/v1/latest?metric={metric}&instance={node}").json()
    values = [item["value"] for item in body["series"]]
    return float(values[0]) if values else None


def _server_env() -> dict[str, str]:
    # Keep every sample in the head so the database can be counted directly.
    return {"DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "86400"}


def _agent(tmp_path: Path, spec: ServerSpec, name: str, *extra: str) -> list[str]:
    argv = agent_argv(
        tmp_path, spec, "--gpu-backend", "simulated", "--simulated-gpus", "2",
        "--node-name", name, *extra,
    )  # fmt: skip
    state = str(tmp_path / name)
    return [state if part == str(tmp_path / "agent") else part for part in argv]


def test_server_killed_while_agents_push_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path,
) -> None:
    spec = server_spec(tmp_path)
    names = [f"push{i}" for i in range(3)]
    env = _server_env()
    with ExitStack() as stack:
        server = stack.enter_context(running(spec.argv, tmp_path / "server-1.log", env))
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
        agents = [
            stack.enter_context(running(_agent(tmp_path, spec, name), tmp_path / f"{name}.log"))
            for name in names
        ]
        wait_for(lambda: all(_spooled(tmp_path / n) == [] for n in names), 20, "first sends")
        time.sleep(3)
        server.stop(signal.SIGKILL)
        time.sleep(4)  # agents keep collecting into their spools
        assert any(_spooled(tmp_path / name) for name in names), "nothing was spooled"
        server = stack.enter_context(running(spec.argv, tmp_path / "server-2.log", env))
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server back")
        wait_for(
            lambda: all(len(_spooled(tmp_path / n)) <= 1 for n in names), 60, "backlog drained"
        )
        time.sleep(2)
        for agent in agents:
            assert agent.stop(signal.SIGTERM, timeout=20) == 0
            assert "Traceback" not in agent.output(), agent.output()[-3000:]
        for name in names:
            assert _spooled(tmp_path / name) == [], f"{name} exited with batches unsent"
        assert server.stop(signal.SIGTERM, timeout=20) == 0
    for name in names:
        stored = _stored(spec, tmp_path, name)
        # A fresh agent numbers its batches 0, 1, 2 ... : a gap would be a lost batch.
        assert stored.seqs == set(range(max(stored.seqs) + 1)), f"{name}: batches missing"
        assert stored.rows == len(stored.seqs), f"{name}: one head row per batch"
        assert stored.samples == stored.distinct, f"{name}: a sample stored twice"
        assert len(stored.seqs) >= 10


def test_server_away_for_15_minutes_then_back(tmp_path: Path) -> None:
    """A fake clock runs 90 ten-second ticks against a dead port, then the real server starts."""

    class Clock:
        def __init__(self) -> None:
            self.wall = time.time() - 900.0  # the outage ends now: no batch is in the future
            self.mono = 1000.0

        def time(self) -> float:
            return self.wall

        def monotonic(self) -> float:
            return self.mono

    spec = server_spec(tmp_path)
    clock = Clock()
    settings = AgentSettings(
        server_url=spec.url,
        state_dir=tmp_path / "away",
        node_name="away",
        interval_seconds=10.0,
        gpu={"backend": "simulated", "simulated_count": 2},
        events={"nvml": False, "kmsg_path": None},
    )
    token = spec.token_file.read_text().strip()
    transport = HttpTransport(spec.url, token, timeout_seconds=10.0)
    with ExitStack() as stack:
        stack.callback(transport.close)
        wiring = build(settings, stack, transport, clock=clock)
        for _ in range(90):
            wiring.agent.tick()
            assert not wiring.shipper.deliver_once()  # connection refused: kept
            clock.wall += 10.0
            clock.mono += 10.0
        files = _spooled(tmp_path / "away")
        assert len(files) == 90
        first = wiring.spool.peek_many(5, 1 << 30)
        with running(spec.argv, tmp_path / "server.log", _server_env()) as server:
            wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
            for _ in range(200):
                if wiring.spool.stats(clock.monotonic()).batches == 0:
                    break
                wiring.shipper.deliver_once()
            assert wiring.spool.stats(clock.monotonic()).batches == 0
            stored = _stored(spec, tmp_path, "away")
            assert stored.seqs == set(range(90))
            assert stored.rows == 90 and stored.samples == stored.distinct
            # The same batches once more (as after a lost acknowledgement): no effect.
            assert [transport.send(batch.payload).status for batch in first] == ["duplicate"] * 5
            again = _stored(spec, tmp_path, "away")
            assert again.samples == stored.samples and again.seqs == stored.seqs
            assert server.stop(signal.SIGTERM, timeout=20) == 0


def test_agent_killed_repeatedly_then_a_corrupt_spool_file_is_skipped(tmp_path: Path) -> None:
    spec = server_spec(tmp_path)
    name = "crashy"
    state = tmp_path / name
    for round_ in range(3):  # the server is down: batches pile up in the spool
        with running(_agent(tmp_path, spec, name), tmp_path / f"agent-{round_}.log") as agent:
            enough = round_ * 2 + 2
            wait_for(lambda: len(_spooled(state)) >= enough, 20, "batches spooled")  # noqa: B023
            time.sleep(0.3 + 0.37 * round_)
            agent.stop(signal.SIGKILL)
    files = _spooled(state)
    assert len(files) >= 6
    victim = files[len(files) // 2]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF  # one flipped bit in the payload: the checksum no longer matches
    victim.write_bytes(bytes(data))
    truncated = state / "spool" / f"{10**9:020d}{SPOOL_SUFFIX}"
    truncated.write_bytes(files[0].read_bytes()[:40])  # a write cut short
    expected = {int(path.name.removesuffix(SPOOL_SUFFIX)) for path in files} - {
        int(victim.name.removesuffix(SPOOL_SUFFIX))
    }
    with (
        running(spec.argv, tmp_path / "server.log", _server_env()) as server,
        running(_agent(tmp_path, spec, name), tmp_path / "agent-last.log") as agent,
    ):
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
        wait_for(lambda: len(_spooled(state)) <= 1, 60, "spool drained")
        wait_for(
            lambda: _latest(spec, "dcmon_agent_spool_corrupt_records_total", name) == 2.0,
            30,
            "the agent to report two corrupt spool records",
        )
        stored = _stored(spec, tmp_path, name)
        assert expected <= stored.seqs, sorted(expected - stored.seqs)
        assert stored.samples == stored.distinct
        assert agent.stop(signal.SIGTERM, timeout=20) == 0
        assert "Traceback" not in agent.output()
        assert server.stop(signal.SIGTERM, timeout=20) == 0


def test_spool_on_a_full_disk_degrades_to_memory_and_says_so(tmp_path: Path) -> None:
    unshare = require_binary("unshare")
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        if os.environ.get("DCMON_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"cannot mount a small tmpfs in a user namespace: {probe.stderr}")
        pytest.skip(f"cannot mount a small tmpfs in a user namespace: {probe.stderr.strip()}")
    spec = server_spec(tmp_path)
    name = "full"
    spool_dir = tmp_path / "full-spool"
    spool_dir.mkdir()
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {spool_dir} && "
        f'(cat /dev/zero > {spool_dir}/filler 2>/dev/null; true) && exec "$@"'
    )
    argv = [unshare, "-rm", "sh", "-c", script, "sh", *_agent(tmp_path, spec, name)]
    env = {"DCMON_AGENT_SPOOL__DIR": str(spool_dir)}
    with (
        running(spec.argv, tmp_path / "server.log", _server_env()) as server,
        running(argv, tmp_path / "agent.log", env) as agent,
    ):
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
        wait_for(
            lambda: _latest(spec, "dcmon_agent_spool_degraded", name) == 1.0,
            30,
            "the agent to report its spool degraded",
        )
        first = _stored(spec, tmp_path, name)
        wait_for(
            lambda: len(_stored(spec, tmp_path, name).seqs) >= len(first.seqs) + 3,
            20,
            "batches still delivered from memory",
        )
        assert agent.popen.poll() is None, agent.output()
        assert "spool" in agent.output().lower()
        assert agent.stop(signal.SIGTERM, timeout=20) == 0
        assert server.stop(signal.SIGTERM, timeout=20) == 0

"""Delivery under faults, with real processes on 127.0.0.1: a server killed while agents push,
a server away for 15 minutes (compressed with a fake clock), agents killed mid-run with a spool
file corrupted, and a spool directory on a full disk.

"Nothing lost, nothing stored twice" is checked by ``tests/e2e/ledger.py`` against what the
agents generated: agent processes send through ``tests/e2e/tap.py``, which keeps a copy of every
batch on the way; the in-process agent's batches are read from its spool before delivery."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Collection
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import AgentSettings
from agent.identity import NODE_ID_FILE, load_or_create_node_id
from agent.main import build
from agent.sequence import FALLBACK_BASE
from agent.transport.http import HttpTransport
from agent.wire.codec import decode_batch
from agent.wire.schema import Batch
from tests.e2e.ledger import Stored, problems, read_stored
from tests.e2e.processes import (
    ServerSpec,
    agent_argv,
    get,
    running,
    server_spec,
    wait_for,
)
from tests.e2e.tap import Tap, tapping
from tests.integration import require_binary

SPOOL_SUFFIX = ".batch"


def _database(tmp_path: Path) -> Path:
    return tmp_path / "server" / "dcmon.db"


def _stored(spec: ServerSpec, tmp_path: Path, name: str) -> Stored:
    """Returns: every ingest record and sample copy the server's database holds for ``name``."""
    database = _database(tmp_path)
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT node_id FROM nodes WHERE name = ?", (name,)).fetchone()
    finally:
        db.close()
    assert row is not None, f"node {name} is not in the database"
    return read_stored(database, row[0])


def _sent(tap: Tap, name: str) -> dict[int, Batch]:
    """Returns: the batches the agent called ``name`` sent through ``tap``, by seq."""
    nodes = {node_id for node_id, seen in tap.batches.items() if _name_of(seen) == name}
    assert len(nodes) == 1, f"{name}: {len(nodes)} node ids went through the tap"
    return tap.of(nodes.pop())


def _name_of(batches: dict[int, Batch]) -> str:
    return next(iter(batches.values())).node.name


def _assert_ledger(
    tmp_path: Path, generated: dict[int, Batch], unsettled: Collection[int] = ()
) -> Stored:
    """Fail unless the database holds each generated batch once, with exactly its samples."""
    assert generated, "no batch was generated"
    stored = read_stored(_database(tmp_path), next(iter(generated.values())).node.node_id)
    found = problems(generated, stored, unsettled)
    assert not found, f"{_name_of(generated)}: " + "\n".join(found)
    return stored


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
        tap = stack.enter_context(tapping(spec.port))
        via_tap = replace(spec, url=tap.url)
        server = stack.enter_context(running(spec.argv, tmp_path / "server-1.log", env))
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
        agents = [
            stack.enter_context(running(_agent(tmp_path, via_tap, name), tmp_path / f"{name}.log"))
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
    assert tap.conflicts == []
    for name in names:
        sent = _sent(tap, name)
        # One agent process numbers its batches one after another: a gap is a batch it made
        # and never sent, which the tap cannot see and the ledger therefore cannot either.
        assert sorted(sent) == list(range(min(sent), max(sent) + 1)), f"{name}: batches missing"
        assert len(sent) >= 10
        _assert_ledger(tmp_path, sent)


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
        spooled = wiring.spool.peek_many(90, 1 << 30)
        generated = {b.seq: decode_batch(b.payload, "gzip", 64 << 20) for b in spooled}
        assert len(generated) == 90
        first = spooled[:5]
        with running(spec.argv, tmp_path / "server.log", _server_env()) as server:
            wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
            for _ in range(200):
                if wiring.spool.stats(clock.monotonic()).batches == 0:
                    break
                wiring.shipper.deliver_once()
            assert wiring.spool.stats(clock.monotonic()).batches == 0
            stored = _assert_ledger(tmp_path, generated)
            assert sorted(stored.seqs) == sorted(generated)
            # The same batches once more (as after a lost acknowledgement): no effect.
            assert [transport.send(batch.payload).status for batch in first] == ["duplicate"] * 5
            _assert_ledger(tmp_path, generated)
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
    victim_seq = int(victim.name.removesuffix(SPOOL_SUFFIX))
    expected = {int(path.name.removesuffix(SPOOL_SUFFIX)) for path in files} - {victim_seq}
    with (
        tapping(spec.port) as tap,
        running(spec.argv, tmp_path / "server.log", _server_env()) as server,
        running(
            _agent(tmp_path, replace(spec, url=tap.url), name), tmp_path / "agent-last.log"
        ) as agent,
    ):
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
        wait_for(lambda: len(_spooled(state)) <= 1, 60, "spool drained")
        wait_for(
            lambda: _latest(spec, "dcmon_agent_spool_corrupt_records_total", name) == 2.0,
            30,
            "the agent to report two corrupt spool records",
        )
        assert agent.stop(signal.SIGTERM, timeout=20) == 0
        assert "Traceback" not in agent.output()
        assert server.stop(signal.SIGTERM, timeout=20) == 0
    assert tap.conflicts == []
    sent = _sent(tap, name)
    assert expected <= set(sent), sorted(expected - set(sent))
    assert victim_seq not in sent  # the corrupt record was skipped, never sent
    unsettled = {int(path.name.removesuffix(SPOOL_SUFFIX)) for path in _spooled(state)}
    _assert_ledger(tmp_path, sent, unsettled)


def test_a_state_directory_on_a_full_disk_degrades_and_numbers_stay_unique(
    tmp_path: Path,
) -> None:
    """The whole state directory (batch seq, spool) on a full tmpfs, through two agent runs.

    The seq cannot be persisted and the spool cannot be written: the agent must keep
    collecting, deliver from memory, say so (log and metrics), and never hand out a seq that
    another run hands out again (the tap records a different batch under a seq it saw as a
    conflict, and the ledger checks each batch is stored once with its samples).
    """
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
    state = tmp_path / name
    state.mkdir()
    seed = tmp_path / "seed"
    seed.mkdir()
    node_id = load_or_create_node_id(seed)  # the node exists already; its disk filled up since
    # Each run gets the state directory as a fresh, full tmpfs holding only the node id (no
    # seq file survives: a restart must not reuse the numbers of the run before either).
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {state} && cp {seed}/{NODE_ID_FILE} {state}/ && "
        f'(cat /dev/zero > {state}/filler 2>/dev/null; true) && exec "$@"'
    )
    seqs_by_run: list[set[int]] = []
    with (
        tapping(spec.port) as tap,
        running(spec.argv, tmp_path / "server.log", _server_env()) as server,
    ):
        wait_for(lambda: get(spec.url + "/readyz").status_code == 200, 30, "server ready")
        for run in range(2):
            agent_argv_ = _agent(tmp_path, replace(spec, url=tap.url), name)
            argv = [unshare, "-rm", "sh", "-c", script, "sh", *agent_argv_]
            before = set(tap.of(node_id))
            with running(argv, tmp_path / f"agent-{run}.log") as agent:
                wait_for(
                    lambda: (
                        _latest(spec, "dcmon_agent_spool_degraded", name) == 1.0
                        and (_latest(spec, "dcmon_agent_state_write_errors_total", name) or 0) >= 1
                    ),
                    30,
                    "the agent to report its spool degraded and its state unwritable",
                )
                wait_for(
                    lambda: len(set(tap.of(node_id)) - before) >= 4,  # noqa: B023
                    20,
                    "batches still collected and delivered from memory",
                )
                assert agent.popen.poll() is None, agent.output()
                assert agent.stop(signal.SIGTERM, timeout=20) == 0
                output = agent.output()
                assert "Traceback" not in output, output[-3000:]
                assert "cannot persist the batch seq" in output
                assert "spool" in output.lower()
            seqs_by_run.append(set(tap.of(node_id)) - before)
        assert server.stop(signal.SIGTERM, timeout=20) == 0
    assert tap.conflicts == []
    first, second = seqs_by_run
    assert min(first | second) >= FALLBACK_BASE  # no reservation could be persisted
    assert min(second) > max(first)  # the restart did not go back to numbers already used
    _assert_ledger(tmp_path, _sent(tap, name))

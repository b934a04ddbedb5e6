"""Two server replicas on one PostgreSQL (DESIGN 10): both ingest, one leads the maintenance, the
leader is SIGKILLed in the middle of a compaction and the other takes over. In the end history
holds every acknowledged sample once and no block was written twice.

Real processes: two ``dcmon server`` and PostgreSQL. A test-only trigger on the blocks table
records every block insert that commits, so a block that a second compactor rewrote shows up.
Phase 1 loads a backlog through both replicas with maintenance idle; phase 2 restarts them with
maintenance every 0.5 s while live batches keep arriving at both, and kills the leader as soon
as its first window is committed.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from agent.wire.codec import encode_batch
from agent.wire.schema import MetricFamily
from tests.e2e.processes import Process, ServerSpec, get, replica_specs, running, wait_for
from tests.factories import identity, make_batch
from tests.server.conftest import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODES = 6
GPUS = 8
METRICS = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_FB_USED",
)
TICK_S = 10.0
BLOCK_S = 600
GRACE_S = 1800  # the live window stays open for the whole test
BACKLOG_S = 2 * 3600  # twelve closed windows per node
LIVE_EVERY_S = 0.25
MAINTENANCE_S = 0.5
FAILOVER_BOUND_S = 5.0
DAY_MS = 86_400_000

AUDIT = """
CREATE TABLE block_writes (series_id integer, tier smallint, end_ms bigint);
CREATE FUNCTION record_block_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO block_writes VALUES (NEW.series_id, NEW.tier, NEW.end_ms);
    RETURN NEW;
END $$;
CREATE TRIGGER record_block_write AFTER INSERT ON blocks
    FOR EACH ROW EXECUTE FUNCTION record_block_write();
"""


def value(node: int, gpu: int, metric: int, ts_ms: int) -> float:
    return float((ts_ms // 1000 * 7 + node * 131 + gpu * 17 + metric * 1009) % 9973)


@dataclass
class Fleet:
    """Sends each batch to one replica in turn; a batch without an answer (a dead replica) goes
    to the next one, as an agent behind a load balancer would re-send it. Records the acks."""

    urls: list[str]
    token: str
    acked: dict[tuple[int, int], int] = field(default_factory=dict)  # (node, seq) -> ts_ms
    accepted_samples: list[int] = field(default_factory=list)
    resent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, client: httpx.Client, node: int, seq: int, ts_ms: int, prefer: int) -> None:
        families = [
            MetricFamily(
                name=name,
                samples=[
                    ({"gpu": str(gpu), "UUID": f"GPU-{node}-{gpu}"}, value(node, gpu, m, ts_ms))
                    for gpu in range(GPUS)
                ],
            )
            for m, name in enumerate(METRICS)
        ]
        batch = make_batch(
            seq=seq,
            timestamp=ts_ms / 1000,
            node=identity(name=f"replica{node}", node_id=f"{node + 1:032x}"),
            metrics=families,
            interval=TICK_S,
            with_inventory=seq == 1,
        )
        body = encode_batch(batch)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        deadline = time.monotonic() + 60
        attempt = 0
        while time.monotonic() < deadline:
            url = self.urls[(prefer + attempt) % len(self.urls)]
            attempt += 1
            try:
                response = client.post(f"{url}/api/v1/ingest", content=body, headers=headers)
            except httpx.TransportError:
                with self.lock:
                    self.resent += 1
                time.sleep(0.05)
                continue
            if response.status_code in (429, 503):
                time.sleep(0.2)
                continue
            assert response.status_code == 200, response.text
            ack = response.json()
            with self.lock:
                self.acked[(node, seq)] = ts_ms
                if ack["status"] == "accepted":
                    self.accepted_samples.append(ack["samples"])
            return
        raise AssertionError(f"batch {seq} of node {node} was never acknowledged")


def load_backlog(fleet: Fleet, first_ms: int) -> int:
    """Every node's backlog, nodes in parallel; returns the next seq of each node."""
    ticks = int(BACKLOG_S / TICK_S)

    def node_backlog(node: int) -> None:
        with httpx.Client(timeout=10.0) as client:
            for tick in range(ticks):
                fleet.send(client, node, tick + 1, first_ms + round(tick * TICK_S * 1000), tick)

    threads = [threading.Thread(target=node_backlog, args=(node,)) for node in range(NODES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fleet.acked) == NODES * ticks
    return ticks + 1


@dataclass
class LiveNodes:
    """Live batches (timestamps now) from every node, alternating between the replicas."""

    fleet: Fleet
    first_seq: int
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        for node in range(NODES):
            thread = threading.Thread(target=self._run, args=(node,), name=f"live-{node}")
            thread.start()
            self.threads.append(thread)

    def _run(self, node: int) -> None:
        seq, last_ms = self.first_seq, 0
        try:
            with httpx.Client(timeout=10.0) as client:
                while not self.stop.is_set():
                    ts_ms = max(last_ms + 1, round(time.time() * 1000))
                    self.fleet.send(client, node, seq, ts_ms, node + seq)
                    seq, last_ms = seq + 1, ts_ms
                    self.stop.wait(LIVE_EVERY_S)
        except BaseException as exc:
            self.errors.append(exc)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)
        assert not self.errors, self.errors


def env(maintenance_s: float) -> dict[str, str]:
    return {
        "DCMON_SERVER_STORAGE_BLOCK_SECONDS": str(BLOCK_S),
        "DCMON_SERVER_COMPACTION_GRACE_SECONDS": str(GRACE_S),
        "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": str(maintenance_s),
        # the replicas' own series off: the stored samples are checked against pushed ones
        "DCMON_SERVER_SELF_SERIES": "false",
    }


def start_replicas(
    stack: ExitStack, specs: list[ServerSpec], tmp_path: Path, phase: str, maintenance_s: float
) -> list[Process]:
    servers = [
        stack.enter_context(
            running(spec.argv, tmp_path / f"{phase}-server-{n}.log", env(maintenance_s))
        )
        for n, spec in enumerate(specs)
    ]
    for spec, server in zip(specs, servers, strict=True):

        def ready(spec: ServerSpec = spec, server: Process = server) -> bool:
            assert server.popen.poll() is None, f"the server exited:\n{server.output()}"
            return get(f"{spec.url}/readyz").status_code == 200

        wait_for(ready, 60, "ready")
    return servers


def is_leader(spec: ServerSpec) -> bool:
    return "dcmon_server_leader 1.0" in get(f"{spec.url}/metrics").text


@pytest.fixture
def db(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    url = make_url(postgres_url)
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
    ) as conn:
        yield conn


def scalar(db: psycopg.Connection[Any], query: str, *args: Any) -> Any:
    row = db.execute(query, args).fetchone()
    assert row is not None
    return row[0]


def backlog_rows(db: psycopg.Connection[Any], closed_ms: int) -> int:
    """Head rows of the closed windows: what compaction has still to do."""
    count: int = scalar(db, "SELECT count(*) FROM head_chunks WHERE ts_ms <= %s", closed_ms)
    return count


@pytest.mark.timeout(300)
def test_leader_killed_mid_compaction_loses_and_duplicates_nothing(
    tmp_path: Path, postgres_url: str, db: psycopg.Connection[Any]
) -> None:
    specs = replica_specs(tmp_path, postgres_url, 2)
    fleet = Fleet([spec.url for spec in specs], specs[0].token_file.read_text().strip())
    now_ms = round(time.time() * 1000)
    closed_ms = (now_ms - GRACE_S * 1000) // (BLOCK_S * 1000) * (BLOCK_S * 1000)
    first_ms = closed_ms - BACKLOG_S * 1000 + 1000

    # Phase 1: both start at once on an empty database (migrations must not collide), then
    # the backlog arrives through both; maintenance is idle.
    with ExitStack() as stack:
        servers = start_replicas(stack, specs, tmp_path, "load", 3600)
        db.execute(AUDIT)
        next_seq = load_backlog(fleet, first_ms)
        for server in servers:
            assert server.stop() == 0, server.output()
    closed_rows = backlog_rows(db, closed_ms)
    assert closed_rows == NODES * (next_seq - 1), "nothing compacted yet"

    # Phase 2: maintenance every 0.5 s, live batches at both, the leader killed mid-compaction.
    live = LiveNodes(fleet, next_seq)
    with ExitStack() as stack:
        stack.callback(live.finish)
        servers = start_replicas(stack, specs, tmp_path, "serve", MAINTENANCE_S)
        live.start()
        # Kill once a sixth of the backlog is compacted: the follower has had several
        # maintenance intervals in which it must not have compacted alongside.
        wait_for(lambda: backlog_rows(db, closed_ms) <= closed_rows * 5 // 6, 120, "compaction")
        leaders = [n for n, spec in enumerate(specs) if is_leader(spec)]
        assert len(leaders) == 1, f"one leader, not {leaders}"
        leader, survivor = leaders[0], 1 - leaders[0]
        servers[leader].popen.send_signal(signal.SIGKILL)
        servers[leader].popen.wait(10)
        killed_at = time.monotonic()
        left = backlog_rows(db, closed_ms)
        assert 0 < left < closed_rows, f"the kill was not mid-compaction: {left} of {closed_rows}"
        assert "compacting" in servers[leader].output()
        wait_for(lambda: is_leader(specs[survivor]), 30, "the survivor to take over")
        failover_s = time.monotonic() - killed_at
        print(
            f"killed with {left} of {closed_rows} backlog head rows left; the survivor led"
            f" {failover_s:.2f} s later"
        )
        assert failover_s < FAILOVER_BOUND_S
        wait_for(lambda: backlog_rows(db, closed_ms) == 0, 180, "the survivor to finish")
        time.sleep(2 * LIVE_EVERY_S)
        live.finish()
        assert fleet.resent > 0, "no batch was re-sent: the kill did not hit the ingest path"
        print(f"{len(fleet.acked)} batches acknowledged, {fleet.resent} sends re-sent")
        check_history(specs[survivor], fleet, first_ms)
        assert servers[survivor].stop() == 0, servers[survivor].output()

    check_database(db, fleet)


def check_history(spec: ServerSpec, fleet: Fleet, first_ms: int) -> None:
    """Raw history through the API equals every acknowledged sample; the 1-minute rollups
    count each of them once."""
    by_node: dict[int, list[int]] = defaultdict(list)
    for (node, _seq), ts_ms in fleet.acked.items():
        by_node[node].append(ts_ms)
    end = time.time() + 1
    with httpx.Client(timeout=30.0) as client:
        for node, stamps in by_node.items():
            stamps.sort()
            for m, metric in enumerate(METRICS):
                body = client.get(
                    f"{spec.url}/api/v1/history",
                    params={
                        "metric": metric,
                        "instance": f"replica{node}",
                        "start": first_ms / 1000 - 1,
                        "end": end,
                    },
                ).json()
                assert len(body["series"]) == GPUS, body
                for series in body["series"]:
                    gpu = int(series["labels"]["gpu"])
                    got = [(round(t * 1000), v) for t, v in series["points"]]
                    want = [(ts, value(node, gpu, m, ts)) for ts in stamps]
                    assert got == want, f"node {node} {metric} gpu {gpu}"
        counts = client.get(
            f"{spec.url}/api/v1/history",
            params={
                "metric": METRICS[0],
                "start": (first_ms // 60_000) * 60 - 60,
                "end": end + 60,
                "step": 60,
                "aggregation": "count",
            },
        ).json()
    assert counts["tier"] == "1m", counts["tier"]
    total = sum(point[1] for series in counts["series"] for point in series["points"])
    assert total == len(fleet.acked) * GPUS


def check_database(db: psycopg.Connection[Any], fleet: Fleet) -> None:
    """Every batch stored once; every raw and 1-minute block written once; every day block of
    1-hour buckets written once per window compacted into it; every sample stored once."""
    batches = scalar(db, "SELECT count(*) FROM ingested_batches")
    assert batches == len(fleet.acked)
    rewritten = db.execute(
        "SELECT series_id, tier, end_ms, count(*) FROM block_writes WHERE tier IN (0, 1)"
        " GROUP BY series_id, tier, end_ms HAVING count(*) > 1"
    ).fetchall()
    assert rewritten == [], f"{len(rewritten)} blocks written more than once: {rewritten[:5]}"
    written = {tuple(row) for row in db.execute("SELECT series_id, tier, end_ms FROM block_writes")}
    kept = {tuple(row) for row in db.execute("SELECT series_id, tier, end_ms FROM blocks")}
    assert written == kept
    day_writes = Counter(
        {
            (row[0], row[1]): row[2]
            for row in db.execute(
                "SELECT series_id, end_ms, count(*) FROM block_writes WHERE tier = 2"
                " GROUP BY series_id, end_ms"
            )
        }
    )
    windows_per_day: Counter[tuple[int, int]] = Counter()
    for series_id, end_ms in db.execute("SELECT series_id, end_ms FROM blocks WHERE tier = 0"):
        windows_per_day[(series_id, -(-end_ms // DAY_MS) * DAY_MS)] += 1
    assert day_writes == windows_per_day
    per_batch = set(fleet.accepted_samples)
    assert len(per_batch) == 1, per_batch
    stored = scalar(
        db,
        "SELECT (SELECT coalesce(sum(n), 0) FROM head_chunks)"
        " + (SELECT coalesce(sum(count), 0) FROM blocks WHERE tier = 0)",
    )
    assert stored == per_batch.pop() * len(fleet.acked)

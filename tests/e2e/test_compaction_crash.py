"""A server killed (SIGKILL) while it compacts loses nothing, and the restarted server finishes
the compaction: real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx

from agent.wire.codec import encode_batch
from agent.wire.schema import MetricFamily
from tests.e2e.processes import get, running, server_spec, wait_for
from tests.factories import identity, make_batch
from tests.server.conftest import database_url, postgres_server, postgres_url

__all__ = ["database_url", "postgres_server", "postgres_url"]

NODES = 8
TICKS = 360  # one hour at 10 s: six 10-minute windows per node


def _storage(url: str) -> dict[str, Any]:
    body: dict[str, Any] = get(f"{url}/api/v1/storage").json()
    return body


def _push_history(url: str, token: str, start: float) -> int:
    sent = 0
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    with httpx.Client(timeout=10.0) as client:
        for node in range(NODES):
            who = identity(name=f"crash{node}", node_id=f"{node + 1:032x}")
            for tick in range(TICKS):
                families = [
                    MetricFamily(
                        name="DCGM_FI_DEV_GPU_UTIL",
                        samples=[
                            ({"gpu": str(g), "UUID": f"G-{node}-{g}"}, float((tick + g) % 101))
                            for g in range(4)
                        ],
                    ),
                    MetricFamily(
                        name="DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                        samples=[
                            ({"gpu": str(g), "UUID": f"G-{node}-{g}"}, float(tick * 1000))
                            for g in range(4)
                        ],
                    ),
                ]
                batch = make_batch(
                    seq=tick + 1,
                    timestamp=start + tick * 10,
                    node=who,
                    metrics=families,
                    with_inventory=tick == 0,
                )
                response = client.post(
                    f"{url}/api/v1/ingest", content=encode_batch(batch), headers=headers
                )
                assert response.status_code == 200, response.text
                sent += response.json()["samples"]
    return sent


def test_sigkill_during_compaction_loses_nothing(tmp_path: Path, database_url: str) -> None:
    spec = server_spec(tmp_path)
    argv = [*spec.argv, "--database-url", database_url]
    # the server's own series off: the counts below are the pushed samples, exactly
    idle = {"DCMON_SERVER_STORAGE_BLOCK_SECONDS": "600", "DCMON_SERVER_SELF_SERIES": "false"}
    busy = {**idle, "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "0.1"}
    start = time.time() - 3 * 3600
    with running(argv, tmp_path / "server-1.log", idle) as server:
        wait_for(lambda: get(f"{spec.url}/readyz").status_code == 200, 30, "server ready")
        sent = _push_history(spec.url, spec.token_file.read_text().strip(), start)
        assert _storage(spec.url)["head"]["samples"] == sent
        assert server.stop() == 0

    # Compaction every 0.1 s; kill -9 as soon as some windows are compacted.
    with running(argv, tmp_path / "server-2.log", busy) as server:
        wait_for(lambda: get(f"{spec.url}/readyz").status_code == 200, 30, "server ready")
        wait_for(lambda: _storage(spec.url)["tiers"]["raw"]["blocks"] > 0, 60, "compaction")
        server.popen.send_signal(signal.SIGKILL)
        server.popen.wait(10)

    with running(argv, tmp_path / "server-3.log", idle) as server:
        wait_for(lambda: get(f"{spec.url}/readyz").status_code == 200, 30, "server ready")
        after_kill = _storage(spec.url)
        assert after_kill["head"]["samples"] > 0, "the kill came after compaction finished"
        assert after_kill["head"]["samples"] + after_kill["tiers"]["raw"]["entries"] == sent
        assert server.stop() == 0

    with running(argv, tmp_path / "server-4.log", busy) as server:
        wait_for(lambda: get(f"{spec.url}/readyz").status_code == 200, 30, "server ready")
        wait_for(lambda: _storage(spec.url)["head"]["rows"] == 0, 120, "compaction to finish")
        assert _storage(spec.url)["tiers"]["raw"]["entries"] == sent
        body = get(
            f"{spec.url}/api/v1/history?metric=DCGM_FI_DEV_GPU_UTIL&instance=crash3&gpu=2"
            f"&start={start - 1}&end={start + TICKS * 10}"
        ).json()
        values = [point[1] for point in body["series"][0]["points"]]
        assert values == [float((tick + 2) % 101) for tick in range(TICKS)]
        increase = get(
            f"{spec.url}/api/v1/history?metric=DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
            f"&instance=crash3&gpu=2&start={start - 3600}&end={start + 7200}&step=3600"
            "&aggregation=increase"
        ).json()
        assert sum(p[1] for p in increase["series"][0]["points"]) == (TICKS - 1) * 1000.0
        assert server.stop() == 0

"""One node pushing ``node_load1`` to a server replica every second, until stopped: the load
the alerting end-to-end tests raise and lower (``value``) to fire and resolve their rules."""

from __future__ import annotations

import threading
import time

import httpx

from agent.wire.codec import encode_batch
from agent.wire.schema import MetricFamily
from tests.e2e.processes import ServerSpec
from tests.factories import identity, make_batch


class Pusher(threading.Thread):
    """Pushes a batch a second to ``spec`` carrying ``node_load1 = value``."""

    def __init__(self, spec: ServerSpec, value: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.spec = spec
        self.value = value
        self.stop = threading.Event()
        self.acked = 0
        self.errors: list[str] = []

    def run(self) -> None:
        token = self.spec.token_file.read_text().strip()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        seq = 0
        with httpx.Client(timeout=5.0) as client:
            while not self.stop.is_set():
                seq += 1
                metrics = [MetricFamily(name="node_load1", samples=[({}, self.value)])]
                batch = make_batch(seq, time.time(), identity(), metrics, 1.0, seq == 1)
                try:
                    response = client.post(
                        f"{self.spec.url}/api/v1/ingest",
                        content=encode_batch(batch),
                        headers=headers,
                    )
                    if response.status_code == 200:
                        self.acked += 1
                    else:
                        self.errors.append(response.text)
                except httpx.HTTPError as exc:
                    self.errors.append(str(exc))
                self.stop.wait(1.0)

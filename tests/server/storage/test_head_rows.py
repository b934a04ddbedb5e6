"""A rule round's shared head rows (``head_rows.RoundHeads`` through ``Reader.in_round``) give
exactly what plain reads give, fetch each node's rows once for all reads inside the window, and
leave reads outside it to the database. Several nodes, series that come and go between batches
(a row does not hold every series), SQLite and, where installed, PostgreSQL."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from agent.wire.codec import encode_batch
from agent.wire.schema import MetricFamily
from server.auth import Principal, Role
from server.storage.head_rows import RoundHeads
from server.storage.reader import snapshot
from tests.factories import identity, make_batch
from tests.server.conftest import START, FakeClock
from tests.server.storage.helpers import server, services


def test_round_reads_equal_plain_reads_and_fetch_once(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock(START)
    rng = random.Random(7)
    with server(tmp_path, database_url, clock) as (app, _client):
        ingest = services(app).ingest
        for node in range(3):
            who = identity(f"n{node}", node_id=f"{node:032x}")
            for seq in range(1, 61):  # 10 minutes at 10 s
                t = START + seq * 10
                clock.now = max(clock.now, t)
                samples = [({"gpu": str(g)}, rng.random()) for g in range(4) if rng.random() > 0.2]
                metrics = [
                    MetricFamily(
                        name="DCGM_FI_DEV_GPU_TEMP", samples=samples or [({"gpu": "0"}, 1.0)]
                    )
                ]
                batch = make_batch(seq, t, who, metrics, 10.0, seq == 1)
                ack = ingest.ingest(encode_batch(batch), "gzip", Principal(Role.INGEST, "t"))
                assert ack.status == "accepted"
        svc = services(app)
        series = [svc.store.index.get(i) for i in svc.store.index.ids()]
        every = [s for s in series if s is not None]
        now_ms = round((START + 610) * 1000)
        windows = [
            (now_ms - 300_000, now_ms),
            (now_ms - 120_000, now_ms - 60_000),
            (now_ms - 600_000, now_ms + 5_000),
            (now_ms - 900_000, now_ms),  # starts before the round's window: plain read
        ]
        subsets = [every, every[::2], every[1:3]]
        heads = RoundHeads(now_ms - 600_000, now_ms + 60_000)
        with snapshot(svc.store.engine) as conn:
            in_round = svc.reader.in_round(conn, heads)
            for start, end in windows:
                for subset in subsets:
                    plain = svc.reader.raw(subset, start, end)
                    shared = in_round.raw(subset, start, end)
                    assert plain.keys() == shared.keys()
                    for sid, (ts, values) in plain.items():
                        assert np.array_equal(ts, shared[sid][0]), sid
                        assert np.array_equal(values, shared[sid][1], equal_nan=True), sid
                    assert any(len(ts) for ts, _ in plain.values())
        assert heads.fetches == 1  # every node fetched once, by the first read in the window

"""Loading ``bench/promql.py``'s history into dcmon in-process, through the ingest service.

Pushing 6 h of 100 nodes over HTTP one batch at a time takes most of an hour on two cores; the
HTTP layer is not what the PromQL benchmark measures. So the batches a flat-out plan would push
(the same ``SimNode`` renders, the same gzip JSON bytes, tick by tick) are handed to the
server's own ``IngestService.ingest_bulk`` (decode, validation, the store's write path, group
commits on the single writer) in worker processes, each owning a share of the nodes, all writing
the same SQLite file before the server starts on it. Nothing is compacted here: the server,
started afterwards on that folder, compacts the head in its maintenance loop as in production.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import time
from dataclasses import dataclass
from pathlib import Path

from agent_overhead import BenchError
from loadgen import Layout, Plan, SimNode

from server.app import create_app
from server.auth.principal import Principal, Role
from server.settings import ServerSettings

CALLER = Principal(Role.INGEST, "bench-promql-load")


@dataclass(frozen=True)
class Loaded:
    batches: int
    samples: int
    seconds: float


def _settings(data_dir: Path, env: dict[str, str]) -> ServerSettings:
    for key, value in env.items():
        os.environ[key] = value
    return ServerSettings(data_dir=data_dir)


def _worker(
    plan: Plan,
    data_dir: Path,
    env: dict[str, str],
    indices: list[int],
    pipe: multiprocessing.connection.Connection,
) -> None:
    """Ingest ``plan``'s ticks of the nodes ``indices``; report (batches, samples) or an error."""
    try:
        assert plan.ticks is not None
        app = create_app(_settings(data_dir, env))
        services = app.state.services
        layout = Layout.build(plan.profile, plan.interval_seconds, plan.extra)
        nodes = [SimNode(layout, "dcmon", plan.seed, plan.prefix, i, plan.nodes) for i in indices]
        interval_ms = round(plan.interval_seconds * 1000)
        batches = samples = 0
        try:
            for tick in range(plan.ticks):
                base = plan.start_ms + tick * interval_ms
                records = [node.render(base + node.phase_ms) for node in nodes]
                for outcome in services.ingest.ingest_bulk(records, CALLER):
                    if outcome.ack is None or outcome.ack.status != "accepted":
                        raise BenchError(f"batch seq {outcome.seq} not accepted: {outcome}")
                    batches += 1
                    samples += outcome.ack.samples
        finally:
            services.store.writer.close()
            services.store.engine.dispose()
        pipe.send(("done", batches, samples))
    except BaseException as exc:  # noqa: BLE001 (report the worker's failure to the parent)
        pipe.send(("failed", f"{type(exc).__name__}: {exc}", 0))


def load_in_process(
    plan: Plan, data_dir: Path, env: dict[str, str], workers: int, timeout: float
) -> Loaded:
    """Ingest every batch of ``plan`` into the dcmon database in ``data_dir`` (not running).

    Raises:
        BenchError: a batch was refused, a worker failed or the load ran past ``timeout``.
    """
    began = time.monotonic()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Migrate once before the workers open the file, so they do not race on the schema.
    app = create_app(_settings(data_dir, env))
    app.state.services.store.writer.close()
    app.state.services.store.engine.dispose()
    context = multiprocessing.get_context("spawn")
    shares = [list(range(plan.nodes))[i::workers] for i in range(max(1, workers))]
    running = []
    for share in (s for s in shares if s):
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_worker, args=(plan, data_dir, env, share, theirs), daemon=True
        )
        process.start()
        running.append((process, ours))
    batches = samples = 0
    problems = []
    try:
        for process, pipe in running:
            left = timeout - (time.monotonic() - began)
            if not pipe.poll(max(0.0, left)):
                raise BenchError(f"loading dcmon in-process took over {timeout:g} s")
            try:
                kind, first, second = pipe.recv()
            except EOFError:
                problems.append(f"a worker exited with status {process.exitcode}")
                continue
            if kind != "done":
                problems.append(str(first))
                continue
            batches += int(first)
            samples += int(second)
    finally:
        for process, _pipe in running:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    if problems:
        raise BenchError("loading dcmon in-process: " + "; ".join(problems))
    return Loaded(batches, samples, time.monotonic() - began)

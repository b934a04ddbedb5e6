"""``dcmon agent``: parse flags, load settings, wire the stages together and run.

Everything is built here and passed down (no import-time side effects): collectors, batch
builder, spool, transport, shipper, systemd notifier. SIGTERM and SIGINT stop the loop; the
shipper then gets a few seconds to deliver what is left.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from agent import __version__
from agent.backoff import Backoff
from agent.batch import BatchBuilder
from agent.bench.deferred import DeferredJob, order_job
from agent.bench.remote import BenchRunner
from agent.clock import Clock, SystemClock
from agent.collectors.agent_self import AgentSelfCollector
from agent.collectors.base import Collector
from agent.collectors.fabric import SimulatedFabricCollector
from agent.collectors.registry import (
    build_collectors,
    enabled_collectors,
    known_collectors,
)
from agent.compact import CompactForms
from agent.config import AgentSettings, ConfigError, load_settings
from agent.daemon import Agent
from agent.enroll import EnrollmentError, resolve_token, rotate_token
from agent.identity import load_or_create_node_id, node_identity
from agent.inventory import InventoryTracker, read_host_facts
from agent.sequence import Sequence
from agent.shipper import Shipper
from agent.spool import MemorySpool, Spool, open_spool
from agent.statefile import StateError, ensure_directory
from agent.systemd import Notifier
from agent.transport.api import ApiClient
from agent.transport.base import Transport
from agent.transport.bench import HttpReporter, Reporter
from agent.transport.http import HttpTransport
from agent.transport.memory import MemoryTransport
from agent.transport.tls import client_context
from agent.wire.schema import Ack

_log = logging.getLogger("agent")
FLUSH_ON_STOP_SECONDS = 5.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcmon agent",
        description="Collect host and GPU telemetry on this node and push it to a dcmon server.",
    )
    p.add_argument("--config", type=Path, help="TOML config file (default /etc/dcmon/agent.toml)")
    p.add_argument("--server-url", help="dcmon server, e.g. http://127.0.0.1:8470")
    p.add_argument("--token-file", type=Path, help="file holding this node's ingest token")
    p.add_argument(
        "--bootstrap-token-file",
        type=Path,
        help="file holding a bootstrap token: enroll this node if it has no token yet",
    )
    p.add_argument("--interval", type=float, dest="interval_seconds", help="seconds per tick")
    p.add_argument("--state-dir", type=Path, help="where the node id and sequence live")
    p.add_argument("--node-name", help="name shown as the instance label (default: hostname)")
    p.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="node label (repeat)"
    )
    p.add_argument("--gpu-backend", choices=["auto", "nvml", "simulated", "none"])
    p.add_argument("--simulated-gpus", type=int, help="number of simulated GPUs")
    p.add_argument(
        "--simulated-fabric-ports",
        type=int,
        help="InfiniBand ports of the simulated fabric beside simulated GPUs (default 4; 0: none)",
    )
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--once", action="store_true", help="collect and deliver one batch, then exit")
    p.add_argument(
        "--dry-run", action="store_true", help="with --once: print the batch as JSON, send nothing"
    )
    p.add_argument("--list-collectors", action="store_true", help="list collectors and exit")
    p.add_argument(
        "--rotate-token",
        action="store_true",
        help="get a new token for this node from the server, store it in place of the "
        "current one, print its id and exit",
    )
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    conflict = _conflicting_flags(args)
    if conflict:
        print(f"dcmon agent: {conflict}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config, _overrides(args))
    except ConfigError as exc:
        print(f"dcmon agent: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    if args.list_collectors:
        return _list_collectors(settings)
    try:
        return _run(args, settings)
    except (ConfigError, StateError) as exc:
        _log.error("%s", exc)
        return 2


def _run(args: argparse.Namespace, settings: AgentSettings) -> int:
    if args.rotate_token:
        return rotate(settings)
    if args.once:
        return run_once(settings, dry_run=args.dry_run)
    return run_forever(settings)


@dataclass
class Wiring:
    """The assembled agent and the pieces a caller may want to inspect."""

    agent: Agent
    shipper: Shipper
    spool: Spool
    bench: BenchRunner | None = None


def build(
    settings: AgentSettings,
    stack: ExitStack,
    transport: Transport,
    clock: Clock | None = None,
    notifier: Notifier | None = None,
    ephemeral_identity: bool = False,
    durable_spool: bool = True,
    reporter: Reporter | None = None,
) -> Wiring:
    """Assemble an agent from settings. Resources to release are registered on ``stack``.

    The spool is on disk unless ``durable_spool`` is off or the identity is ephemeral (one-shot
    runs keep their batch in memory and leave the daemon's backlog alone). With a ``reporter``
    the agent runs the benchmark orders push answers carry (``agent.bench.remote``); its
    outbox is ``state_dir/bench``.

    Raises:
        ConfigError, StateError: the settings or the state directory cannot be used.
    """
    clock = clock or SystemClock()
    if ephemeral_identity:
        node_id = uuid.uuid4().hex
        sequence = Sequence(_scratch_dir(stack))
    else:
        ensure_directory(settings.state_dir)
        node_id = load_or_create_node_id(settings.state_dir)
        sequence = Sequence(settings.state_dir)
    identity = node_identity(node_id, settings.node_name, settings.labels, settings.hostname)
    built = build_collectors(settings, identity.hostname, stack)
    spool: Spool = (
        open_spool(settings, wall=clock.time, monotonic=clock.monotonic)
        if durable_spool and not ephemeral_identity
        else MemorySpool(settings.spool.memory_max_bytes)
    )
    stack.callback(spool.close)
    backoff = Backoff(
        settings.transport.backoff_initial_seconds, settings.transport.backoff_max_seconds
    )
    bench = None
    if reporter is not None and not ephemeral_identity:
        job = DeferredJob(lambda: order_job(settings))
        bench = BenchRunner(
            reporter,
            job,
            settings.state_dir / "bench",
            wall=clock.time,
            busy_retry_seconds=settings.bench.busy_retry_seconds,
        )
    compact = CompactForms() if settings.transport.compact_batches else None
    shipper = Shipper(
        spool,
        transport,
        backoff,
        monotonic=clock.monotonic,
        replay_batches_per_request=settings.transport.replay_batches_per_request,
        replay_requests_per_second=settings.transport.replay_requests_per_second,
        poison_attempts=settings.transport.poison_attempts,
        orders=None if bench is None else bench.offer,
        compact=compact,
    )
    gpu = built.gpu
    inventory = InventoryTracker(
        lambda: read_host_facts(built.paths),
        None if gpu is None else gpu.inventory,
        settings.inventory_refresh_seconds,
    )
    collectors = with_simulated_fabric(settings, built.collectors)
    agent: Agent
    if "agent" in enabled_collectors(settings):
        collectors.append(
            AgentSelfCollector(
                lambda: spool.stats(clock.monotonic()),
                shipper.stats,
                lambda: agent.last_tick_seconds,
                settings.host.proc_root / "self",
                state_write_errors=lambda: sequence.write_errors,
            )
        )
    agent = Agent(
        collectors,
        BatchBuilder(identity, settings.interval_seconds),
        sequence,
        inventory,
        spool,
        shipper,
        clock,
        notifier or Notifier(None, None),
        settings.interval_seconds,
        events=None if built.events is None else built.events.drain_events,
        jobs=None if built.jobs is None else built.jobs.usage,
        compact=compact,
    )
    return Wiring(agent, shipper, spool, bench)


def with_simulated_fabric(settings: AgentSettings, collectors: list[Collector]) -> list[Collector]:
    """Returns: ``collectors``, on a simulated node with its simulated InfiniBand fabric in
    place of the node's own ``infiniband`` collector (as simulated GPUs replace real ones), so
    the fabric series say what the simulated node has. ``collectors.disabled = ["infiniband"]``
    turns the simulated fabric off too."""
    ports = settings.gpu.fabric_ports
    if not ports or "infiniband" in settings.collectors.disabled:
        return list(collectors)
    fabric = SimulatedFabricCollector(ports, seed=settings.gpu.simulated_seed)
    return [c for c in collectors if c.name != fabric.name] + [fabric]


def run_forever(settings: AgentSettings) -> int:
    transport, reporter = http_clients(settings)
    notifier = Notifier.from_environment()
    stop = threading.Event()
    with ExitStack() as stack:
        wiring = build(settings, stack, transport, notifier=notifier, reporter=reporter)
        _install_signal_handlers(stop)
        if wiring.bench is not None:
            wiring.bench.start()
            stack.callback(wiring.bench.stop)
        wiring.shipper.start()
        # What start-up built (modules, models, settings, collectors) lives as long as the
        # process: frozen, it is never walked by the collections that each tick's garbage
        # triggers (a full one walked ~50,000 objects, ~25 ms, every ~50 ticks).
        gc.freeze()
        _log.info(
            "dcmon agent %s: node %s, every %gs to %s",
            __version__,
            settings.node_name or os.uname().nodename,
            settings.interval_seconds,
            settings.server_url,
        )
        wiring.agent.run(stop)
        notifier.stopping()
        _log.info("stopping: delivering what is left (up to %gs)", FLUSH_ON_STOP_SECONDS)
        left = wiring.shipper.stop(FLUSH_ON_STOP_SECONDS)
        if left:
            _log.warning("%d batch(es) were not delivered before exit", left)
    # the last line of every clean exit, after the spool and transport are closed
    _log.info("stopped")
    return 0


def run_once(settings: AgentSettings, dry_run: bool) -> int:
    with ExitStack() as stack:
        if dry_run:
            transport: Transport = MemoryTransport(lambda payload: Ack(status="accepted", seq=0))
            wiring = build(settings, stack, transport, ephemeral_identity=True)
            batch = wiring.agent.tick()
            print(json.dumps(batch.model_dump(mode="json"), indent=1))
            return 0
        transport = http_transport(settings)
        stack.callback(transport.close)
        wiring = build(settings, stack, transport, durable_spool=False)
        batch = wiring.agent.tick()
        if wiring.shipper.deliver_once():
            print(f"delivered batch {batch.seq} with {batch.sample_count()} samples")
            return 0
        print("dcmon agent: the batch was not delivered (see the log above)", file=sys.stderr)
        return 1


def setup_logging(level: str) -> None:
    """Log to stderr; under systemd the journal adds its own timestamps."""
    under_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journal:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)


def _conflicting_flags(args: argparse.Namespace) -> str | None:
    if args.dry_run and not args.once:
        return "--dry-run needs --once"
    if args.rotate_token and (args.once or args.list_collectors):
        return "--rotate-token goes alone"
    return None


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        key: value
        for key in (
            "server_url",
            "token_file",
            "bootstrap_token_file",
            "interval_seconds",
            "state_dir",
            "node_name",
            "log_level",
        )
        if (value := getattr(args, key)) is not None
    }
    if args.label:
        labels: dict[str, str] = {}
        for item in args.label:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SystemExit(f"dcmon agent: --label wants KEY=VALUE, got {item!r}")
            labels[key] = value
        overrides["labels"] = labels
    gpu: dict[str, Any] = {}
    if args.gpu_backend is not None:
        gpu["backend"] = args.gpu_backend
    if args.simulated_gpus is not None:
        gpu["simulated_count"] = args.simulated_gpus
    if args.simulated_fabric_ports is not None:
        gpu["simulated_fabric_ports"] = args.simulated_fabric_ports
    if gpu:
        overrides["gpu"] = gpu
    return overrides


def http_transport(settings: AgentSettings) -> HttpTransport:
    """Returns: the transport to the server, with its TLS settings and this node's token.

    Raises:
        ConfigError: no token can be had, or the TLS files are unusable.
        StateError: the state directory (where an enrolled token lives) cannot be used.
    """
    return http_clients(settings)[0]


def http_clients(settings: AgentSettings) -> tuple[HttpTransport, HttpReporter]:
    """Returns: the batch transport and the benchmark reporter, on one token and TLS setup.

    Raises:
        ConfigError, StateError: as ``http_transport``.
    """
    context = client_context(settings.transport, settings.server_url)
    timeout = settings.transport.timeout_seconds
    token = resolve_token(settings, ApiClient(settings.server_url, context, timeout))
    layouts = settings.transport.compact_batches
    return (
        HttpTransport(settings.server_url, token, timeout, ssl_context=context, layouts=layouts),
        HttpReporter(settings.server_url, token, timeout, ssl_context=context),
    )


def rotate(settings: AgentSettings) -> int:
    """``--rotate-token``: replace this node's token with a new one from the server.

    Raises:
        ConfigError: the TLS files are unusable.
    """
    context = client_context(settings.transport, settings.server_url)
    client = ApiClient(settings.server_url, context, settings.transport.timeout_seconds)
    try:
        rotated = rotate_token(settings, client)
    except EnrollmentError as exc:
        print(f"dcmon agent: {exc}", file=sys.stderr)
        return 1
    print(
        f"rotated: new token id {rotated.token_id}, stored in {rotated.path}; the old token "
        "stays valid until the agent first sends with the new one"
    )
    return 0


def _list_collectors(settings: AgentSettings) -> int:
    try:
        enabled = enabled_collectors(settings)
    except ConfigError as exc:
        print(f"dcmon agent: {exc}", file=sys.stderr)
        return 2
    for name, default in sorted(known_collectors().items()):
        state = "enabled" if name in enabled else "disabled"
        print(f"{name:12} {state:9} (default {'on' if default else 'off'})")
    return 0


def _scratch_dir(stack: ExitStack) -> Path:
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dcmon-agent-")))


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        _log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)

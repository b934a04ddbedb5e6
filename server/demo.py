"""``dcmon demo``: a server (SQLite in a local folder) and an agent for this machine, one command.

Both run as real child processes, exactly as they would under systemd, talking over loopback
with a token made on first run. Their settings are written to ``server.toml`` and ``agent.toml``
in the data directory and the children are started from those files, so the commands the
banner prints start the same server and agent by hand. The server listens on 127.0.0.1 only
and serves reads without a token (``open_reads``), so the dashboard opens in a browser as it is.
It evaluates the shipped rule pack (``rules_shipped``), so its alerts show on the dashboard page
and at /api/v1/alerts; ``--scenario faults`` (``server.demo_faults``) adds a simulated GPU node
whose faults make them fire and resolve, and a webhook receiver that prints them.

The demo supervises (``server.demo_supervisor``): a server that dies is restarted with backoff
while the agent keeps collecting into its spool, which is what a newcomer should see ride out an
outage. Ctrl-C, SIGTERM and SIGHUP (the terminal closed) stop the agent first, so its last batch
is delivered, then the server. A lock in the data directory keeps a second demo off the same
database. Without an NVIDIA driver the agent shows simulated GPUs, and says so.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from server import demo_faults
from server.auth.secrets import (
    TokenFileError,
    new_token,
    read_token_file,
    sha256_hex,
    write_token_file,
)
from server.demo_supervisor import Extra, Supervisor, say
from server.settings import DEFAULT_PORT

LOCK_FILE = "demo.lock"
ADMIN_KEY_FILE = "admin.key"
DEMO_HINTS_INTERVAL_SECONDS = 60.0
DEMO_HINTS_IDLE_SECONDS = 180.0
TomlValue = str | int | float | bool | list[str]


class DemoBusyError(Exception):
    """Another demo holds the data directory; the message names its PID."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dcmon demo", description="Run a dcmon server and a local agent on this machine."
    )
    p.add_argument(
        "--port",
        type=int,
        help=f"server port; an error if it is busy (default {DEFAULT_PORT}, or a free port "
        "when that one is busy)",
    )
    p.add_argument(
        "--data-dir", type=Path, default=Path(".dcmon/demo"), help="default ./.dcmon/demo"
    )
    p.add_argument(
        "--gpus",
        choices=["auto", "real", "simulated", "none"],
        default="auto",
        help="auto: the real GPUs if an NVIDIA driver is loaded, else simulated ones",
    )
    p.add_argument("--simulated-gpus", type=int, default=8, help="how many (default 8)")
    p.add_argument("--interval", type=float, default=5.0, help="agent interval in seconds")
    p.add_argument(
        "--scenario",
        choices=["none", "faults"],
        default="none",
        help="faults: add a simulated GPU node that throws an XID, overheats and goes silent, "
        "and a webhook receiver that prints the alerts (about 20 minutes to see them all fire "
        "and resolve)",
    )
    p.add_argument(
        "--no-bench",
        action="store_true",
        help="do not ask for a quick benchmark run of the simulated (or CPU-only) nodes at "
        "start; a node with real GPUs is never benchmarked unasked",
    )
    p.add_argument(
        "--faults-skip",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="start the faults timeline this far in (e.g. 55: the XID comes 5 s after start)",
    )
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = hold_lock(data_dir)
    except DemoBusyError as exc:
        print(f"dcmon demo: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(args, data_dir)
    finally:
        os.close(lock)


def _run(args: argparse.Namespace, data_dir: Path) -> int:
    port = _choose_port(args.port)
    if port is None:
        print(
            f"dcmon demo: port {args.port} on 127.0.0.1 is in use; choose another --port, or "
            "leave out --port to let the demo pick a free one",
            file=sys.stderr,
        )
        return 2
    try:
        token_hash = sha256_hex(_agent_token(data_dir / "agent.token"))
        admin_hash = sha256_hex(_agent_token(data_dir / ADMIN_KEY_FILE))
    except TokenFileError as exc:
        print(f"dcmon demo: {exc}; delete it to make a new one", file=sys.stderr)
        return 2
    backend = _gpu_backend(args.gpus)
    base_url = f"http://127.0.0.1:{port}"
    server_config, agent_config = data_dir / "server.toml", data_dir / "agent.toml"
    python = [sys.executable, "-m", "agent"]
    scenario = None
    server_values: dict[str, TomlValue | Mapping[str, TomlValue]] = {
        "listen_host": "127.0.0.1",
        "listen_port": port,
        "data_dir": str(data_dir),
        "ingest_token_sha256": [token_hash],
        "admin_key_sha256": [admin_hash],  # for the benchmark request and the banner's commands
        "open_reads": True,
        "rules_shipped": True,  # the demo evaluates the shipped rule pack
        # hint rounds every minute, and an idle job worth a hint after 3 minutes instead of
        # 30, so the simulated idle notebook gets its reclaim_idle hint while one watches
        "hints_interval_seconds": DEMO_HINTS_INTERVAL_SECONDS,
        "hints_idle_seconds": DEMO_HINTS_IDLE_SECONDS,
        # the simulated jobs use no CPU of this machine, whose CPU is busy with other things
        "hints_node_cpu": False,
    }
    if args.scenario == "faults":
        scenario = demo_faults.prepare(
            data_dir, base_url, args.interval, python, time.time(), args.faults_skip, write_toml
        )
        server_values["notify"] = scenario.notify
    write_toml(server_config, server_values, "dcmon demo's server: dcmon server --config this-file")
    write_toml(
        agent_config,
        {
            "server_url": base_url,
            "token_file": str(data_dir / "agent.token"),
            "state_dir": str(data_dir / "agent"),
            "interval_seconds": args.interval,
            "gpu": _gpu_table(backend, args.simulated_gpus),
        },
        "dcmon demo's agent: dcmon agent --config this-file",
    )
    extras = [] if scenario is None else list(scenario.extras)
    bench = not args.no_bench and backend != "nvml"
    if bench:
        nodes = 1 + (scenario is not None)
        extras.append(bench_request(python, base_url, data_dir / ADMIN_KEY_FILE, nodes))
    supervisor = Supervisor(
        server_argv=[*python, "server", "--config", str(server_config)],
        agent_argv=[*python, "agent", "--config", str(agent_config)],
        ready_url=f"{base_url}/readyz",
        extras=tuple(extras),
    )

    def started() -> None:
        _banner(base_url, data_dir, backend, args.simulated_gpus, server_config, bench)
        if scenario is not None:
            say("\n".join(demo_faults.banner_lines(scenario)) + "\n")

    return supervisor.run(started)


def _gpu_table(backend: str, simulated: int) -> dict[str, TomlValue]:
    """Returns: the agent's ``[gpu]`` table: simulated GPUs carry the scripted demo jobs (an
    idle notebook on GPUs 0-1, a training job on GPUs 2-3, both named simulated-...)."""
    table: dict[str, TomlValue] = {"backend": backend, "simulated_count": simulated}
    if backend == "simulated":
        table["simulated_jobs"] = "demo"
    return table


def bench_request(python: list[str], base_url: str, admin_key: Path, nodes: int) -> Extra:
    """Returns: the one-shot child that asks for a quick benchmark run of the demo's nodes."""
    argv = [*python[:-1], "server.demo_bench", "--server", base_url, "--token-file", str(admin_key)]
    return Extra("benchmark request", [*argv, "--nodes", str(nodes)], once=True)


def hold_lock(data_dir: Path) -> int:
    """Take the data directory's demo lock (held until the returned descriptor is closed, or
    the process ends) and write this process's PID into it.

    Raises:
        DemoBusyError: another process holds it.
    """
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DemoBusyError(
            f"another dcmon demo (PID {holder}) is running on {data_dir}; stop it first, or "
            "give this one another --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def write_toml(
    path: Path, values: Mapping[str, TomlValue | Mapping[str, TomlValue]], what: str
) -> None:
    """Write a flat TOML file (one optional level of tables), replacing it whole."""
    lines = [f"# {what}", "# Written by dcmon demo at each start; edits are overwritten.", ""]
    tables = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml(value)}")
    for name, table in tables:
        lines += ["", f"[{name}]", *(f"{key} = {_toml(value)}" for key, value in table.items())]
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)


def _toml(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(item) for item in value) + "]"
    return json.dumps(value)  # a JSON string is a TOML basic string


def _agent_token(path: Path) -> str:
    """Returns: the token (the agent's, or the admin key) in ``path``, made on first run."""
    if not path.exists():
        write_token_file(path, new_token())
    return read_token_file(path)


def _choose_port(asked: int | None) -> int | None:
    """Returns: the port asked for if it is free (None if busy); without one, the default
    port, or any free port when that is busy."""
    if asked is not None:
        return asked if _port_free(asked) else None
    if _port_free(DEFAULT_PORT):
        return DEFAULT_PORT
    port = _any_free_port()
    print(f"port {DEFAULT_PORT} is busy; using {port}")
    return port


def _gpu_backend(choice: str) -> str:
    if choice == "real":
        return "nvml"
    if choice in ("simulated", "none"):
        return choice
    driver_loaded = Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()
    return "nvml" if driver_loaded else "simulated"


def _banner(
    base_url: str, data_dir: Path, backend: str, simulated: int, config: Path, bench: bool
) -> None:
    gpus = {
        "nvml": "this machine's NVIDIA GPUs",
        "simulated": f"{simulated} simulated GPUs (no NVIDIA driver here; --gpus none hides them)",
        "none": "no GPUs",
    }[backend]
    key = data_dir / ADMIN_KEY_FILE
    soonest = DEMO_HINTS_IDLE_SECONDS / 60
    latest = soonest + 2 * DEMO_HINTS_INTERVAL_SECONDS / 60
    hints_note = (
        " (the simulated idle notebook on GPUs 0-1 gets a reclaim_idle hint after "
        f"{soonest:g} to {latest:g} minutes)"
        if backend == "simulated"
        else ""
    )
    asked = (
        "a quick run of each node was asked for (--no-bench: not); its figures follow"
        if bench
        else "none asked for; run one with the command below"
    )
    say(
        "\ndcmon demo is running: a server and an agent for this machine\n"
        f"  dashboard  {base_url}/\n"
        f"  metrics    {base_url}/metrics\n"
        f"  API docs   {base_url}/docs\n"
        f"  nodes API  {base_url}/api/v1/nodes\n"
        f"  GPUs       {gpus}\n"
        f"  benchmark  {asked}\n"
        f"  results    {base_url}/api/v1/bench/results and {base_url}/api/v1/bench/fleet\n"
        f"  hints      {base_url}/api/v1/hints{hints_note}\n"
        f"  data       {data_dir} (SQLite; admin key in {key})\n"
        "Another benchmark run, and its results with the fleet judgement:\n"
        f"  dcmon benchmarks request --server {base_url} --token-file {key} "
        "--node <name> --wait\n"
        f"  dcmon benchmarks fleet --server {base_url}\n"
        "The same server and agent by hand (after stopping the demo):\n"
        f"  dcmon server --config {config}\n"
        f"  dcmon agent --config {data_dir / 'agent.toml'}\n"
        "A server that dies is restarted; the agent keeps its batches meanwhile. "
        "Press Ctrl-C to stop.\n"
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

"""The ``dcmon`` command: dispatch to a subcommand's ``main(argv)``.

Each subcommand is imported inside its own loader, only when chosen, so an agent-only install
(no FastAPI, no SQLAlchemy) runs ``dcmon agent`` and ``dcmon version``, and answers
``dcmon server`` with a clear message instead of a traceback. The imports are ordinary
statements, so the import contracts see them: the agent contract in pyproject.toml names these
loaders as its only exceptions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NamedTuple

from agent import __version__

Entry = Callable[[list[str]], int]


def _agent() -> Entry:
    from agent import main as command  # noqa: PLC0415 (imported when chosen)

    return command.main


def _bench() -> Entry:
    from agent.bench import cli as command  # noqa: PLC0415 (imported when chosen)

    return command.main


def _server() -> Entry:
    from server import main as command  # noqa: PLC0415 (imported when chosen)

    return command.main


def _demo() -> Entry:
    from server import demo as command  # noqa: PLC0415 (imported when chosen)

    return command.main


def _token() -> Entry:
    from server import tokens as command  # noqa: PLC0415 (imported when chosen)

    return command.main


def _rules() -> Entry:
    from server.rules import cli as command  # noqa: PLC0415 (imported when chosen)

    return command.main


def _silence() -> Entry:
    from server.notify import cli as command  # noqa: PLC0415 (imported when chosen)

    return command.main


def _alerts() -> Entry:
    from server.alerting import cli as command  # noqa: PLC0415 (imported when chosen)

    return command.alerts_main


def _benchmarks() -> Entry:
    from server.bench import cli as command  # noqa: PLC0415 (imported when chosen)

    return command.main


def _simulate() -> Entry:
    from server.hints.sim import cli as command  # noqa: PLC0415 (imported when chosen)

    return command.main


def version(argv: list[str]) -> int:
    """``dcmon version``: print the version."""
    argparse.ArgumentParser(prog="dcmon version", description="Print dcmon's version.").parse_args(
        argv
    )
    print(f"dcmon {__version__}")
    return 0


class Command(NamedTuple):
    load: Callable[[], Entry]
    summary: str
    extra: str


COMMANDS: dict[str, Command] = {
    "agent": Command(_agent, "run the node agent (collect and push telemetry)", "agent"),
    "server": Command(_server, "run the dcmon server (ingest, API, /metrics, web)", "server"),
    "demo": Command(_demo, "run a server and a local agent on this machine", "all"),
    "token": Command(_token, "create, list and revoke tokens; make token hashes", "server"),
    "rules": Command(_rules, "check, test, export and list alert rules", "server"),
    "alerts": Command(_alerts, "list a server's pending and firing alerts", "server"),
    "silence": Command(_silence, "add, list and expire alert silences", "server"),
    "bench": Command(_bench, "benchmark and burn-test this node's GPUs", "gpu-bench"),
    "benchmarks": Command(
        _benchmarks, "ask a server for benchmark runs on nodes; results, fleet", "server"
    ),
    "simulate": Command(_simulate, "replay a GPU cluster trace under placement policies", "server"),
    "version": Command(lambda: version, "print the version", "agent"),
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        return version([])
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"dcmon: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        entry = command.load()
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("agent", "server"):
            raise
        print(
            f"dcmon {args[0]}: missing dependency {exc.name!r}; "
            f"install it with: pip install 'dcmon[{command.extra}]'",
            file=sys.stderr,
        )
        return 2
    return entry(args[1:])


def _usage() -> str:
    lines = ["usage: dcmon <command> [options]", "", "commands:"]
    lines += [f"  {name:10} {command.summary}" for name, command in COMMANDS.items()]
    lines += ["", "Run 'dcmon <command> --help' for a command's options."]
    return "\n".join(lines)

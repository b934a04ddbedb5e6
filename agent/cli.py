"""The ``dcmon`` command: dispatch to a subcommand's ``main(argv)``.

Subcommands are referenced by module path and imported only when chosen, so an agent-only
install (no FastAPI, no SQLAlchemy) runs ``dcmon agent`` and ``dcmon version``, and answers
``dcmon server`` with a clear message instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import NamedTuple, cast

from agent import __version__


class Command(NamedTuple):
    module: str
    summary: str
    extra: str


COMMANDS: dict[str, Command] = {
    "agent": Command("agent.main", "run the node agent (collect and push telemetry)", "agent"),
    "server": Command("server.main", "run the dcmon server (ingest, API, /metrics, web)", "server"),
    "demo": Command("server.demo", "run a server and a local agent on this machine", "all"),
    "token": Command(
        "server.tokens", "create, list and revoke tokens; make token hashes", "server"
    ),
    "version": Command("agent.cli", "print the version", "agent"),
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in ("version", "--version"):
        print(f"dcmon {__version__}")
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"dcmon: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("agent", "server"):
            raise
        print(
            f"dcmon {args[0]}: missing dependency {exc.name!r}; "
            f"install it with: pip install 'dcmon[{command.extra}]'",
            file=sys.stderr,
        )
        return 2
    entry = cast(Callable[[list[str]], int], module.main)
    return entry(args[1:])


def _usage() -> str:
    lines = ["usage: dcmon <command> [options]", "", "commands:"]
    lines += [f"  {name:8} {command.summary}" for name, command in COMMANDS.items()]
    lines += ["", "Run 'dcmon <command> --help' for a command's options."]
    return "\n".join(lines)

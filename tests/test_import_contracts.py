"""The import contracts in pyproject.toml hold, and each one breaks when the code breaks it.

A contract that no import could break would be a check that cannot fail: so for every module of
the agent outside ``agent.wire`` an import from the server is added to the real import graph, and
the server's contract must then be broken. New agent modules are covered without listing them.
"""

from __future__ import annotations

import copy
import importlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter import Contract
from importlinter.configuration import configure
from importlinter.contracts.forbidden import ForbiddenContract

ROOT = Path(__file__).resolve().parent.parent
SERVER_CONTRACT = "The server imports only the agent's wire package"
AGENT_CONTRACT = "The agent never imports the server"
TOKENS_CONTRACT = "The token helpers never import the token command"


def _config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        config: dict[str, Any] = tomllib.load(handle)["tool"]["importlinter"]
    return config


def _contract_types(config: dict[str, Any]) -> dict[str, type[Contract]]:
    types: dict[str, type[Contract]] = {"forbidden": ForbiddenContract}
    for entry in config.get("contract_types", []):
        name, _, path = (part.strip() for part in entry.partition(":"))
        module, _, attribute = path.rpartition(".")
        types[name] = getattr(importlib.import_module(module), attribute)
    return types


def _contract(name: str) -> Contract:
    config = _config()
    (options,) = [c for c in config["contracts"] if c["name"] == name]
    options = {k: _option(v) for k, v in options.items() if k not in ("name", "type")}
    # import-linter reads its session options as the strings of an INI file
    session = {key: _option(value) for key, value in config.items() if key != "contracts"}
    contract_type = next(c["type"] for c in config["contracts"] if c["name"] == name)
    return _contract_types(config)[contract_type](name, session, options)


def _option(value: object) -> object:
    return str(value) if isinstance(value, bool) else value


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    configure()  # the timer and printer the built-in contracts use
    return grimp.build_graph("agent", "server", include_external_packages=True, cache_dir=None)


def _with_import(graph: grimp.ImportGraph, importer: str, imported: str) -> grimp.ImportGraph:
    changed = copy.deepcopy(graph)
    changed.add_import(
        importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}"
    )
    return changed


def test_lint_imports_keeps_every_contract() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "lint-imports is part of the dev extra"
    result = subprocess.run(
        [lint_imports, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


def test_the_server_contract_holds_on_the_code(graph: grimp.ImportGraph) -> None:
    assert _contract(SERVER_CONTRACT).check(copy.deepcopy(graph), verbose=False).kept


def test_any_agent_module_but_the_wire_breaks_the_server_contract(
    graph: grimp.ImportGraph,
) -> None:
    contract = _contract(SERVER_CONTRACT)
    allowed = {module.name for module in contract.allowed_modules}  # type: ignore[attr-defined]
    outside_wire = sorted(
        module
        for module in graph.find_descendants("agent")
        if module != "agent.wire" and not module.startswith("agent.wire.") and module not in allowed
    )
    assert "agent.shipper" in outside_wire and len(outside_wire) > 30
    kept = [
        module
        for module in outside_wire
        if contract.check(_with_import(graph, "server.app", module), verbose=False).kept
    ]
    assert kept == [], f"the server could import these unnoticed: {kept}"
    wire = _with_import(graph, "server.app", "agent.wire.codec")
    assert contract.check(wire, verbose=False).kept


def test_the_wire_cannot_widen_the_allowlist(graph: grimp.ImportGraph) -> None:
    """What the allowed modules import is held to the same list: no way round it."""
    reached = _with_import(graph, "agent.wire.codec", "agent.clock")
    check = _contract(SERVER_CONTRACT).check(reached, verbose=False)
    assert not check.kept
    assert [(v.importer, v.imported) for v in check.metadata["violations"]] == [
        ("agent.wire.codec", "agent.clock")
    ]


def test_the_cli_dispatch_is_in_the_graph(graph: grimp.ImportGraph) -> None:
    """``dcmon``'s subcommands are imported where they are chosen, so the graph (and the
    agent contract's named exceptions) see them; the agent command itself stays server-free."""
    from agent.cli import COMMANDS  # noqa: PLC0415

    dispatched = graph.find_modules_directly_imported_by("agent.cli")
    assert {
        "agent.main",
        "agent.bench.cli",
        "server.main",
        "server.demo",
        "server.tokens",
        "server.rules.cli",
        "server.notify.cli",
        "server.alerting.cli",
        "server.bench.cli",
        "server.hints.sim.cli",
    } <= dispatched
    assert set(COMMANDS) == {
        "agent", "bench", "benchmarks", "server", "demo", "token", "rules", "alerts", "silence",
        "simulate", "version",
    }  # fmt: skip
    agent_contract = _contract(AGENT_CONTRACT)
    assert agent_contract.check(copy.deepcopy(graph), verbose=False).kept
    leak = _with_import(graph, "agent.main", "server.app")
    assert not agent_contract.check(leak, verbose=False).kept


def test_the_token_helpers_do_not_import_the_token_command(graph: grimp.ImportGraph) -> None:
    contract = _contract(TOKENS_CONTRACT)
    assert contract.check(copy.deepcopy(graph), verbose=False).kept
    cycle = _with_import(graph, "server.auth.credentials", "server.tokens")
    assert not contract.check(cycle, verbose=False).kept

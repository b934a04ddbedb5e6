"""The fleet judgement's import contract holds, and each kind of import it forbids breaks it:
a web framework, the database, a server module elsewhere and a sibling in server.bench."""

from __future__ import annotations

import copy

import grimp
import pytest
from importlinter.configuration import configure

from tests.test_import_contracts import _contract, _with_import

FLEET_CONTRACT = "The fleet judgement imports no web framework, database or other server module"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    configure()
    return grimp.build_graph("agent", "server", include_external_packages=True, cache_dir=None)


def test_the_fleet_core_keeps_its_contract(graph: grimp.ImportGraph) -> None:
    assert _contract(FLEET_CONTRACT).check(copy.deepcopy(graph), verbose=False).kept


@pytest.mark.parametrize(
    "imported",
    ["fastapi", "sqlalchemy", "server.storage.tables", "server.tick_loop", "server.bench.model"],
)
def test_each_forbidden_import_breaks_it(graph: grimp.ImportGraph, imported: str) -> None:
    broken = _with_import(graph, "server.bench.fleet", imported)
    assert not _contract(FLEET_CONTRACT).check(broken, verbose=False).kept


def test_the_agents_wire_is_allowed(graph: grimp.ImportGraph) -> None:
    allowed = _with_import(graph, "server.bench.fleet", "agent.wire.skus")
    assert _contract(FLEET_CONTRACT).check(allowed, verbose=False).kept

"""The hint engine's import contract holds, and each kind of import it forbids breaks it: a web
framework, the database, and a server module elsewhere; the simulator inside it is covered."""

from __future__ import annotations

import copy

import grimp
import pytest
from importlinter.configuration import configure

from tests.test_import_contracts import _contract, _with_import

HINTS_CONTRACT = "The hint engine imports no web framework, database or other server package"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    configure()
    return grimp.build_graph("agent", "server", include_external_packages=True, cache_dir=None)


def test_the_hint_engine_keeps_its_contract(graph: grimp.ImportGraph) -> None:
    assert _contract(HINTS_CONTRACT).check(copy.deepcopy(graph), verbose=False).kept


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("server.hints.engine", "fastapi"),
        ("server.hints.model", "sqlalchemy"),
        ("server.hints.planner", "server.storage"),
        ("server.hints.defragment", "server.jobs"),
        ("server.hints.sim.cluster", "server.settings"),
    ],
)
def test_each_forbidden_import_breaks_it(
    graph: grimp.ImportGraph, importer: str, imported: str
) -> None:
    broken = _with_import(graph, importer, imported)
    assert not _contract(HINTS_CONTRACT).check(broken, verbose=False).kept

"""pyproject.toml says what is true: features it names exist, dependency floors are high
enough for the APIs the code calls, and the wheel it builds carries the shipped rule pack."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from server.main import _uvicorn_tls
from server.settings import ServerSettings

ROOT = Path(__file__).resolve().parent.parent

# A word in the description and the module that must exist before the description may use it.
FEATURES = {
    "alert": "server.rules",
    "health check": "agent.bench",
    "benchmark": "agent.bench",
    "hint": "server.hints",
    "rebalanc": "server.hints",
    "promql": "server.promql",
    "remote_write": "server.remote_write",
}

# uvicorn.Config keywords the server passes, and the uvicorn release that has each: the ssl_*
# files were there at the old floor (0.29); uvicorn's release notes for 0.47.0: "Add
# ssl_context_factory for custom SSLContext configuration".
UVICORN_SINCE = {
    "ssl_certfile": (0, 29),
    "ssl_keyfile": (0, 29),
    "ssl_ca_certs": (0, 29),
    "ssl_cert_reqs": (0, 29),
    "ssl_context_factory": (0, 47),
}


def _project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        project: dict[str, Any] = tomllib.load(handle)["project"]
    return project


def _floor(requirement_name: str) -> tuple[int, ...]:
    for requirement in _project()["optional-dependencies"]["server"]:
        found = re.fullmatch(rf"{requirement_name}>=([0-9.]+),.*", requirement)
        if found:
            return tuple(int(part) for part in found.group(1).split("."))
    raise AssertionError(f"no {requirement_name}>= floor in the server extra")


def test_the_description_names_only_features_that_exist() -> None:
    description = _project()["description"].lower()
    promised = [
        f"{word!r} needs {module}"
        for word, module in FEATURES.items()
        if word in description and importlib.util.find_spec(module) is None
    ]
    assert promised == [], f"pyproject.toml's description promises: {promised}"


def test_the_uvicorn_floor_has_every_config_keyword_the_server_passes(tmp_path: Path) -> None:
    settings = ServerSettings(
        data_dir=tmp_path, tls_cert_file=tmp_path / "cert.pem", tls_key_file=tmp_path / "key.pem"
    )
    passed = set(_uvicorn_tls(settings))
    assert passed <= set(UVICORN_SINCE), f"add the release of {passed - set(UVICORN_SINCE)}"
    needed = max(UVICORN_SINCE[keyword] for keyword in passed)
    assert _floor("uvicorn") >= needed, f"uvicorn floor below {needed} (ssl_context_factory)"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pyproject.toml builds (hatchling, as pip would)."""
    pytest.importorskip("hatchling", reason="hatchling (the build backend) is not installed")
    out = tmp_path_factory.mktemp("wheel")
    build = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", build, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out / result.stdout.strip().splitlines()[-1]


def test_the_wheel_ships_the_rule_pack(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    shipped = {f"server/alerting/pack/{path.name}" for path in (ROOT / "alerts").glob("*.yaml")}
    assert len(shipped) >= 5
    assert shipped <= names, f"missing from the wheel: {sorted(shipped - names)}"
    assert not any(name.startswith("alerts/") for name in names), "no top-level alerts/"


def test_the_wheel_ships_the_data_files_the_agent_reads(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    data = {"agent/wire/skus.toml", "agent/events/xid.toml", "agent/wire/catalog/gpu.toml"}
    assert data <= names, f"missing from the wheel: {sorted(data - names)}"


def test_an_installed_server_finds_and_loads_the_rule_pack(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # a pure wheel installs as its archive's tree
    probe = (
        "import json, server\n"
        "from server.alerting.ruleset import SHIPPED_DIR, discover, load\n"
        "rules = load(discover([], SHIPPED_DIR), None)\n"
        "print(json.dumps({'package': server.__file__, 'dir': str(SHIPPED_DIR),\n"
        "    'files': sorted({g.file for g in rules.groups}), 'errors': rules.errors}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,  # not the source tree: `server` must come from the installed wheel
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert Path(found["package"]).is_relative_to(site)
    assert Path(found["dir"]) == site / "server" / "alerting" / "pack"
    assert found["files"] == sorted(f"alerts/{p.name}" for p in (ROOT / "alerts").glob("*.yaml"))
    assert found["errors"] == {}

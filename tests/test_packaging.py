"""pyproject.toml says what is true: features it names exist, and dependency floors are high
enough for the APIs the code calls."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

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

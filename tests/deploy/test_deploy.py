"""The shipped deployment files are valid: systemd units, example configs, Prometheus config."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.config import load_settings as load_agent_settings
from server.settings import ServerSettings
from server.settings import load_settings as load_server_settings
from tests.integration import require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


def test_example_configs_are_valid_and_show_the_defaults() -> None:
    agent = load_agent_settings(DEPLOY / "config" / "agent.toml", {})
    assert agent.interval_seconds == 10
    assert agent.gpu.backend == "auto"
    server = load_server_settings(DEPLOY / "config" / "server.toml", {})
    assert server.listen_host == "127.0.0.1"
    assert server.ingest_token_sha256 == []


def test_agent_unit_speaks_sd_notify_with_a_watchdog() -> None:
    service = _unit("dcmon-agent.service")["Service"]
    assert service["Type"] == "notify"
    watchdog = int(service["WatchdogSec"])
    assert watchdog >= 3 * 10  # several default intervals, fed during waits too
    assert "char-nvidia-frontend rw" in (DEPLOY / "systemd" / "dcmon-agent.service").read_text()
    assert service["DevicePolicy"] == "closed"


@pytest.mark.integration
@pytest.mark.parametrize("unit", ["dcmon-agent.service", "dcmon-server.service"])
def test_units_pass_systemd_analyze(unit: str, tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze")
    dcmon = shutil.which("dcmon") or "/bin/true"
    text = (DEPLOY / "systemd" / unit).read_text().replace("/opt/dcmon/bin/dcmon", dcmon)
    copy = tmp_path / unit
    copy.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if unit in line and "network-online.target" not in line
    ]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_the_server_example_lists_every_setting() -> None:
    """README: the annotated example holds every key; a new setting must be added to it."""
    text = (DEPLOY / "config" / "server.toml").read_text()
    keys: set[str] = set()
    section = ""
    for line in text.splitlines():
        if line.startswith("["):  # a [section] line: the keys below are "section.key"
            section = line.split("]", 1)[0].strip("[ ")
            keys.add(section)
        elif "=" in line.split("#", 1)[0] or (line.startswith("# ") and " = " in line):
            key = line.lstrip("# ").split("=")[0].strip()
            keys.add(f"{section}.{key}" if section else key)
    wanted = set(ServerSettings.model_fields)
    for name, field in ServerSettings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            wanted |= {f"{name}.{key}" for key in field.annotation.model_fields}
    assert "notify.receivers_file" in wanted
    missing = sorted(wanted - keys)
    assert missing == []

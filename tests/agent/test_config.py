"""Agent settings: file < environment < flags, and errors that name the key."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from agent.collectors.registry import build_collectors
from agent.config import ConfigError, load_settings


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.config.DEFAULT_CONFIG_FILE", Path("/nonexistent/agent.toml"))
    settings = load_settings(None, {})
    assert settings.interval_seconds == 10.0
    assert settings.server_url == "http://127.0.0.1:8470"
    assert settings.gpu.backend == "auto"


def test_precedence_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _write(
        tmp_path / "agent.toml",
        'interval_seconds = 5\nnode_name = "from-file"\n'
        '[labels]\nrack = "r1"\n[gpu]\nbackend = "simulated"\nsimulated_count = 2\n',
    )
    monkeypatch.setenv("DCMON_AGENT_INTERVAL_SECONDS", "7")
    monkeypatch.setenv("DCMON_AGENT_GPU__SIMULATED_COUNT", "3")
    settings = load_settings(config, {"node_name": "from-flag"})
    assert settings.interval_seconds == 7.0  # environment beats the file
    assert settings.node_name == "from-flag"  # flags beat everything
    assert settings.gpu.backend == "simulated"  # nested keys merge across sources
    assert settings.gpu.simulated_count == 3
    assert settings.labels == {"rack": "r1"}


def test_every_invalid_key_is_named(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "agent.toml",
        'interval_seconds = 0\nbogus = 1\nserver_url = "ftp://x"\n'
        '[labels]\ninstance = "a"\n[gpu]\nbackend = "cuda"\n'
        '[host]\nnetwork_devices_exclude = "("\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    message = str(caught.value)
    for key in (
        "interval_seconds",
        "bogus",
        "server_url",
        "labels",
        "gpu.backend",
        "host.network_devices_exclude",
    ):
        assert f"  {key}:" in message
    assert str(config) in message


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", {})
    bad = _write(tmp_path / "bad.toml", "interval_seconds = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, {})


def test_token_from_file(tmp_path: Path) -> None:
    token_file = _write(tmp_path / "token", "dcm_secret\n")
    settings = load_settings(None, {"token_file": token_file})
    assert settings.read_token() == "dcm_secret"
    assert "dcm_secret" not in repr(load_settings(None, {"token": "dcm_secret"}))
    empty = _write(tmp_path / "empty", "\n")
    with pytest.raises(ConfigError, match="empty"):
        load_settings(None, {"token_file": empty}).read_token()
    with pytest.raises(ConfigError, match="token_file"):
        load_settings(None, {"token_file": tmp_path / "absent"}).read_token()


def test_the_textfile_directory_reaches_the_textfile_collector(tmp_path: Path) -> None:
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "site.prom").write_text("site_raid_ok 1\n")
    config = _write(
        tmp_path / "agent.toml",
        f'[host]\ntextfile_directory = "{tmp_path / "prom"}"\n[gpu]\nbackend = "none"\n',
    )
    settings = load_settings(config, {})
    with ExitStack() as stack:
        built = build_collectors(settings, "node1", stack)
        (textfile,) = [c for c in built.collectors if c.name == "textfile"]
        samples = {s.name: s.value for s in textfile.collect(0.0)}

    assert samples["site_raid_ok"] == 1.0 and samples["node_textfile_scrape_error"] == 0.0

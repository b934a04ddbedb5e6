"""Server settings: defaults are safe, values are validated with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.auth.secrets import new_token, sha256_hex
from server.settings import ServerSettings, SettingsError, load_settings


def test_defaults_bind_loopback_and_use_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("server.settings.DEFAULT_CONFIG_FILE", Path("/nonexistent"))
    settings = load_settings(None, {})
    assert settings.listen_host == "127.0.0.1"
    assert settings.effective_database_url() == "sqlite:////var/lib/dcmon/dcmon.db"


def test_file_environment_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_hash = sha256_hex(new_token())
    config = tmp_path / "server.toml"
    config.write_text(f'listen_port = 9000\ningest_token_sha256 = ["{token_hash.upper()}"]\n')
    monkeypatch.setenv("DCMON_SERVER_LISTEN_PORT", "9100")
    settings = load_settings(config, {"data_dir": tmp_path})
    assert settings.listen_port == 9100
    assert settings.ingest_token_sha256 == [token_hash]  # normalised to lower case
    assert settings.data_dir == tmp_path


def test_environment_token_list(monkeypatch: pytest.MonkeyPatch) -> None:
    hashes = [sha256_hex("a"), sha256_hex("b")]
    monkeypatch.setenv("DCMON_SERVER_INGEST_TOKEN_SHA256", f'["{hashes[0]}", "{hashes[1]}"]')
    assert ServerSettings().ingest_token_sha256 == hashes


def test_invalid_values_are_named(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text('listen_port = 70000\ningest_token_sha256 = ["abc"]\nmystery = 1\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {})
    message = str(caught.value)
    for key in ("listen_port", "ingest_token_sha256.0", "mystery"):
        assert f"  {key}:" in message


def test_reads_are_closed_by_default() -> None:
    settings = ServerSettings()
    assert settings.open_reads is False
    assert settings.admin_key_sha256 == settings.read_token_sha256 == []
    assert 0 < settings.credential_cache_seconds <= 60

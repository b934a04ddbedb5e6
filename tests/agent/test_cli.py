"""The dcmon command: dispatch, errors with non-zero exits, dry runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent import __version__
from agent.cli import main


def _dcmon(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"dcmon {__version__}"


def test_version_help_is_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["version", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dcmon version") and __version__ not in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"dcmon {__version__}"


def test_agent_logs_a_last_stopped_line(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("dcm_x\n")
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "agent", "--state-dir", str(tmp_path / "s"),
         "--token-file", str(token), "--gpu-backend", "none", "--interval", "1",
         "--server-url", "http://127.0.0.1:9"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert agent.stderr is not None
        for line in agent.stderr:
            if "dcmon agent" in line and "every" in line:
                break
        agent.send_signal(signal.SIGTERM)
        _, rest = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0
    assert rest.strip().splitlines()[-1].endswith("agent: stopped"), rest


def test_unknown_command_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err
    assert "demo" in err
    assert main([]) == 2


def test_dry_run_prints_one_batch() -> None:
    result = _dcmon("agent", "--once", "--dry-run", "--gpu-backend", "simulated",
                    "--simulated-gpus", "1", "--label", "rack=r1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    batch = json.loads(result.stdout)
    names = {family["name"] for family in batch["metrics"]}
    assert {"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "DCGM_FI_DEV_GPU_UTIL"} <= (
        names
    )
    assert batch["node"]["labels"] == {"rack": "r1"}
    assert batch["inventory"]["gpus"][0]["index"] == 0


def test_configuration_errors_exit_2_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("interval_seconds = -1\n")
    result = _dcmon("agent", "--config", str(config))
    assert result.returncode == 2
    assert "interval_seconds" in result.stderr
    assert "Traceback" not in result.stderr
    result = _dcmon("agent", "--label", "novalue")
    assert result.returncode != 0
    assert "KEY=VALUE" in result.stderr


def test_agent_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    result = _dcmon("agent", "--state-dir", str(tmp_path), "--gpu-backend", "none")
    assert result.returncode == 2
    assert "no ingest token" in result.stderr


def test_unusable_state_directory_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    token = tmp_path / "token"
    token.write_text("dcm_x\n")
    result = _dcmon("agent", "--once", "--state-dir", str(blocker / "s"), "--token-file",
                    str(token), "--gpu-backend", "none")  # fmt: skip
    assert result.returncode == 2
    assert "cannot create state directory" in result.stderr


def test_once_reports_an_undelivered_batch(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("dcm_x\n")
    result = _dcmon("agent", "--once", "--state-dir", str(tmp_path / "s"), "--token-file",
                    str(token), "--gpu-backend", "none",
                    "--server-url", "http://127.0.0.1:9")  # fmt: skip
    assert result.returncode == 1
    assert "not delivered" in result.stderr


def test_list_collectors() -> None:
    result = _dcmon("agent", "--list-collectors", "--gpu-backend", "none")
    assert result.returncode == 0
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert lines["cpu"] == "enabled"
    assert lines["gpu"] == "disabled"


def test_token_new_and_hash() -> None:
    made = _dcmon("token", "new")
    assert made.returncode == 0
    token = made.stdout.split("token:")[1].split()[0]
    digest = made.stdout.split("sha256:")[1].split()[0]
    hashed = subprocess.run(
        [sys.executable, "-m", "agent", "token", "hash"],
        input=token,
        capture_output=True,
        text=True,
        check=False,
    )
    assert hashed.stdout.strip() == digest

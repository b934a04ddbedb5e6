"""An agent-only install (no FastAPI, no SQLAlchemy) runs the agent, in a fresh virtualenv."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.timeout(900)
def test_agent_extra_runs_the_agent_without_server_dependencies(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"{ROOT}[agent]"])  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]

    absent = _run([python, "-c", "import fastapi"])
    assert absent.returncode != 0 and "ModuleNotFoundError" in absent.stderr
    absent = _run([python, "-c", "import sqlalchemy"])
    assert absent.returncode != 0

    dcmon = str(env_dir / "bin" / "dcmon")
    version = _run([dcmon, "version"])
    assert version.returncode == 0 and version.stdout.startswith("dcmon ")

    dry_run = _run(
        [dcmon, "agent", "--once", "--dry-run", "--gpu-backend", "simulated",
         "--simulated-gpus", "1"],
        timeout=120,
    )  # fmt: skip
    assert dry_run.returncode == 0, dry_run.stderr
    assert '"node_cpu_seconds_total"' in dry_run.stdout
    assert '"DCGM_FI_DEV_GPU_UTIL"' in dry_run.stdout

    server = _run([dcmon, "server"])
    assert server.returncode == 2
    assert "pip install 'dcmon[server]'" in server.stderr
    assert "Traceback" not in server.stderr
    assert sys.executable != python

"""``dcmon bench``: JSON on stdout, progress on stderr, one-line errors with non-zero exits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent.cli import main


def test_json_result_on_stdout_and_progress_on_stderr() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "bench", "--backend", "numpy", "--json",
         "--duration", "0.1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tree = json.loads(done.stdout)
    assert tree["backend"] == "numpy" and tree["level"] == "quick" and tree["passed"]
    results = tree["devices"][0]["results"]
    matmul = next(r for r in results if r["test"] == "matmul_fp32")
    assert matmul["value"] > 0 and matmul["unit"] == "TFLOP/s"
    assert next(r for r in results if r["test"] == "burn_fp32")["params"]["duration_s"] == 0.1
    assert "CPU, not a GPU" in done.stderr and "matmul_fp32" in done.stderr
    # a CPU is never judged against a GPU's reference, and has no NVML health checks
    judged = {j["test"]: j["status"] for j in tree["judgement"]}
    assert judged["matmul_fp32"] == "unjudged" and tree["checks"] == {}


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--backend", "numpy", "--duration", "0.05"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dcmon bench: level quick, backend numpy")
    assert "matmul_bf16" in out and "unsupported" in out and "PASSED" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--level", "slow"], "invalid choice: 'slow'"),
        (["--gpus", "0,x"], "expected indices like 0,1"),
        (["--duration", "-3"], "the duration must be positive"),
        (["--backend", "numpy", "--gpus", "4"], "no device 4"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["bench", *argv])
    except SystemExit as exited:
        code = exited.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("dcmon bench: ")
    assert "Traceback" not in "\n".join(err)

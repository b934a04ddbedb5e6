"""``dcmon bench``: JSON on stdout, progress on stderr (lines, or a bar on a terminal), one-line
errors with non-zero exits, and Ctrl-C that cancels the run and leaves no worker behind."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time

import pytest

from agent.bench import cli as cli_module
from agent.bench.display import choose
from agent.bench.jobspec import JobEvent, JobOutcome
from agent.bench.progress_bar import BarDisplay
from agent.bench.result import BenchResult
from agent.cli import main
from tests.agent.bench.support import children, wait_gone


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


def test_ctrl_c_cancels_the_run_exits_130_and_leaves_no_worker() -> None:
    cli = subprocess.Popen(
        [sys.executable, "-m", "agent", "bench", "--backend", "numpy", "--level", "burn",
         "--duration", "60", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert cli.stderr is not None
        lines = []
        while not any("matmul_fp32" in line for line in lines):  # the burn has begun
            line = cli.stderr.readline()
            assert line, f"the CLI ended early: {lines}"
            lines.append(line)
        (worker,) = children(cli.pid)
        began = time.monotonic()
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=30)
        assert cli.returncode == 130, err
        assert time.monotonic() - began < 10.0
        assert wait_gone(worker, 5.0)
        assert "cancelled after 1 of 2 tests" in err
        tree = json.loads(out)  # what finished, marked incomplete
        assert tree["complete"] is False and tree["devices"][0]["results"][0]["status"] == "ok"
    finally:
        cli.kill()
        cli.communicate()


@pytest.mark.parametrize(
    ("outcome", "code", "said"),
    [
        (JobOutcome("refused", "GPU 1 run compute processes", busy=True), 2, "GPU 1 run compute"),
        (JobOutcome("cancelled", "cancelled after 0 of 0 tests"), 130, "cancelled after 0"),
        (JobOutcome("failed", "the benchmark worker died (exit status 1)"), 1, "worker died"),
    ],
)
def test_each_outcome_has_its_exit_status(
    outcome: JobOutcome, code: int, said: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(cli_module, "run_job", lambda spec, **kwargs: outcome)
    assert main(["bench"]) == code
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == f"dcmon bench: {outcome.message}"
    assert said in captured.err and captured.out == ""


def _finished(done: int) -> JobEvent:
    result = BenchResult("matmul_fp32", 0, "ok", 1.5, "TFLOP/s", {}, 0.25)
    return JobEvent("finished", done, 3, "matmul_fp32", 0, result)


def test_progress_is_lines_off_a_terminal_and_a_bar_on_one() -> None:
    lines = io.StringIO()
    with choose(lines) as display:
        display.show(JobEvent("planned", 0, 3, note="CPU, not a GPU"))
        display.show(JobEvent("started", 0, 3, "matmul_fp32", 0))
        display.show(_finished(1))
    assert lines.getvalue().splitlines() == [
        "dcmon bench: CPU, not a GPU",
        "dcmon bench: device 0 matmul_fp32: 1.5 TFLOP/s (0.25 s)",
    ]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    display = choose(screen)
    assert isinstance(display, BarDisplay)
    with display:
        display.show(JobEvent("planned", 0, 3, note="CPU, not a GPU"))
        display.show(JobEvent("started", 0, 3, "matmul_fp32", 0))
        display.show(_finished(1))
        display.show(JobEvent("started", 1, 3, "memory_copy", 0))
    drawn = screen.getvalue()
    assert "dcmon bench: CPU, not a GPU" in drawn and "1/3" in drawn
    assert "device 0 memory_copy" in drawn and "device 0 matmul_fp32: 1.5 TFLOP/s" in drawn

"""``dcmon benchmarks`` against the real app: requests made, followed to their end while the
agent reports, listed, shown and cancelled; results and the fleet as tables and JSON; refusals
(a read token asking for a run, an unknown node, an unreachable server) as one line, exit 1."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.bench import cli
from server.bench.follow import Follower, LineDisplay
from tests.server.bench.conftest import ADMIN_KEY, READ_TOKEN, Bench, device, result

UNREACHABLE = "http://127.0.0.1:9"


class Cli:
    def __init__(self, bench: Bench, tmp_path: Path) -> None:
        self.bench = bench
        self.admin = tmp_path / "admin.key"
        self.admin.write_text(ADMIN_KEY + "\n")
        self.reader = tmp_path / "read.token"
        self.reader.write_text(READ_TOKEN + "\n")
        self.on_sleep: list[Any] = []  # called, in order, at each of the CLI's waits

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            headers = {
                k: v for k, v in request.headers.items() if k in ("authorization", "content-type")
            }
            answer = self.bench.client.request(
                request.method,
                request.url.raw_path.decode(),
                headers=headers,
                content=request.content or None,
            )
            return httpx.Response(answer.status_code, content=answer.content)

        return httpx.MockTransport(handle)

    def sleep(self, _seconds: float) -> None:
        assert self.on_sleep, "the CLI waited longer than the test expected"
        self.on_sleep.pop(0)()

    def __call__(self, *args: str, token: Path | None = None) -> int:
        base = ["--server", "http://testserver", "--token-file", str(token or self.reader)]
        action, rest = args[0], list(args[1:])
        return cli.main(
            [action, *base, *rest], self.transport(), lambda: self.bench.clock.now, self.sleep
        )


@pytest.fixture
def run(bench: Bench, tmp_path: Path) -> Cli:
    return Cli(bench, tmp_path)


def _h100s(values: list[float], prefix: str) -> list[dict[str, Any]]:
    return [device(i, {"memory_copy": v}, uuid=f"GPU-{prefix}{i}") for i, v in enumerate(values)]


def test_request_and_wait_follows_the_run_and_prints_its_figures_with_the_fleet(
    run: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    run.bench.node("gpu01")
    agent = run.bench.node("gpu02")
    run.bench.run("gpu01", result(_h100s([3300.0, 3300.0, 3300.0, 3300.0], "a")))
    created: list[str] = []

    def agent_starts() -> None:
        (request,) = run.bench.client.get(
            "/api/v1/bench/requests", params={"node": "gpu02", "state": "pending"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ).json()["requests"]  # fmt: skip
        created.append(request["id"])
        progress = {"done": 1, "total": 2, "test": "memory_copy", "device": 1}
        assert agent.report(request["id"], "running", progress=progress).status_code == 200

    def agent_finishes() -> None:
        tree = result(_h100s([3300.0, 0.7 * 3300.0], "b"))
        assert agent.report(created[0], "done", result=tree).status_code == 200

    run.on_sleep = [agent_starts, agent_finishes]
    code = run("request", "--node", "gpu02", "--level", "standard", "--wait", token=run.admin)
    out, err = capsys.readouterr()
    assert code == 0, err  # the run passed its SKU checks (0.7 x is a warn, not a fail)
    assert "gpu02 running memory_copy on device 1 (1/2)" in err
    assert run.on_sleep == []
    lines = out.splitlines()
    (final,) = [line for line in lines if line.startswith(created[0]) and " done " in line]
    assert final.split()[1:4] == ["gpu02", "done", "standard"] and final.split()[-1] == "yes"
    slow = next(line for line in lines if line.startswith("gpu02  1 "))
    assert "memory_copy" in slow and "warn" in slow and "0.70x OUTLIER" in slow
    assert "below the fleet" in slow
    healthy = next(line for line in lines if line.startswith("gpu02  0 "))
    assert "1.00x" in healthy and "OUTLIER" not in healthy
    assert lines[-1] == "(2 figures, 0 failed, 1 fleet outliers)"


def test_wait_exits_1_when_a_run_is_refused(run: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    agent = run.bench.node("gpu01")

    def agent_refuses() -> None:
        (request,) = run.bench.client.get(
            "/api/v1/bench/requests", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ).json()["requests"]
        assert (
            agent.report(request["id"], "refused", message="GPU 0 runs pid 42").status_code == 200
        )

    run.on_sleep = [agent_refuses]
    assert run("request", "--node", "gpu01", "--wait", "--json", token=run.admin) == 1
    answer = json.loads(capsys.readouterr().out)
    (request,) = answer["requests"]
    assert (request["state"], request["message"]) == ("refused", "GPU 0 runs pid 42")
    assert answer["results"] == []


def test_request_without_wait_list_show_and_cancel(
    run: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    run.bench.node("gpu01", rack="r1")
    run.bench.node("gpu02", rack="r2")
    assert run("request", "--selector", "rack=r1", "--gpus", "0,1", "--json", token=run.admin) == 0
    (made,) = json.loads(capsys.readouterr().out)["created"]
    assert (made["node"], made["gpus"], made["state"]) == ("gpu01", [0, 1], "pending")
    assert run("list") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "(1 requests)"
    assert out.splitlines()[1].split()[:5] == [made["id"], "gpu01", "pending", "quick", "0,1"]
    assert run("show", made["id"], "--json") == 0
    assert json.loads(capsys.readouterr().out)["id"] == made["id"]
    assert run("cancel", made["id"], token=run.admin) == 0
    assert "cancelled" in capsys.readouterr().out
    assert run("list", "--state", "cancelled", "--json") == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["requests"]] == [made["id"]]


def test_results_and_fleet_tables_filter_on_the_server(
    run: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    run.bench.node("gpu01")
    run.bench.run("gpu01", result(_h100s([3300.0] * 5 + [2300.0], "a")))
    assert run("results", "--verdict", "warn") == 0
    out = capsys.readouterr().out
    (row,) = out.splitlines()[1:-1]
    assert row.split()[:4] == ["gpu01", "5", "h100_sxm", "memory_copy"] and "OUTLIER" in row
    assert run("results", "--since", "1h", "--json") == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 6
    assert run("fleet", "--outliers") == 0
    out = capsys.readouterr().out
    assert "h100_sxm  memory_copy  6" in out and "GPU-a5" in out and "GPU-a4" not in out
    assert out.splitlines()[-1] == "(1 fleet outliers)"


def test_refusals_are_one_line_and_exit_1(run: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    run.bench.node("gpu01")
    assert run("request", "--node", "gpu01") == 1  # a read token may not ask
    assert capsys.readouterr().err.startswith("dcmon benchmarks request: 403: ")
    assert run("request", "--node", "nowhere", token=run.admin) == 1
    err = capsys.readouterr().err
    assert err.startswith("dcmon benchmarks request: 422: ") and "nowhere" in err
    assert run("show", "no-such-request") == 1
    assert "404" in capsys.readouterr().err
    code = cli.main(["list", "--server", UNREACHABLE, "--token-file", str(run.reader)])
    assert code == 1 and "cannot reach" in capsys.readouterr().err


def test_usage_errors_exit_2(run: Cli) -> None:
    for argv in (
        ["request"],
        ["request", "--node", "a", "--gpus", "x"],
        ["results", "--since", "1x"],
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 2


def test_line_display_says_each_change_once() -> None:
    stream = io.StringIO()
    display = LineDisplay(stream)
    running = {"id": "r1", "node": "n", "state": "running", "message": "",
               "progress": {"done": 1, "total": 3, "test": "matmul_fp32", "device": 0}}  # fmt: skip
    display.update(running)
    display.update(running)
    display.update({**running, "state": "failed", "message": "GPU 0 fell off the bus"})
    assert stream.getvalue().splitlines() == [
        "n running matmul_fp32 on device 0 (1/3)",
        "n failed: GPU 0 fell off the bus",
    ]


def test_follower_stops_polling_a_final_request() -> None:
    answers = {"a": ["running", "done"], "b": ["running", "running", "expired"]}
    asked: list[str] = []

    class Client:
        def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
            rid = path.rsplit("/", 1)[1]
            asked.append(rid)
            state = answers[rid].pop(0)
            return {"id": rid, "node": rid, "state": state, "message": ""}

    final = Follower(Client(), sleep=lambda _s: None, display=LineDisplay(io.StringIO()))
    assert [r["state"] for r in final.follow(["a", "b"])] == ["done", "expired"]
    assert asked == ["a", "b", "a", "b", "b"]

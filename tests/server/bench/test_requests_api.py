"""Benchmark requests over HTTP: who may ask, one open request per node, selectors, cancel,
expiry of a request nobody took and of a run whose agent went silent, and the agent's reports
(its own requests only, never on a closed one)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from agent.wire.bench import BENCH_REQUESTS_PATH
from server.auth.principal import Role
from server.bench.model import silence_bound_seconds
from tests.factories import identity, make_batch
from tests.server.bench.conftest import ADMIN, READ_TOKEN, Bench, device, result
from tests.server.conftest import TOKEN, push
from tests.server.ingest.helpers import push_bulk


def test_only_an_admin_may_ask_for_a_benchmark(bench: Bench) -> None:
    node = bench.node("gpu01")
    body = {"nodes": ["gpu01"]}
    assert bench.ask(headers={}, **body).status_code == 401
    read = bench.ask(headers={"Authorization": f"Bearer {READ_TOKEN}"}, **body)
    assert read.status_code == 403 and read.json()["error"]["code"] == "forbidden"
    assert bench.ask(headers=node.auth, **body).status_code == 403
    assert bench.client.get(BENCH_REQUESTS_PATH, headers=node.auth).status_code == 403
    created = bench.ask(**body)
    assert created.status_code == 201, created.text
    (request,) = created.json()["created"]
    assert (request["node"], request["state"], request["level"]) == ("gpu01", "pending", "quick")
    assert request["expires_at"] == bench.clock.now + 3600
    # readers may list it, but not cancel it
    listed = bench.client.get(
        BENCH_REQUESTS_PATH, headers={"Authorization": f"Bearer {READ_TOKEN}"}
    )
    assert [r["id"] for r in listed.json()["requests"]] == [request["id"]]
    cancel = bench.client.post(
        f"{BENCH_REQUESTS_PATH}/{request['id']}/cancel",
        headers={"Authorization": f"Bearer {READ_TOKEN}"},
    )
    assert cancel.status_code == 403


def test_one_open_request_per_node_and_the_others_are_still_made(bench: Bench) -> None:
    bench.node("gpu01")
    bench.node("gpu02")
    first = bench.ask_one("gpu01")
    again = bench.ask(nodes=["gpu01"])
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_open"
    assert first in again.json()["error"]["problems"][0]["message"]
    both = bench.ask(nodes=["gpu01", "gpu02"], level="standard")
    assert both.status_code == 201
    assert [r["node"] for r in both.json()["created"]] == ["gpu02"]
    (skipped,) = both.json()["skipped"]
    assert (skipped["node"], skipped["open_request"]) == ("gpu01", first)
    assert "one at a time" in skipped["reason"]
    # once the first is final, the node takes a new one
    assert bench.cancel(first).json()["state"] == "cancelled"
    assert bench.ask(nodes=["gpu01"]).status_code == 201


def test_a_selector_picks_the_nodes_with_every_label(bench: Bench) -> None:
    bench.node("gpu01", rack="a", pool="train")
    bench.node("gpu02", rack="a", pool="infer")
    bench.node("gpu03", rack="b", pool="train")
    made = bench.ask(selector={"rack": "a"}, gpus=[0, 1], duration_s=30, force=True)
    assert made.status_code == 201, made.text
    created = made.json()["created"]
    assert sorted(r["node"] for r in created) == ["gpu01", "gpu02"]
    assert all(r["gpus"] == [0, 1] and r["force"] and r["duration_s"] == 30 for r in created)
    narrow = bench.ask(selector={"pool": "train", "rack": "b"})
    assert [r["node"] for r in narrow.json()["created"]] == ["gpu03"]
    none = bench.ask(selector={"rack": "c"})
    assert none.status_code == 422
    assert none.json()["error"]["code"] == "invalid_bench_request"
    assert "rack=c" in none.json()["error"]["message"]


def test_unknown_nodes_and_bad_bodies_are_refused_with_the_reason(bench: Bench) -> None:
    bench.node("gpu01")
    unknown = bench.ask(nodes=["gpu01", "gpu99"])
    assert unknown.status_code == 422
    assert "'gpu99'" in unknown.json()["error"]["message"]
    assert unknown.json()["error"]["problems"] == [
        {"location": "nodes.1", "message": "unknown node"}
    ]
    assert (
        bench.client.get(BENCH_REQUESTS_PATH, headers=ADMIN).json()["requests"] == []
    )  # none made
    for body, where in (
        ({}, "give either nodes or selector"),
        ({"nodes": ["gpu01"], "selector": {"rack": "a"}}, "not both"),
        ({"nodes": ["gpu01"], "level": "extreme"}, "level"),
        ({"nodes": ["gpu01"], "gpus": [0, 0]}, "twice"),
        ({"nodes": ["gpu01"], "gpus": [-1]}, "gpus.0"),
        ({"nodes": ["gpu01"], "expires_in_s": 30 * 86400}, "expires_in_s"),
        ({"nodes": ["gpu01"], "duration_s": 0}, "duration_s"),
        ({"nodes": []}, "nodes"),
        ({"nodes": ["gpu01"], "colour": "red"}, "colour"),
    ):
        answer = bench.ask(**body)
        assert answer.status_code == 422, body
        error = answer.json()["error"]
        assert error["code"] == "invalid_request", body
        assert where in error["message"] + str(error.get("problems")), (body, error)


def test_the_push_answer_carries_the_order_to_its_node_only(bench: Bench) -> None:
    gpu01, gpu02 = bench.node("gpu01"), bench.node("gpu02")
    assert gpu01.order() is None
    request_id = bench.ask_one("gpu01", level="burn", gpus=[1], duration_s=120, force=True)
    order = gpu01.order()
    assert order == {
        "id": request_id,
        "level": "burn",
        "gpus": [1],
        "duration_s": 120.0,
        "force": True,
        "expires_at": bench.clock.now + 3600,
        "cancel": False,
    }
    assert gpu02.order() is None
    # the bulk route answers with it too
    batches = [
        make_batch(gpu01.seq + i, bench.clock.now, identity("gpu01", gpu01.node_id)) for i in (1, 2)
    ]
    bulk = push_bulk(bench.client, batches, token=gpu01.token)
    assert bulk.status_code == 200, bulk.text
    assert [r["status"] for r in bulk.json()["results"]] == ["accepted", "accepted"]
    assert bulk.json()["bench"]["id"] == request_id
    # a fleet ingest token writes (and reports for) any node: the order of the batch's node
    shared = push(bench.client, make_batch(99, bench.clock.now, identity("gpu01", gpu01.node_id)))
    assert shared.status_code == 200 and shared.json()["bench"]["id"] == request_id
    other = push(bench.client, make_batch(99, bench.clock.now, identity("gpu02", gpu02.node_id)))
    assert other.status_code == 200 and other.json()["bench"] is None
    # a resent batch is acknowledged as a duplicate, with the order still
    again = push(bench.client, make_batch(99, bench.clock.now, identity("gpu01", gpu01.node_id)))
    assert again.json()["status"] == "duplicate" and again.json()["bench"]["id"] == request_id


def test_cancel_of_a_pending_request_ends_it_at_once(bench: Bench) -> None:
    node = bench.node("gpu01")
    request_id = bench.ask_one("gpu01")
    assert node.order() is not None
    cancelled = bench.cancel(request_id)
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["finished_at"]
    assert node.order() is None
    again = bench.cancel(request_id)
    assert again.status_code == 409 and again.json()["error"]["code"] == "request_closed"
    assert bench.cancel("nosuchrequest").status_code == 404
    # a report that crossed the cancel is answered 409, so the agent stops
    late = node.report(request_id, "running")
    assert late.status_code == 409 and "cancelled" in late.json()["error"]["message"]


def test_cancel_of_a_running_request_asks_the_agent_and_ends_with_its_report(bench: Bench) -> None:
    node = bench.node("gpu01")
    request_id = bench.ask_one("gpu01")
    assert node.report(request_id, "running", progress={"done": 1, "total": 6}).status_code == 200
    asked = bench.cancel(request_id)
    assert asked.status_code == 200
    assert (asked.json()["state"], asked.json()["cancel_requested"]) == ("running", True)
    order = node.order()
    assert order is not None and order["id"] == request_id and order["cancel"] is True
    progress = node.report(request_id, "running", progress={"done": 2, "total": 6})
    assert progress.json() == {"id": request_id, "state": "running", "cancel": True}
    assert node.report(request_id, "cancelled", message="stopped on request").status_code == 200
    final = bench.get(request_id)
    assert (final["state"], final["message"]) == ("cancelled", "stopped on request")
    assert node.order() is None


def test_a_pending_request_nobody_takes_expires(bench: Bench) -> None:
    node = bench.node("gpu01")
    request_id = bench.ask_one("gpu01", expires_in_s=600)
    bench.clock.now += 599
    assert bench.get(request_id)["state"] == "pending"
    assert node.order() is not None
    bench.clock.now += 2
    expired = bench.get(request_id)
    assert expired["state"] == "expired" and "did not start it" in expired["message"]
    assert node.order() is None
    assert bench.ask(nodes=["gpu01"]).status_code == 201  # the node is free again


def test_the_order_stops_at_expiry_and_a_late_start_is_refused(bench: Bench) -> None:
    """Expiry on the push path: the cache leaves the order out and queues the expiry."""
    node = bench.node("gpu01")
    request_id = bench.ask_one("gpu01", expires_in_s=60)
    bench.clock.now += 61
    assert node.order() is None
    late = node.report(request_id, "running")
    assert late.status_code == 409
    assert bench.get(request_id)["state"] == "expired"


def test_a_waiting_request_expires_at_its_expires_at_but_its_refusal_is_taken(bench: Bench) -> None:
    node = bench.node("gpu01")
    request_id = bench.ask_one("gpu01", expires_in_s=120)
    waiting = node.report(request_id, "waiting", message="GPU 0 runs compute processes")
    assert waiting.json()["state"] == "waiting"
    bench.clock.now += 121
    # the agent gives up and says so before the server marked it: its final word is kept
    refused = node.report(request_id, "refused", message="the GPUs stayed busy")
    assert refused.status_code == 200
    assert bench.get(request_id)["state"] == "refused"


def test_a_running_request_whose_agent_goes_silent_expires(bench: Bench) -> None:
    node = bench.node("gpu01")
    request_id = bench.ask_one("gpu01", level="standard", gpus=[0, 1], expires_in_s=60)
    assert node.report(request_id, "running").status_code == 200
    bench.clock.now += 120  # past expires_at: a running request does not expire by it
    assert node.report(request_id, "running", progress={"done": 3, "total": 20}).status_code == 200
    bound = silence_bound_seconds("standard", None, 2)
    assert bound == 2 * (240 + 30) + 300
    bench.clock.now += bound - 1
    assert bench.get(request_id)["state"] == "running"
    bench.clock.now += 2
    expired = bench.get(request_id)
    assert expired["state"] == "expired" and "silence bound" in expired["message"]
    assert node.report(request_id, "done", result=result([device(0, {})])).status_code == 409


def test_reports_only_from_the_requests_node_and_never_on_a_closed_one(bench: Bench) -> None:
    gpu01, gpu02 = bench.node("gpu01"), bench.node("gpu02")
    request_id = bench.ask_one("gpu01")
    other = gpu02.report(request_id, "running")
    assert other.status_code == 403 and other.json()["error"]["code"] == "not_your_request"
    assert bench.get(request_id)["state"] == "pending"
    unknown = gpu01.report("0" * 32, "running")
    assert unknown.status_code == 404
    admin = bench.client.post(
        f"{BENCH_REQUESTS_PATH}/{request_id}/report", json={"state": "running"}, headers=ADMIN
    )
    assert admin.status_code == 403  # a node token is needed
    run = result([device(0, {"matmul_bf16": 790.0}, uuid="GPU-1")])
    assert gpu01.report(request_id, "done", result=run).status_code == 200
    closed = gpu01.report(request_id, "done", result=run)
    assert closed.status_code == 409
    assert closed.json()["error"] == {
        "code": "request_closed",
        "message": f"request {request_id} is already done",
    }


def test_bad_reports_are_refused_with_the_reason(bench: Bench) -> None:
    node = bench.node("gpu01")
    request_id = bench.ask_one("gpu01")
    for body, where in (
        ({"state": "exploded"}, "state"),
        ({"state": "running", "progress": {"done": -1, "total": 3}}, "progress.done"),
        ({"state": "done", "result": {"level": "quick"}}, "result.backend"),
        ({"state": "failed", "message": "x" * 5000}, "message"),
    ):
        answer = bench.client.post(
            f"{BENCH_REQUESTS_PATH}/{request_id}/report", json=body, headers=node.auth
        )
        assert answer.status_code == 422, body
        assert where in answer.json()["error"]["message"], answer.json()
    too_big = bench.client.post(
        f"{BENCH_REQUESTS_PATH}/{request_id}/report",
        content=b'{"state": "running", "message": "' + b"x" * (9 << 20) + b'"}',
        headers={**node.auth, "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"
    assert bench.get(request_id)["state"] == "pending"  # nothing of them was applied


def test_requests_are_listed_newest_first_by_node_and_state(bench: Bench) -> None:
    bench.node("gpu01")
    bench.node("gpu02")
    first = bench.ask_one("gpu01")
    bench.cancel(first)
    bench.clock.now += 1
    second = bench.ask_one("gpu01")
    bench.clock.now += 1
    third = bench.ask_one("gpu02")

    def ids(**params: object) -> list[str]:
        answer = bench.client.get(BENCH_REQUESTS_PATH, params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()["requests"]]

    assert ids() == [third, second, first]
    assert ids(node="gpu01") == [second, first]
    assert ids(state="cancelled") == [first]
    assert ids(limit=1) == [third]
    assert (
        bench.client.get(BENCH_REQUESTS_PATH, params={"state": "bogus"}, headers=ADMIN).status_code
        == 422
    )
    assert bench.client.get(f"{BENCH_REQUESTS_PATH}/nosuch", headers=ADMIN).status_code == 404


def test_another_replica_sees_a_new_request_within_the_refresh_bound(
    bench: Bench, make_app: object
) -> None:
    """Two server processes on one database: the second's answers carry the order once its
    cache is re-read (bench_order_refresh_seconds), without any message between them."""
    node = bench.node("gpu01")
    assert callable(make_app)
    with TestClient(make_app(open_reads=False)) as replica:
        replica.app.state.bench_series.stop()  # type: ignore[attr-defined]
        services = replica.app.state.services  # type: ignore[attr-defined]
        token = services.credentials.create(Role.NODE, node_id=node.node_id).token
        other = type(node)(replica, "gpu01", {}, token, seq=100)
        assert other.order() is None  # its cache is fresh and empty
        request_id = bench.ask_one("gpu01")
        assert other.order() is None  # not re-read yet
        bench.clock.now += services.settings.bench_order_refresh_seconds
        order = other.order()
        assert order is not None and order["id"] == request_id
        # a cancel on the first replica reaches the second the same way
        bench.cancel(request_id)
        assert other.order() is not None
        bench.clock.now += services.settings.bench_order_refresh_seconds
        assert other.order() is None


def test_a_fleet_ingest_token_reports_for_any_node(bench: Bench) -> None:
    """It may write any node's data, so an agent using it may report on its node's request."""
    bench.node("gpu01")
    request_id = bench.ask_one("gpu01")
    fleet = {"Authorization": f"Bearer {TOKEN}"}
    path = f"{BENCH_REQUESTS_PATH}/{request_id}/report"
    answer = bench.client.post(path, json={"state": "running"}, headers=fleet)
    assert answer.status_code == 200, answer.text
    assert bench.get(request_id)["state"] == "running"
    read = bench.client.post(
        path, json={"state": "failed"}, headers={"Authorization": f"Bearer {READ_TOKEN}"}
    )
    assert read.status_code == 403

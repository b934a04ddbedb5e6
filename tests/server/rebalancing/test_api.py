"""The hint API over a real server whose rounds run the real engine on scripted snapshots:
lists with filters, one hint with its evidence, the lifecycle through POST (admin and
scheduler tokens; others refused with reasons), and the flat export."""

from __future__ import annotations

from typing import Any

from server.auth.principal import Role
from server.hints.engine import rebalance
from server.hints.hint import Kind
from tests.server.rebalancing.clusters import fleet
from tests.server.rebalancing.live import READER, Live, live

__all__ = ["live"]
HINTS = "/api/v1/hints"


def _ids() -> dict[Kind, str]:
    return {h.kind: h.id for h in rebalance(fleet())}


def _listed(live: Live, **params: Any) -> list[str]:
    return [h["id"] for h in live.get(HINTS, **params)["hints"]]


def test_a_round_lists_its_hints_with_the_rounds_figures(live: Live) -> None:
    ids = _ids()
    report = live.round(fleet())
    assert report.hints_by_kind == {"consolidate": 1, "defragment": 1, "drain": 1}
    answer = live.get(HINTS)
    assert [h["id"] for h in answer["hints"]] == [
        ids[Kind.DRAIN],
        ids[Kind.DEFRAGMENT],
        ids[Kind.CONSOLIDATE],
    ]
    drain = answer["hints"][0]
    assert drain["kind"] == "drain" and drain["state"] == "new" and drain["remedy"] == "cordon"
    assert drain["subject"] == {"node": "gpu01", "gpu": 3, "pod": None}
    assert drain["actions"][0]["pod"] == "train-1" and drain["actions"][0]["from_gpus"] == [3]
    assert "evidence" not in drain
    assert answer["round"]["nodes"] == 6 and answer["round"]["pods"] == 7
    assert answer["round"]["pending"] == 1 and answer["round"]["hints"] == 3
    assert answer["round"]["hints_by_kind"]["drain"] == 1 and answer["round"]["added"] == 3
    assert answer["round"]["engine_seconds"] >= 0 and answer["round"]["at"] == live.clock.now
    assert answer["rounds"] == live.hints.rounds >= 1 and answer["failed_rounds"] == 0


def test_one_hint_with_its_evidence_and_an_unknown_one(live: Live) -> None:
    live.round(fleet())
    drain = live.get(f"{HINTS}/{_ids()[Kind.DRAIN]}")
    (evidence,) = drain["evidence"]
    assert evidence["series"] == "DCGM_FI_DEV_XID_ERRORS" and evidence["value"] == 79.0
    assert evidence["node"] == "gpu01" and evidence["gpu"] == 3
    assert drain["gain"] == {"gpus": 0.0, "gpu_hours": 1.0, "watts": 0.0}
    assert drain["cost"] == {"moves": 1, "restart_s": 120.0}
    assert "fatal_xid 79" in drain["reason"]
    missing = live.client.get(f"{HINTS}/0123456789abcdef", headers=READER)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert "0123456789abcdef" in missing.json()["error"]["message"]


def test_admin_and_scheduler_change_states_others_are_refused(live: Live) -> None:
    live.round(fleet())
    ids = _ids()
    acked = live.post(ids[Kind.DRAIN], {"state": "acknowledged", "note": "RMA 1234"})
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "acknowledged" and acked.json()["note"] == "RMA 1234"
    assert acked.json()["evidence"]  # the full hint comes back
    scheduler = live.token(Role.SCHEDULER)
    applied = live.post(ids[Kind.DEFRAGMENT], {"state": "applied"}, scheduler)
    assert applied.status_code == 200, applied.text
    assert applied.json()["state_changed_by"].startswith("tk_")
    assert live.get(f"{HINTS}/{ids[Kind.DEFRAGMENT]}")["state"] == "applied"
    # the scheduler reads hints too
    assert live.client.get(HINTS, headers=scheduler).status_code == 200
    assert live.client.get(f"{HINTS}/export", headers=scheduler).status_code == 200

    for headers in (READER, live.token(Role.READ)):
        refused = live.post(ids[Kind.CONSOLIDATE], {"state": "dismissed"}, headers)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
    assert live.post(ids[Kind.CONSOLIDATE], {"state": "dismissed"}, {}).status_code == 401
    for body in ({"state": "new"}, {"state": "expired"}, {"state": "gone"}, {}):
        bad = live.post(ids[Kind.CONSOLIDATE], body)
        assert bad.status_code == 422, body
        assert bad.json()["error"]["code"] == "invalid_request"
    extra = live.post(ids[Kind.CONSOLIDATE], {"state": "dismissed", "by": "me"})
    assert extra.status_code == 422
    long_note = live.post(ids[Kind.CONSOLIDATE], {"state": "dismissed", "note": "x" * 2001})
    assert long_note.status_code == 422
    too_large = live.client.post(
        f"{HINTS}/{ids[Kind.CONSOLIDATE]}",
        content=b'{"state": "dismissed", "note": "' + b"x" * 20_000 + b'"}',
        headers={**live.token(Role.ADMIN), "Content-Type": "application/json"},
    )
    assert too_large.status_code == 413
    unknown = live.post("0123456789abcdef", {"state": "dismissed"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert live.get(f"{HINTS}/{ids[Kind.CONSOLIDATE]}")["state"] == "new"


def test_a_dismissed_hint_stays_dismissed_over_rounds_and_an_absent_one_expires(
    live: Live,
) -> None:
    live.round(fleet())
    ids = _ids()
    assert live.post(ids[Kind.DRAIN], {"state": "dismissed"}).status_code == 200
    for _ in range(3):
        live.round(fleet(blocked=False))  # the defragment hint is no longer produced
    assert _listed(live) == [ids[Kind.CONSOLIDATE]]
    states = {h["id"]: h["state"] for h in live.get(HINTS, state="all")["hints"]}
    assert states[ids[Kind.DRAIN]] == "dismissed"
    assert states[ids[Kind.DEFRAGMENT]] == "expired"
    assert _listed(live, state="expired") == [ids[Kind.DEFRAGMENT]]
    refused = live.post(ids[Kind.DEFRAGMENT], {"state": "applied"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "hint_state"
    assert "expired" in refused.json()["error"]["message"]
    live.round(fleet())  # produced again: open again, still the same id
    assert _listed(live) == [ids[Kind.DEFRAGMENT], ids[Kind.CONSOLIDATE]]


def test_filters(live: Live) -> None:
    live.round(fleet())
    ids = _ids()
    drain, defrag, consolidate = ids[Kind.DRAIN], ids[Kind.DEFRAGMENT], ids[Kind.CONSOLIDATE]
    assert _listed(live, kind="defragment") == [defrag]
    assert _listed(live, node="gpu01") == [drain]
    assert _listed(live, node="c") == [consolidate]
    assert _listed(live, pod="etl") == [defrag] == _listed(live, job="etl")
    assert _listed(live, min_gpus=4) == [defrag, consolidate]
    assert _listed(live, min_gpu_hours=1) == [drain, defrag]
    assert _listed(live, min_watts=1) == [consolidate]
    assert _listed(live, limit=2) == [drain, defrag]
    live.post(drain, {"state": "acknowledged"})
    live.post(defrag, {"state": "dismissed"})
    assert _listed(live) == [drain, consolidate]
    assert _listed(live, state="acknowledged") == [drain]
    assert _listed(live, state=["dismissed", "new"]) == [defrag, consolidate]
    assert _listed(live, state="all") == [drain, defrag, consolidate]
    for params in (
        {"kind": "teleport"},
        {"state": "maybe"},
        {"min_gpus": -1},
        {"limit": 0},
        {"pod": "a", "job": "b"},
    ):
        bad = live.client.get(HINTS, params=params, headers=READER)
        assert bad.status_code == 422, params
        assert bad.json()["error"]["message"]


def test_reads_need_a_read_token(live: Live) -> None:
    live.round(fleet())
    for path in (HINTS, f"{HINTS}/export", f"{HINTS}/{_ids()[Kind.DRAIN]}"):
        assert live.client.get(path).status_code == 401
        assert live.client.get(path, headers=live.token(Role.NODE)).status_code == 403


def test_the_export_is_flat_and_holds_the_open_hints_only(live: Live) -> None:
    live.round(fleet())
    ids = _ids()
    live.post(ids[Kind.CONSOLIDATE], {"state": "dismissed"})
    export = live.get(f"{HINTS}/export")
    assert export["version"] == 1 and export["generated_at"] == live.clock.now
    assert [h["id"] for h in export["hints"]] == [ids[Kind.DRAIN], ids[Kind.DEFRAGMENT]]
    drain, defrag = export["hints"]
    assert set(drain) == {
        "id",
        "kind",
        "remedy",
        "state",
        "node",
        "gpu",
        "pod",
        "confidence",
        "gain_gpus",
        "gain_gpu_hours",
        "gain_watts",
        "moves",
        "reason",
    }
    assert (drain["kind"], drain["remedy"], drain["node"], drain["gpu"]) == (
        "drain",
        "cordon",
        "gpu01",
        3,
    )
    target = next(h for h in rebalance(fleet()) if h.kind is Kind.DEFRAGMENT).actions[0]
    assert defrag["moves"] == [
        {
            "pod": "etl",
            "action": "move",
            "from_node": "gpu-a",
            "from_gpus": [],
            "to_node": target.to_node,
            "to_gpus": [],
        }
    ]
    assert defrag["gain_gpus"] == 8.0 and defrag["confidence"] == 0.9

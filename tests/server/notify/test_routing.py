"""Matchers, the routing tree and the receivers file: Alertmanager's semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from server.notify.config import NotifyConfigError, parse_receivers
from server.notify.matchers import MatcherError, parse_matcher, parse_matchers
from server.notify.model import fingerprint, make_labels

L = make_labels


def test_matchers_are_anchored_and_a_missing_label_is_empty() -> None:
    assert parse_matcher('instance=~"gpu0[1-2]"').matches(L({"instance": "gpu01"}))
    assert not parse_matcher('instance=~"gpu0[1-2]"').matches(L({"instance": "xgpu01"}))
    assert not parse_matcher('instance=~"gpu"').matches(L({"instance": "gpu01"}))
    assert parse_matcher('team!="ops"').matches(L({}))
    assert parse_matcher("team=").matches(L({}))
    assert parse_matcher('severity!~"warn.*"').matches(L({"severity": "critical"}))
    assert not parse_matcher('severity!~"warn.*"').matches(L({"severity": "warning"}))
    assert [str(m) for m in parse_matchers('{a="x,y", b=~"c|d"}')] == ['a="x,y"', 'b=~"c|d"']
    with pytest.raises(MatcherError):
        parse_matcher('a=~"("')
    with pytest.raises(MatcherError):
        parse_matcher("no operator")


def test_fingerprint_is_alertmanagers() -> None:
    # The empty set's is FNV-1a's offset basis, as in Go; test_alertmanager.py compares real
    # fingerprints with Alertmanager's own.
    assert fingerprint(()) == "cbf29ce484222325"
    assert fingerprint(L({"alertname": "A"})) == fingerprint(L({"alertname": "A"}))
    assert fingerprint(L({"alertname": "A"})) != fingerprint(L({"alertname": "B"}))


CONFIG = {
    "route": {
        "receiver": "default",
        "group_by": ["alertname"],
        "group_wait": "10s",
        "routes": [
            {"matchers": ['severity="page"'], "receiver": "pager", "continue": True},
            {
                "matchers": ['team="gpu"'],
                "receiver": "gpu",
                "group_by": ["..."],
                "repeat_interval": "1h",
                "routes": [{"matchers": ['alertname="GpuXid"'], "group_wait": "0s"}],
            },
            {"matchers": ['team="gpu"'], "receiver": "never"},
        ],
    },
    "receivers": [
        {"name": "default"},
        {"name": "pager"},
        {"name": "gpu"},
        {"name": "never"},
    ],
    "inhibit_rules": [
        {
            "source_matchers": ['alertname="NodeDown"'],
            "target_matchers": ['team="gpu"'],
            "equal": ["instance"],
        },
    ],
}


def test_routing_tree_continue_inheritance_and_group_keys() -> None:
    root = parse_receivers(CONFIG).route
    page = root.match(L({"alertname": "X", "severity": "page", "team": "gpu"}))
    assert [r.receiver for r in page] == ["pager", "gpu"]  # continue, then first match stops
    other = root.match(L({"alertname": "X"}))
    assert [r.receiver for r in other] == ["default"]
    xid = root.match(L({"alertname": "GpuXid", "team": "gpu", "instance": "gpu01"}))[0]
    assert xid.receiver == "gpu"  # inherited from the parent route
    assert xid.group_wait_s == 0 and xid.repeat_interval_s == 3600 and xid.group_interval_s == 300
    labels = L({"alertname": "GpuXid", "team": "gpu", "instance": "gpu01"})
    assert xid.group_labels(labels) == labels  # '...': every label
    assert other[0].group_key(other[0].group_labels(L({"alertname": "X", "a": "b"}))) == (
        '{}:{alertname="X"}'
    )
    assert page[0].key == '{}/{severity="page"}'
    assert root.group_wait_s == 10 and root.repeat_interval_s == 4 * 3600


def test_empty_group_by_puts_every_alert_in_one_group() -> None:
    root = parse_receivers({"route": {"receiver": "r"}, "receivers": [{"name": "r"}]}).route
    assert root.group_labels(L({"alertname": "A", "x": "1"})) == ()
    assert (root.group_wait_s, root.group_interval_s, root.repeat_interval_s) == (30, 300, 4 * 3600)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"route": {"receiver": "missing"}}, "undefined receiver 'missing'"),
        ({"route": {"receiver": "r", "matchers": ['a="b"']}}, "root route must not"),
        ({"route": {"receiver": "r", "group_wait": "soon"}}, "route.group_wait"),
        ({"route": {"receiver": "r", "routes": [{"matchers": ["a=~("]}]}}, "routes[0]"),
        ({"route": {"receiver": "r", "group_by": ["...", "a"]}}, "only label"),
        ({"route": {"receiver": "r", "smtp": 1}}, "route.smtp"),
    ],
)
def test_bad_receivers_files_are_refused_with_the_place(change: dict, message: str) -> None:
    data = {"route": {"receiver": "r"}, "receivers": [{"name": "r"}], **change}
    with pytest.raises(NotifyConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_receivers(data)


def test_the_shipped_example_receivers_file_is_valid() -> None:
    path = Path(__file__).parents[3] / "deploy" / "config" / "notify.yml"
    config = parse_receivers(yaml.safe_load(path.read_text()), str(path))
    assert [r.receiver for r in config.route.routes] == ["pager", "gpu-team"]
    assert config.inhibit_rules[0].equal == ("instance",)

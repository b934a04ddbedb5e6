"""Label matchers: each operator, Prometheus' missing-label and anchoring rules, parse errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.rollup.matchers import (
    MAX_REGEX_LENGTH,
    Matcher,
    MatcherError,
    matches_all,
    parse_matcher,
)

NODE = {"instance": "node-1", "gpu": "3", "model": "NVIDIA H100 80GB HBM3"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu=3", True),
        ("gpu=4", False),
        ("gpu!=3", False),
        ("gpu!=4", True),
        ("instance=~node-[0-9]+", True),
        ("instance=~node-[2-9]", False),
        ("instance!~node-[0-9]+", False),
        ("instance!~gpu-.*", True),
        ("model=~.*H100.*", True),
    ],
)
def test_each_operator(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches(NODE) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rack=", True),  # missing label equals ""
        ("rack!=", False),
        ("rack=r1", False),
        ("rack!=r1", True),
        ("rack=~", True),
        ("rack=~r.*", False),
        ("rack=~r?", True),  # the regex matches "", so a missing label matches
        ("rack!~.+", True),
        ("rack!~.*", False),
    ],
)
def test_a_missing_label_counts_as_empty(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches(NODE) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("instance=~node", False),
        ("instance=~ode-1", False),
        ("instance=~node-", False),
        ("instance=~node-1|x", True),  # alternation stays inside the anchors
        ("instance=~x|node", False),
        ("instance!~node", True),
    ],
)
def test_regexes_are_anchored_at_both_ends(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches(NODE) is expected


def test_anchoring_does_not_accept_a_trailing_newline() -> None:
    assert not parse_matcher("instance=~node-1").matches({"instance": "node-1\n"})


def test_the_regex_is_compiled_once_when_the_matcher_is_built() -> None:
    m = parse_matcher("gpu=~[0-3]")
    assert m.pattern is not None
    assert m.pattern.pattern == "[0-3]"
    assert parse_matcher("gpu=3").pattern is None
    assert m == Matcher("gpu", "=~", "[0-3]")


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ("job=a=b", "job", "=", "a=b"),
        ("job==b", "job", "=", "=b"),
        ("job=~a=~b", "job", "=~", "a=~b"),
        ("job!=~x", "job", "!=", "~x"),
        ("job!~a!~b", "job", "!~", "a!~b"),
        ("job=~~", "job", "=~", "~"),
        ("job=", "job", "=", ""),
        ("job=~", "job", "=~", ""),
        ("_x9=  spaced  ", "_x9", "=", "  spaced  "),
    ],
)
def test_split_at_the_first_operator(text: str, name: str, op: str, value: str) -> None:
    m = parse_matcher(text)
    assert (m.name, m.op, m.value) == (name, op, value)


def test_invalid_regex_names_the_matcher_and_the_problem() -> None:
    with pytest.raises(MatcherError, match=r"^gpu=~'\[': invalid regular expression: "):
        parse_matcher("gpu=~[")
    with pytest.raises(MatcherError, match="invalid regular expression"):
        Matcher("gpu", "!~", "(")


def test_an_invalid_regex_is_fine_for_equality() -> None:
    assert parse_matcher("gpu=[").matches({"gpu": "["})


@pytest.mark.parametrize(
    "text", ["1gpu=0", "=0", "gp-u=0", "gpu =0", " gpu=0", "gp.u=~x", "a!b=c", "gpü=0"]
)
def test_bad_label_names(text: str) -> None:
    with pytest.raises(MatcherError, match="label name must match"):
        parse_matcher(text)


@pytest.mark.parametrize("text", ["gpu", "", "gpu~3", "gpu!3"])
def test_no_operator(text: str) -> None:
    with pytest.raises(MatcherError, match="expected label=value"):
        parse_matcher(text)


def test_regex_length_is_capped() -> None:
    longest = "a" * MAX_REGEX_LENGTH
    assert parse_matcher(f"x=~{longest}").matches({"x": longest})
    with pytest.raises(MatcherError, match="longer than 1024"):
        parse_matcher(f"x=~{longest}a")
    with pytest.raises(MatcherError, match="longer than 1024"):
        parse_matcher(f"x!~{longest}a")
    assert parse_matcher(f"x={longest}a").value == longest + "a"  # equality is not capped


def test_unknown_operator_is_refused_when_built_directly() -> None:
    with pytest.raises(MatcherError, match="unknown operator"):
        Matcher("gpu", "==", "3")  # type: ignore[arg-type]


def test_matches_all() -> None:
    assert matches_all([], NODE)
    assert matches_all([parse_matcher("gpu=3"), parse_matcher("instance=~node-.*")], NODE)
    assert not matches_all([parse_matcher("gpu=3"), parse_matcher("instance!~node-.*")], NODE)


@given(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True), st.text(max_size=20))
def test_equality_agrees_with_the_label_value(name: str, value: str) -> None:
    m = parse_matcher(f"{name}!={value}")
    assert (m.name, m.op, m.value) == (name, "!=", value)
    assert not m.matches({name: value})
    if not value.startswith("~"):  # "name=~..." is a regex matcher: see the next test
        m = parse_matcher(f"{name}={value}")
        assert (m.name, m.op, m.value) == (name, "=", value)
        assert m.matches({name: value})


def test_an_equality_value_cannot_start_with_a_tilde() -> None:
    assert parse_matcher("gpu=~3").op == "=~"

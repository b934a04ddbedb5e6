"""The parser boundary maps promql-parser's AST into the typed plan, and names bad queries."""

from __future__ import annotations

import pytest

from server.promql import plan
from server.promql.errors import ParseError, UnsupportedError
from server.promql.parse import parse


def test_selector_gets_name_matcher_offset_and_at() -> None:
    node = parse('up{job=~"a|b"} offset -5m @ 1.5')
    assert isinstance(node, plan.VectorSelector)
    assert node.name == "up"
    assert [(m.name, m.op, m.value) for m in node.matchers] == [
        ("__name__", plan.MatchOp.EQUAL, "up"),
        ("job", plan.MatchOp.RE, "a|b"),
    ]
    assert node.offset_ms == -300_000
    assert node.at == 1500


def test_regex_matchers_are_anchored_and_dot_matches_newline() -> None:
    node = parse('x{a=~"b.c"}')
    assert isinstance(node, plan.VectorSelector)
    matcher = node.matchers[1]
    assert matcher.matches("b\nc")
    assert not matcher.matches("xb-c")


def test_subquery_with_edges_and_default_step() -> None:
    node = parse("rate(x[5m:] @ end())")
    assert isinstance(node, plan.Call)
    sub = node.args[0]
    assert isinstance(sub, plan.Subquery)
    assert (sub.range_ms, sub.step_ms, sub.at) == (300_000, None, plan.AtEdge.END)


def test_vector_matching_and_bool() -> None:
    node = parse("a + on(b) group_left(c) d")
    assert isinstance(node, plan.Binary)
    assert node.matching == plan.VectorMatching(plan.Cardinality.MANY_TO_ONE, True, ("b",), ("c",))
    cmp = parse("a > bool ignoring(x) b")
    assert isinstance(cmp, plan.Binary)
    assert cmp.return_bool
    assert cmp.matching is not None and not cmp.matching.on


def test_aggregation_without_and_param() -> None:
    node = parse("topk without (a) (3, x)")
    assert isinstance(node, plan.Aggregate)
    assert (node.op, node.grouping, node.without) == ("topk", ("a",), True)
    assert node.param == plan.NumberLiteral(3.0)


def test_unary_minus_binds_looser_than_power_and_folds_literals() -> None:
    node = parse("-2^2")
    assert isinstance(node, plan.Unary)
    assert parse("-(1)") == plan.NumberLiteral(-1.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rate(x)", "expected type matrix"),
        ("1 == 2", "BOOL"),
        ("{}", "non-empty matcher"),
        ("sum(", "unclosed left parenthesis"),
        ("nosuchfunction(x)", "unknown function"),
    ],
)
def test_parse_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ParseError, match=fragment):
        parse(text)


def test_or_inside_selectors_is_unsupported() -> None:
    with pytest.raises(UnsupportedError):
        parse('x{a="1" or b="2"}')


def test_an_at_time_past_what_a_timestamp_holds_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="timestamp out of bounds"):
        parse("up @ 1e20")

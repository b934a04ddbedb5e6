"""The reader of Prometheus' .test scripts: series notation, commands, errors naming file:line."""

from __future__ import annotations

import math

import pytest

from tests.server.promql.promqltest import (
    HISTOGRAM,
    Clear,
    Eval,
    Load,
    ScriptError,
    Storage,
    go_unquote,
    is_stale,
    parse_duration_ms,
    parse_metric,
    parse_number,
    parse_script,
    parse_values,
)


def test_durations_follow_prometheus() -> None:
    assert parse_duration_ms("0") == 0
    assert parse_duration_ms("50m") == 3_000_000
    assert parse_duration_ms("10s53ms") == 10_053
    assert parse_duration_ms("1h30m") == 5_400_000
    assert parse_duration_ms("1d") == 86_400_000
    for bad in ("", "100", "1.5m", "-1m", "30m1h", "1x"):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)


def test_numbers_read_like_go() -> None:
    assert parse_number("010") == 8  # ParseInt base 0: octal
    assert parse_number("010.0") == 10
    assert parse_number("0x1f") == 31
    assert parse_number("-1.5e3") == -1500
    assert parse_number("Inf") == math.inf
    assert parse_number("-inf") == -math.inf
    assert math.isnan(parse_number("NaN"))
    for bad in ("foo", "1 2", "", "{} 1", "1e", "."):
        with pytest.raises(ValueError):
            parse_number(bad)


def test_series_notation_expands() -> None:
    # a+bxN gives N+1 values; axN gives N+1 copies; _xN gives N blanks.
    assert parse_values("1+2x3") == (1.0, 3.0, 5.0, 7.0)
    assert parse_values("10-3x2") == (10.0, 7.0, 4.0)
    assert parse_values("-1+1x2") == (-1.0, 0.0, 1.0)
    assert parse_values("5x2") == (5.0, 5.0, 5.0)
    assert parse_values("0x3 7") == (0.0, 0.0, 0.0, 0.0, 7.0)  # not hex
    assert parse_values("_x3 1 _") == (None, None, None, 1.0, None)
    assert parse_values("1+0.5x2") == (1.0, 1.5, 2.0)
    points = parse_values("1 stale Inf -Inf NaN")
    assert points[0] == 1.0
    assert isinstance(points[1], float) and is_stale(points[1])
    assert points[2:4] == (math.inf, -math.inf)
    assert isinstance(points[4], float) and math.isnan(points[4]) and not is_stale(points[4])


def test_histograms_are_marked_not_decoded() -> None:
    points = parse_values("1 {{schema:1 sum:3 count:22 buckets:[5 10 7]}} {{count:1}}x2 _")
    assert points == (1.0, HISTOGRAM, HISTOGRAM, HISTOGRAM, HISTOGRAM, None)
    assert parse_values("{{count:1}}+{{count:2}}x3") == (HISTOGRAM,) * 4


def test_bad_series_items_raise() -> None:
    for bad in ("1+x3", "abc", "1+2x", "{{count:1"):
        with pytest.raises(ValueError):
            parse_values(bad)


def test_metric_labels() -> None:
    labels, end = parse_metric('http_requests{job="api", path="/a b"} 1')
    assert labels == (("__name__", "http_requests"), ("job", "api"), ("path", "/a b"))
    assert end == len('http_requests{job="api", path="/a b"}')
    assert parse_metric("{}")[0] == ()
    assert parse_metric("{a='x',}")[0] == (("a", "x"),)
    assert parse_metric('{"my.metric", a="b"}')[0] == (("__name__", "my.metric"), ("a", "b"))
    assert parse_metric('foo{a="x\\"y"}')[0] == (("__name__", "foo"), ("a", 'x"y'))
    for bad in ('foo{a="x"', "foo{a}", "{a=x}", '{a="1", a="2"}'):
        with pytest.raises(ValueError):
            parse_metric(bad)


def test_go_unquote() -> None:
    assert go_unquote('"a\\tb"') == "a\tb"
    assert go_unquote("`a\\tb`") == "a\\tb"
    assert go_unquote('"\\u00e9"') == "é"
    with pytest.raises(ValueError):
        go_unquote('"abc')


SCRIPT = """\
# A comment.
load 5m
  http_requests{job="api"} 0+10x3
  http_requests{job="db"}  1 _ 3
  http_requests{job="api"} 7

eval instant at 10m sum(http_requests)
  {} 10

eval range from 0 to 10m step 5m http_requests{job="db"}
  http_requests{job="db"} 1 1 3

eval instant at 0m foo
  expect fail msg: some error
  expect warn regex: PromQL warning: .*

eval_ordered instant at 1m sort(x)
  x{a="1"} 1
  x{a="2"} 2

eval_fail instant at 0m bar
  expected_fail_regexp found duplicate.*

eval instant at 1m scalar(x)
  1.5

eval instant at 1m "Foo"
  expect string "Foo"

eval instant at 1m x[1m]
  expect range vector from 0 to 1m step 30s
  x 1 2 3

clear
"""


def test_script_commands() -> None:
    commands = parse_script(SCRIPT, "demo.test")
    kinds = [type(c).__name__ for c in commands]
    assert kinds == [
        "Load",
        "Eval",
        "Eval",
        "Eval",
        "Eval",
        "Eval",
        "Eval",
        "Eval",
        "Eval",
        "Clear",
    ]
    load = commands[0]
    assert isinstance(load, Load) and load.interval_ms == 300_000 and load.line == 2
    # The repeated series replaces the earlier one within one load.
    assert [s.labels for s in load.series] == [
        (("__name__", "http_requests"), ("job", "db")),
        (("__name__", "http_requests"), ("job", "api")),
    ]
    assert load.series[1].points == (7.0,)

    instant, ranged, failing, ordered, old_fail, scalar, string, matrix = commands[1:9]
    assert isinstance(instant, Eval) and instant.instant and instant.start_ms == 600_000
    assert instant.series[0].labels == () and instant.series[0].points == (10.0,)
    assert instant.line == 7
    assert isinstance(ranged, Eval) and not ranged.instant
    assert (ranged.start_ms, ranged.end_ms, ranged.step_ms) == (0, 600_000, 300_000)
    assert ranged.series[0].points == (1.0, 1.0, 3.0)
    assert isinstance(failing, Eval) and failing.fail is not None
    assert failing.fail.matches("some error") and not failing.fail.matches("some error!")
    assert [a.kind for a in failing.annotations] == ["warn"]
    assert isinstance(ordered, Eval) and ordered.ordered
    assert isinstance(old_fail, Eval) and old_fail.fail is not None
    assert old_fail.fail.matches("xx found duplicate series") and not old_fail.fail.matches("no")
    assert isinstance(scalar, Eval) and scalar.scalar == 1.5 and scalar.series == ()
    assert isinstance(string, Eval) and string.string == "Foo"
    assert isinstance(matrix, Eval) and matrix.range_vector is not None
    assert (matrix.start_ms, matrix.end_ms, matrix.step_ms) == (0, 60_000, 30_000)
    assert isinstance(commands[9], Clear)


@pytest.mark.parametrize(
    ("script", "line", "fragment"),
    [
        ("load 5m\n  foo 1\n\nbogus command\n", 4, "invalid command"),
        ("load 5x\n  foo 1\n", 1, "invalid load interval"),
        ("load 5m\n  foo 1\n  bar{a=} 2\n", 3, "quoted string"),
        ("load 5m\n  foo 1+x2\n", 2, "bad series item"),
        ("eval instant at 1m foo\n  foo 1 2\n", 2, "one value per series"),
        ("eval instant at 1q foo\n", 1, "invalid eval time"),
        ("eval range from 5m to 1m step 1m foo\n", 1, "before start"),
        ("eval instant at 1m foo\n  expect bogus\n", 2, "invalid expect line"),
        ("eval instant at 1m foo\n  expect fail\n  expect fail\n", 3, "at most one"),
        ("eval instant at 1m foo\n  expect warn\n  expect no_warn\n", 3, "contradicts"),
        ("eval sometime foo\n", 1, "invalid eval command"),
    ],
)
def test_bad_lines_name_file_and_line(script: str, line: int, fragment: str) -> None:
    with pytest.raises(ScriptError) as excinfo:
        parse_script(script, "bad.test")
    assert str(excinfo.value).startswith(f"bad.test:{line}: ")
    assert fragment in str(excinfo.value)
    assert excinfo.value.line == line


def test_storage_accumulates_and_marks_histograms() -> None:
    commands = parse_script(
        "load 1m\n  a 1 _ 3\n  h 1 {{count:2}}\n\nload 1m\n  a _ 2\n\n"
        'load_with_nhcb 1m\n  t_bucket{le="1", x="y"} 1\n  t_count{x="y"} 1\n',
        "s.test",
    )
    storage = Storage()
    for command in commands:
        assert isinstance(command, Load)
        storage.load(command)
    assert storage.samples[(("__name__", "a"),)] == {0: 1.0, 60_000: 2.0, 120_000: 3.0}
    assert storage.samples[(("__name__", "h"),)] == {0: 1.0}
    assert storage.histogram_series == {(("__name__", "h"),), (("__name__", "t"), ("x", "y"))}
    storage.clear()
    assert storage.samples == {} and storage.histogram_series == set()

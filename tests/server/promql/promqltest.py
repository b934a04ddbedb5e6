"""Reader of Prometheus' PromQL test scripts (the ``.test`` language of ``promqltest``).

Input: the text of one ``.test`` file. Output: a list of commands (``Load``, ``Clear``, ``Eval``)
with times in int64 milliseconds and expected values as plain floats, for the conformance test
to run through the engine. The language is described in the conformance data's ``FORMAT.md``
(commands) and ``unit_testing_rules.md`` (the series notation ``a+bxN``, ``_``, ``stale``).

It follows Prometheus' own reader closely, quirks included: lines are trimmed, a ``#`` line is
blank, a blank line ends a block, a line that parses as a number is a scalar expectation and ends
the block, and so do the old ``expected_fail_message``/``expected_fail_regexp`` lines. Native
histogram values (``{{...}}``) are not decoded: the series or expectation is marked
``histogram`` and the harness reports what depends on it as unsupported. Annotation
expectations (``expect warn|info|no_warn|no_info``, ``eval_warn``, ``eval_info``) are read and
kept but not checked, since the engine emits no annotations.

A malformed line raises ``ScriptError`` naming ``file:line``.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]

STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


class ScriptError(ValueError):
    """A line of a test script that does not follow the language; the message names file:line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


def is_stale(value: float) -> bool:
    """Returns: whether ``value`` is Prometheus' stale marker (compared bit for bit)."""
    return struct.pack("<d", value) == struct.pack("<d", STALE_NAN)


# --- durations and numbers --------------------------------------------------------------------

_DURATION_UNITS = (
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
)
_DURATION_RE = re.compile(
    "^" + "".join(f"(?:([0-9]+){unit})?" for unit, _ in _DURATION_UNITS) + "$"
)


def parse_duration_ms(text: str) -> int:
    """Returns: milliseconds of a Prometheus duration (``1h30m``, ``10s53ms``, or ``0``).

    Raises ValueError, like ``model.ParseDuration``, for anything else (``1.5m``, ``-1m``, ``100``).
    """
    if text == "0":
        return 0
    match = _DURATION_RE.match(text)
    if text == "" or match is None:
        raise ValueError(f"not a valid duration string: {text!r}")
    return sum(
        int(group) * size
        for group, (_, size) in zip(match.groups(), _DURATION_UNITS, strict=True)
        if group is not None
    )


_FLOAT_RE = re.compile(
    r"^[+-]?(?:(?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)$",
    re.IGNORECASE,
)


def parse_go_int(text: str) -> int:
    """Returns: ``text`` read like Go's ``strconv.ParseInt(s, 0, 64)`` (``010`` is 8, ``0x1f``)."""
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    if body == "" or not body[0].isdigit() or body.startswith("_") or text[:2] in ("+-", "-+"):
        raise ValueError(f"not an integer: {text!r}")
    lowered = body.lower()
    if lowered.startswith(("0x", "0o", "0b")):
        value = int(body[2:].replace("_", "") or "x", {"x": 16, "o": 8, "b": 2}[lowered[1]])
    elif len(body) > 1 and body[0] == "0":
        value = int(body[1:].replace("_", ""), 8)
    elif body.isdigit():
        value = int(body)
    else:
        raise ValueError(f"not an integer: {text!r}")
    if not -(2**63) <= sign * value < 2**63:
        raise ValueError(f"integer out of range: {text!r}")
    return sign * value


def parse_number(text: str) -> float:
    """Returns: ``text`` read like promqltest's ``parseNumber`` (Go ParseInt, then ParseFloat)."""
    try:
        return float(parse_go_int(text))
    except ValueError:
        pass
    if "_" in text or _FLOAT_RE.match(text) is None or text.lstrip("+-") in ("", "."):
        raise ValueError(f"not a number: {text!r}")
    lowered = text.lower().lstrip("+-")
    if lowered.startswith("inf"):
        return -math.inf if text.startswith("-") else math.inf
    return float(text)


# --- strings and label sets -------------------------------------------------------------------

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


def go_unquote(text: str) -> str:
    """Returns: the value of a Go string literal (``"..."`` or ``'...'`` with escapes, or raw
    backquotes), as PromQL strings are written. Raises ValueError if it is not one.

    ``\\xNN`` and octal escapes give the code point NN (Go would give a raw byte).
    """
    if len(text) < 2 or text[0] != text[-1] or text[0] not in "\"'`":
        raise ValueError(f"not a quoted string: {text!r}")
    quote, body = text[0], text[1:-1]
    if quote == "`":
        if "`" in body:
            raise ValueError(f"backquote inside a raw string: {text!r}")
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == quote or char == "\n":
            raise ValueError(f"unescaped {char!r} in {text!r}")
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError(f"dangling backslash in {text!r}")
        kind = body[i + 1]
        if kind in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[kind])
            i += 2
        elif kind in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[kind]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(f"bad \\{kind} escape in {text!r}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif kind in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise ValueError(f"bad octal escape in {text!r}")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{kind} in {text!r}")
    return "".join(out)


_IDENT_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_STRING_RE = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`""")


def _read_string(text: str, pos: int) -> tuple[str, int]:
    match = _STRING_RE.match(text, pos)
    if match is None:
        raise ValueError(f"expected a quoted string at column {pos + 1}")
    return go_unquote(match.group()), match.end()


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def parse_metric(text: str) -> tuple[Labels, int]:
    """Returns: the label set of ``name{l="v", ...}`` (or ``{...}``) at the start of ``text``,
    sorted by name with the name as ``__name__``, and the index just past it."""
    pairs: dict[str, str] = {}
    pos = 0
    name_match = _METRIC_RE.match(text)
    if name_match is not None:
        pairs["__name__"] = name_match.group()
        pos = name_match.end()
    if pos < len(text) and text[pos] == "{":
        pos = _skip_space(text, pos + 1)
        while pos < len(text) and text[pos] != "}":
            quoted = text[pos] in "\"'`"
            if quoted:
                label, pos = _read_string(text, pos)
            else:
                ident = _IDENT_RE.match(text, pos)
                if ident is None:
                    raise ValueError(f"expected a label name at column {pos + 1}")
                label, pos = ident.group(), ident.end()
            pos = _skip_space(text, pos)
            if text.startswith("=", pos) and not text.startswith("=~", pos):
                value, pos = _read_string(text, _skip_space(text, pos + 1))
            elif quoted and "__name__" not in pairs:
                # {"metric.name"}: a quoted metric name inside the braces (UTF-8 names).
                pairs["__name__"], value = label, ""
                label = ""
            else:
                raise ValueError(f"expected '=' after label {label!r}")
            if label:
                if label in pairs:
                    raise ValueError(f"duplicate label {label!r}")
                pairs[label] = value
            pos = _skip_space(text, pos)
            if pos < len(text) and text[pos] == ",":
                pos = _skip_space(text, pos + 1)
            elif pos < len(text) and text[pos] != "}":
                raise ValueError(f"expected ',' or '}}' at column {pos + 1}")
        if pos >= len(text):
            raise ValueError("unclosed '{'")
        pos += 1
    elif name_match is None:
        raise ValueError("expected a metric name or '{'")
    # Storage never keeps an empty label value.
    return tuple(sorted((k, v) for k, v in pairs.items() if v != "")), pos


# --- series values ----------------------------------------------------------------------------

HISTOGRAM = "histogram"
"""A native histogram point in a value list; its content is not decoded."""

Point = float | None | str
"""One position of a series: a float (maybe ``STALE_NAN``), ``None`` (``_``), or ``HISTOGRAM``."""

# No hex here: in series notation "0x59" is 0 repeated (59 + 1) times.
_NUM = (
    r"(?:[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9]+)?"
    r"|\.[0-9]+(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN])"
)
_ITEM_RE = re.compile(rf"^(?P<a>[+-]?{_NUM}|stale)(?:(?P<b>[+-]{_NUM})?x(?P<n>[0-9]+))?$")
_BLANK_RE = re.compile(r"^_(?:x(?P<n>[0-9]+))?$")
_HIST_REPEAT_RE = re.compile(r"\}\}x([0-9]+)$")


def _series_number(text: str) -> float:
    return STALE_NAN if text == "stale" else parse_number(text)


def _split_values(text: str) -> list[str]:
    """Returns: whitespace-separated items, keeping each ``{{...}}`` (with its tail) whole."""
    items: list[str] = []
    pos = 0
    while True:
        pos = _skip_space(text, pos)
        if pos >= len(text):
            return items
        start = pos
        while pos < len(text) and text[pos] not in " \t":
            if text.startswith("{{", pos):
                close = text.find("}}", pos)
                if close < 0:
                    raise ValueError("unclosed '{{'")
                pos = close + 2
            else:
                pos += 1
        items.append(text[start:pos])


def parse_values(text: str) -> tuple[Point, ...]:
    """Returns: the points of a series description's value part (``1 2+3x2 _ stale _x3``).

    ``a+bxN`` and ``axN`` give N+1 values; ``_xN`` gives N omitted points.
    """
    points: list[Point] = []
    for item in _split_values(text):
        if item.startswith("{{"):
            # {{...}}, {{...}}xN, {{...}}+{{...}}xN or {{...}}-{{...}}xN
            repeat = _HIST_REPEAT_RE.search(item)
            if not item.endswith("}}") and repeat is None:
                raise ValueError(f"bad histogram series item {item!r}")
            points.extend([HISTOGRAM] * (int(repeat.group(1)) + 1 if repeat else 1))
            continue
        blank = _BLANK_RE.match(item)
        if blank is not None:
            points.extend([None] * (int(blank.group("n")) if blank.group("n") else 1))
            continue
        match = _ITEM_RE.match(item)
        if match is None:
            raise ValueError(f"bad series item {item!r}: expected a number, '_' or 'stale'")
        first = _series_number(match.group("a"))
        if match.group("n") is None:
            points.append(first)
            continue
        count = int(match.group("n"))
        step = parse_number(match.group("b")) if match.group("b") else 0.0
        value = first
        for _ in range(count + 1):
            points.append(value)
            value += step
    return tuple(points)


@dataclass(frozen=True)
class SeriesLine:
    """One ``metric{labels} values`` line: of a ``load``, or an expected result."""

    labels: Labels
    points: tuple[Point, ...]
    line: int

    @property
    def has_histogram(self) -> bool:
        return HISTOGRAM in self.points


def parse_series_line(text: str) -> tuple[Labels, tuple[Point, ...]]:
    """Returns: labels and points of a series description. Raises ValueError."""
    labels, pos = parse_metric(text)
    if pos < len(text) and text[pos] not in " \t":
        raise ValueError(f"unexpected {text[pos]!r} after the metric at column {pos + 1}")
    return labels, parse_values(text[pos:])


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """``load <interval>``: point *i* of each series at ``i * interval_ms``."""

    line: int
    interval_ms: int
    series: tuple[SeriesLine, ...]
    with_nhcb: bool = False

    @property
    def has_histogram(self) -> bool:
        return self.with_nhcb or any(s.has_histogram for s in self.series)


@dataclass(frozen=True)
class Clear:
    line: int


@dataclass(frozen=True)
class Expect:
    """An ``expect <kind> [msg|regex: text]`` line; ``kind`` is fail/ordered/warn/info/no_*."""

    kind: str
    message: str | None = None  # exact match
    regex: str | None = None  # unanchored search

    def matches(self, text: str) -> bool:
        if self.message is not None:
            return text == self.message
        if self.regex is not None:
            return re.search(self.regex, text) is not None
        return True


@dataclass(frozen=True)
class RangeVector:
    """``expect range vector from A to B step S``: an instant eval returning a matrix."""

    start_ms: int
    end_ms: int
    step_ms: int


@dataclass(frozen=True)
class Eval:
    """One ``eval``: the query, how to run it and what it must give.

    Instant evals have ``start_ms == end_ms`` (the ``at`` time) and ``step_ms == 0``. Expected
    results are ``scalar`` (a number line), ``string``, or ``series`` (possibly empty).
    """

    line: int
    expr: str
    instant: bool
    start_ms: int
    end_ms: int
    step_ms: int
    expects: tuple[Expect, ...] = ()
    scalar: float | None = None
    string: str | None = None
    range_vector: RangeVector | None = None
    series: tuple[SeriesLine, ...] = ()

    @property
    def fail(self) -> Expect | None:
        """Returns: the ``expect fail`` line (or old form), if the query must fail."""
        return next((e for e in self.expects if e.kind == "fail"), None)

    @property
    def ordered(self) -> bool:
        return any(e.kind == "ordered" for e in self.expects)

    @property
    def annotations(self) -> tuple[Expect, ...]:
        """Returns: the annotation expectations, which this harness does not check."""
        return tuple(e for e in self.expects if e.kind in ("warn", "info", "no_warn", "no_info"))

    @property
    def has_histogram(self) -> bool:
        return any(s.has_histogram for s in self.series)


Command = Load | Clear | Eval

_LOAD_RE = re.compile(r"^load(?:_(with_nhcb))?\s+(.+?)$")
_EVAL_INSTANT_RE = re.compile(
    r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$"
)
_EVAL_RANGE_RE = re.compile(
    r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$"
)
_EXPECT_RE = re.compile(
    r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$"
)
_RANGE_VECTOR_RE = re.compile(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")


class _Reader:
    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = [
            "" if line.strip().startswith("#") else line.strip() for line in text.split("\n")
        ]

    def error(self, index: int, message: str) -> ScriptError:
        return ScriptError(self.path, index + 1, message)

    def read(self) -> list[Command]:
        commands: list[Command] = []
        i = 0
        while i < len(self.lines):
            line = self.lines[i]
            if line == "":
                i += 1
                continue
            word = re.split(r"[\t ]+", line, maxsplit=1)[0].lower()
            command: Command
            if word == "clear":
                command = Clear(i + 1)
            elif word.startswith("load"):
                i, command = self.load(i)
            elif word.startswith("eval"):
                i, command = self.eval(i)
            else:
                raise self.error(i, f"invalid command {line!r}")
            commands.append(command)
            i += 1
        return commands

    def block(self, start: int) -> list[int]:
        """Returns: indexes of the lines after ``start`` up to the next blank line."""
        end = start + 1
        while end < len(self.lines) and self.lines[end] != "":
            end += 1
        return list(range(start + 1, end))

    def series(self, index: int) -> SeriesLine:
        try:
            labels, points = parse_series_line(self.lines[index])
        except ValueError as exc:
            raise self.error(index, str(exc)) from exc
        return SeriesLine(labels, points, index + 1)

    def duration(self, index: int, text: str, what: str) -> int:
        try:
            return parse_duration_ms(text)
        except ValueError as exc:
            raise self.error(index, f"invalid {what} {text!r}: {exc}") from exc

    def load(self, i: int) -> tuple[int, Load]:
        match = _LOAD_RE.match(self.lines[i])
        if match is None:
            raise self.error(i, "invalid load command, expected 'load[_with_nhcb] <interval>'")
        interval = self.duration(i, match.group(2), "load interval")
        by_labels: dict[Labels, SeriesLine] = {}
        body = self.block(i)
        for index in body:
            if re.match(r"^\S*@st\s", self.lines[index]):
                raise self.error(index, "start-timestamp (@st) lines are not supported")
            line = self.series(index)
            by_labels.pop(line.labels, None)  # a repeated series replaces the earlier one
            by_labels[line.labels] = line
        last = body[-1] if body else i
        return last, Load(i + 1, interval, tuple(by_labels.values()), match.group(1) is not None)

    def eval(self, i: int) -> tuple[int, Eval]:
        line = self.lines[i]
        instant = _EVAL_INSTANT_RE.match(line)
        ranged = _EVAL_RANGE_RE.match(line)
        expects: list[Expect] = []
        if instant is not None:
            modifier, at, expr = instant.group(1), instant.group(2), instant.group(3)
            if at is None:
                raise self.error(i, "an instant eval needs 'at <time>'")
            start = end = self.duration(i, at, "eval time")
            step = 0
        elif ranged is not None:
            modifier, expr = ranged.group(1), ranged.group(5)
            start = self.duration(i, ranged.group(2), "start time")
            end = self.duration(i, ranged.group(3), "end time")
            step = self.duration(i, ranged.group(4), "step")
            if end < start:
                raise self.error(i, "end time is before start time")
        else:
            raise self.error(
                i,
                "invalid eval command, expected 'eval[_fail|_warn|_ordered|_info] instant at <t> "
                "<query>' or 'eval[_fail|_warn|_info] range from <t> to <t> step <d> <query>'",
            )
        if modifier is not None:
            expects.append(Expect(modifier))
        scalar: float | None = None
        string: str | None = None
        range_vector: RangeVector | None = None
        series: list[SeriesLine] = []
        last = i
        position = 0
        for index in self.block(i):
            last = index
            text = self.lines[index]
            if modifier == "fail" and text.startswith("expected_fail_message"):
                message = text.removeprefix("expected_fail_message").strip()
                expects = [e for e in expects if e.kind != "fail"] + [Expect("fail", message)]
                break
            if modifier == "fail" and text.startswith("expected_fail_regexp"):
                pattern = text.removeprefix("expected_fail_regexp").strip()
                expects = [e for e in expects if e.kind != "fail"] + [Expect("fail", None, pattern)]
                break
            if text.startswith("expect range vector"):
                match = _RANGE_VECTOR_RE.match(text)
                if match is None:
                    raise self.error(index, f"invalid range vector definition {text!r}")
                range_vector = RangeVector(
                    self.duration(index, match.group(1), "range vector start"),
                    self.duration(index, match.group(2), "range vector end"),
                    self.duration(index, match.group(3), "range vector step"),
                )
                continue
            if text.startswith("expect string"):
                try:
                    string = go_unquote(text.removeprefix("expect string").strip())
                except ValueError as exc:
                    raise self.error(index, f"expected a quoted string literal: {exc}") from exc
                continue
            if text.split(" ")[0] == "expect":
                expects.append(self.expect(index, expects))
                continue
            try:
                scalar = parse_number(text)
            except ValueError:
                pass
            else:
                break
            position += 1
            expected = self.series(index)
            if len(expected.points) > 1 and instant is not None and range_vector is None:
                raise self.error(
                    index,
                    "an instant eval expects one value per series "
                    "(use 'expect range vector' for a matrix)",
                )
            series.append(expected)
        if range_vector is not None and instant is not None:
            start, end, step = range_vector.start_ms, range_vector.end_ms, range_vector.step_ms
        command = Eval(
            line=i + 1,
            expr=expr,
            instant=instant is not None,
            start_ms=start,
            end_ms=end,
            step_ms=step,
            expects=tuple(expects),
            scalar=scalar,
            string=string,
            range_vector=range_vector,
            series=tuple(series),
        )
        return last, command

    def expect(self, index: int, so_far: list[Expect]) -> Expect:
        match = _EXPECT_RE.match(self.lines[index])
        if match is None:
            raise self.error(
                index, "invalid expect line, expected 'expect <type> [msg|regex: <text>]'"
            )
        kind, how, text = match.group(1), match.group(2), match.group(3)
        result = Expect(kind)
        if how == "msg":
            result = Expect(kind, message=text.strip())
        elif how == "regex":
            try:
                re.compile(text.strip())
            except re.error as exc:
                raise self.error(index, f"invalid regex for expect {kind}: {exc}") from exc
            result = Expect(kind, regex=text.strip())
        kinds = {e.kind for e in so_far} | {kind}
        if {"info", "no_info"} <= kinds or {"warn", "no_warn"} <= kinds:
            raise self.error(index, f"expect {kind} contradicts an earlier expect line")
        if kind == "fail" and any(e.kind == "fail" for e in so_far):
            raise self.error(index, "at most one 'expect fail' line per eval")
        return result


def parse_script(text: str, path: str = "<script>") -> list[Command]:
    """Returns: the commands of a ``.test`` script. Raises ScriptError naming ``path:line``."""
    return _Reader(text, path).read()


@dataclass
class Storage:
    """What the loads so far put in storage: float samples per series, and the series that
    hold native histograms (not loaded; selecting one is unsupported)."""

    samples: dict[Labels, dict[int, float]] = field(default_factory=dict)
    histogram_series: set[Labels] = field(default_factory=set)

    def clear(self) -> None:
        self.samples.clear()
        self.histogram_series.clear()

    def load(self, command: Load) -> None:
        """Adds a load's samples: point *i* at ``i * interval``; ``_`` adds nothing."""
        for line in command.series:
            if line.has_histogram:
                self.histogram_series.add(line.labels)
            target = self.samples.setdefault(line.labels, {})
            for i, point in enumerate(line.points):
                if isinstance(point, float):
                    target[i * command.interval_ms] = point
        if command.with_nhcb:
            self.histogram_series.update(nhcb_series(command))


_NHCB_SUFFIXES = ("_bucket", "_count", "_sum")


def nhcb_series(command: Load) -> set[Labels]:
    """Returns: label sets of the native histograms ``load_with_nhcb`` makes from classic
    ``_bucket``/``_count``/``_sum`` series (the name without the suffix, no ``le``)."""
    result: set[Labels] = set()
    for line in command.series:
        pairs = dict(line.labels)
        name = pairs.get("__name__", "")
        for suffix in _NHCB_SUFFIXES:
            if name.endswith(suffix) and (suffix != "_bucket" or "le" in pairs):
                pairs["__name__"] = name.removesuffix(suffix)
                pairs.pop("le", None)
                result.add(tuple(sorted(pairs.items())))
                break
    return result

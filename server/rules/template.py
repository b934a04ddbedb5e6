"""Rule templates: the subset of Go's text/template that labels and annotations use.

``parse(text)`` checks a template once, when the rule file loads; ``Template.expand(data)``
renders it for one alert. Supported, with Prometheus' meaning and output:

- text and ``{{ ... }}`` actions, the trim markers ``{{-`` / ``-}}``, comments ``{{/* */}}``;
- ``$labels``, ``$value``, ``$externalLabels``, ``$externalURL``, ``$`` and ``.``, field access
  (``$labels.instance``, ``.Labels.job``, ``.Value``; a missing label is ``""``);
- string, raw-string, number and boolean literals, pipelines ``a | f b``, parentheses;
- ``if`` / ``else if`` / ``else`` / ``end`` with ``eq ne lt le gt ge and or not``;
- the functions ``humanize humanize1024 humanizeDuration humanizePercentage humanizeTimestamp
  printf toUpper toLower title reReplaceAll match stripPort``.

Anything else (``range``, ``with``, ``define``, new variables, ``query`` and the other
Prometheus functions that read data) is a ``TemplateError`` at load time, never a silent
difference. Expansion errors render as Prometheus renders them: ``<error expanding template:
...>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from server.rules import functions
from server.rules.errors import TemplateError
from server.rules.gofmt import format_value

Value = object
"""A template value: str, int, float, bool, a str->str mapping, or the root data."""


@dataclass(frozen=True)
class Data:
    """What a rule template sees (Prometheus' ``AlertTemplateData``)."""

    labels: Mapping[str, str]
    value: float
    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""


# --- syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: Value


@dataclass(frozen=True)
class Variable:
    name: str  # "" for "$"
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Field:
    fields: tuple[str, ...]  # () for "."


@dataclass(frozen=True)
class Function:
    name: str


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[tuple[Operand, ...], ...]


Operand = Literal | Variable | Field | Function | Pipeline


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Output:
    pipeline: Pipeline


@dataclass(frozen=True)
class If:
    condition: Pipeline
    then: tuple[Node, ...]
    otherwise: tuple[Node, ...]


Node = Text | Output | If

FUNCTIONS: dict[str, Callable[..., Value]] = {
    "humanize": functions.humanize,
    "humanize1024": functions.humanize1024,
    "humanizeDuration": functions.humanize_duration,
    "humanizePercentage": functions.humanize_percentage,
    "humanizeTimestamp": functions.humanize_timestamp,
    "printf": functions.printf,
    "toUpper": functions.to_upper,
    "toLower": functions.to_lower,
    "title": functions.title,
    "reReplaceAll": functions.re_replace_all,
    "match": functions.match,
    "stripPort": functions.strip_port,
    "eq": functions.eq,
    "ne": functions.ne,
    "lt": functions.lt,
    "le": functions.le,
    "gt": functions.gt,
    "ge": functions.ge,
    "not": functions.not_,
    "and": functions.and_,
    "or": functions.or_,
}
# Prometheus (and Go) define these, dcmon does not: they read data or build HTML and links.
UNSUPPORTED = frozenset(
    [
        "query",
        "first",
        "label",
        "value",
        "strvalue",
        "sortByLabel",
        "args",
        "safeHtml",
        "graphLink",
        "tableLink",
        "stripDomain",
        "toTime",
        "pathPrefix",
        "externalURL",
        "parseDuration",
        "urlquery",
        "html",
        "js",
        "print",
        "println",
        "len",
        "index",
        "slice",
        "call",
    ]
)
VARIABLES = frozenset({"labels", "value", "externalLabels", "externalURL", ""})

# --- lexing ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<number>[+-]?(?:0[xX][0-9a-fA-F]+
                      |[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?
                      |\.[0-9]+(?:[eE][+-]?[0-9]+)?))
    | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[|()])
    | (?P<other>\S)
    )""",
    re.VERBOSE,
)
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_GO_ESCAPES |= {"\\": "\\", '"': '"', "'": "'"}


def _unquote(text: str) -> str:
    out: list[str] = []
    i = 1
    while i < len(text) - 1:
        char = text[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = text[i + 1]
        if code in _GO_ESCAPES:
            out.append(_GO_ESCAPES[code])
            i += 2
        elif code in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[code]
            out.append(chr(int(text[i + 2 : i + 2 + size], 16)))
            i += 2 + size
        else:
            raise TemplateError(f"unknown escape sequence \\{code} in {text}")
    return "".join(out)


def _number(text: str) -> Value:
    if re.fullmatch(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)", text):
        return int(text, 0) if not re.fullmatch(r"[+-]?0[0-9]+", text) else int(text, 8)
    return float(text)


def _tokens(action: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(action):
        if action[pos:].strip() == "":
            break
        match = _TOKEN.match(action, pos)
        assert match is not None  # "other" matches any non-space character
        kind = match.lastgroup or "other"
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _split(text: str) -> list[tuple[bool, str]]:
    """Returns: (is_action, content) pieces, trim markers applied, comments dropped."""
    pieces: list[tuple[bool, str]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            pieces.append((False, text[pos:]))
            return pieces
        literal = text[pos:start]
        inner_start = start + 2
        if text.startswith("- ", inner_start) or text.startswith("-\t", inner_start):
            literal = literal.rstrip(" \t\r\n")
            inner_start += 1
        pieces.append((False, literal))
        if text.startswith("/*", inner_start) or text.startswith(" /*", inner_start):
            close = text.find("*/", inner_start)
            end = text.find("}}", close + 2) if close >= 0 else -1
            if end < 0:
                raise TemplateError("unclosed comment")
            trim = text[close + 2 : end].strip() == "-"
            pos = end + 2
            if trim:
                pos = len(text) - len(text[pos:].lstrip(" \t\r\n"))
            continue
        end = _action_end(text, inner_start)
        inner = text[inner_start:end]
        pos = end + 2
        if inner.endswith(" -") or inner.endswith("\t-"):
            inner = inner[:-1]
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
        pieces.append((True, inner))


def _action_end(text: str, pos: int) -> int:
    """Returns: where the action starting at ``pos`` closes, skipping ``}}`` inside strings."""
    i = pos
    while i < len(text):
        char = text[i]
        if char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif char == "`":
            i = text.find("`", i + 1)
            if i < 0:
                break
        elif text.startswith("}}", i):
            return i
        i += 1
    raise TemplateError("unclosed action")


# --- parsing -----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def pipeline(self, closing: str | None = None) -> Pipeline:
        commands: list[tuple[Operand, ...]] = []
        while True:
            command: list[Operand] = []
            while (token := self.peek()) is not None and token[1] not in ("|", ")"):
                command.append(self.operand())
            if not command:
                raise TemplateError("missing value for command")
            commands.append(tuple(command))
            token = self.peek()
            if token is None or token[1] == ")":
                break
            self.pos += 1  # "|"
        if closing is None and self.peek() is not None:
            raise TemplateError(f"unexpected {self.peek()[1]!r} in command")  # type: ignore[index]
        return Pipeline(tuple(commands))

    def operand(self) -> Operand:  # noqa: PLR0911 - one branch per token kind
        kind, text = self.tokens[self.pos]
        self.pos += 1
        if kind == "string":
            return Literal(_unquote(text))
        if kind == "raw":
            return Literal(text[1:-1])
        if kind == "number":
            return Literal(_number(text))
        if kind == "variable":
            name, *fields = text[1:].split(".")
            if name not in VARIABLES:
                raise TemplateError(f'undefined variable "${name}"')
            return Variable(name, tuple(fields))
        if kind == "field":
            return Field(tuple(text.split(".")[1:]) if text != "." else ())
        if kind == "ident":
            if text in ("true", "false"):
                return Literal(text == "true")
            if text in FUNCTIONS:
                return Function(text)
            if text in UNSUPPORTED:
                raise TemplateError(f'template function "{text}" is not supported by dcmon')
            raise TemplateError(f'function "{text}" not defined')
        if text == "(":
            inner = self.pipeline(closing=")")
            if self.peek() != ("punct", ")"):
                raise TemplateError("unclosed left paren")
            self.pos += 1
            return inner
        raise TemplateError(f"unexpected {text!r} in operand")


_KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block"})
_KEYWORDS |= {"break", "continue", "nil"}


def _nodes(pieces: list[tuple[bool, str]], pos: int, top: bool) -> tuple[list[Node], int, str]:
    """Returns: nodes up to an ``else``/``end`` (or the end), the next position, the stopper."""
    nodes: list[Node] = []
    while pos < len(pieces):
        is_action, content = pieces[pos]
        pos += 1
        if not is_action:
            if content:
                nodes.append(Text(content))
            continue
        tokens = _tokens(content)
        if not tokens:
            raise TemplateError("missing value for command")
        head = tokens[0][1] if tokens[0][0] == "ident" else ""
        if any(kind == "other" and text in (":", "=") for kind, text in tokens):
            raise TemplateError("declaring or assigning variables is not supported by dcmon")
        if head == "if":
            nodes.append(_if(pieces, tokens[1:], pos_holder := [pos]))
            pos = pos_holder[0]
        elif head in ("else", "end"):
            if top:
                raise TemplateError(f"unexpected {{{{{head}}}}}")
            return nodes, pos - 1, head
        elif head in _KEYWORDS:
            raise TemplateError(f"template action {head!r} is not supported by dcmon")
        else:
            nodes.append(Output(_Parser(tokens).pipeline()))
    if not top:
        raise TemplateError("unexpected EOF: missing {{end}}")
    return nodes, pos, ""


def _if(pieces: list[tuple[bool, str]], condition: list[tuple[str, str]], at: list[int]) -> If:
    if not condition:
        raise TemplateError("missing value for if")
    pipeline = _Parser(condition).pipeline()
    then, pos, stopper = _nodes(pieces, at[0], top=False)
    otherwise: list[Node] = []
    tokens = _tokens(pieces[pos][1])
    pos += 1
    if stopper == "else":
        rest = tokens[1:]
        if rest and rest[0] == ("ident", "if"):  # else if: a nested if sharing our {{end}}
            holder = [pos]
            otherwise = [_if(pieces, rest[1:], holder)]
            pos = holder[0]
        else:
            if rest:
                raise TemplateError("unexpected tokens after else")
            otherwise, pos, stopper = _nodes(pieces, pos, top=False)
            if stopper != "end":
                raise TemplateError("expected {{end}} after {{else}}")
            pos += 1
    at[0] = pos
    return If(pipeline, tuple(then), tuple(otherwise))


@dataclass(frozen=True)
class Template:
    """A parsed template; ``expand`` renders it."""

    text: str
    nodes: tuple[Node, ...]

    def expand(self, data: Data) -> str:
        """Returns: the rendered text, or Prometheus' ``<error expanding template: ...>``."""
        try:
            return "".join(_render(self.nodes, data))
        except TemplateError as exc:
            return f"<error expanding template: {exc.message}>"


def parse(text: str) -> Template:
    """Returns: ``text`` parsed. Raises: TemplateError outside the supported subset."""
    nodes, _, _ = _nodes(_split(text), 0, top=True)
    return Template(text, tuple(nodes))


# --- evaluation --------------------------------------------------------------------------------


def _render(nodes: Sequence[Node], data: Data) -> list[str]:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.text)
        elif isinstance(node, Output):
            out.append(format_value(_pipeline(node.pipeline, data)))
        else:
            branch = (
                node.then if functions.truth(_pipeline(node.condition, data)) else node.otherwise
            )
            out.extend(_render(branch, data))
    return out


def _root(data: Data) -> dict[str, Value]:
    return {
        "Labels": data.labels,
        "Value": data.value,
        "ExternalLabels": data.external_labels,
        "ExternalURL": data.external_url,
    }


def _fields(value: Value, names: Sequence[str]) -> Value:
    for name in names:
        if not isinstance(value, Mapping):
            raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
        value = value.get(name, "")
    return value


def _operand(operand: Operand, data: Data) -> Value:
    if isinstance(operand, Literal):
        return operand.value
    if isinstance(operand, Variable):
        base: Value = {
            "labels": data.labels,
            "value": data.value,
            "externalLabels": data.external_labels,
            "externalURL": data.external_url,
            "": _root(data),
        }[operand.name]
        return _fields(base, operand.fields)
    if isinstance(operand, Field):
        return _fields(_root(data), operand.fields)
    if isinstance(operand, Pipeline):
        return _pipeline(operand, data)
    raise TemplateError(f"{operand.name} is a function, not a value")


def _pipeline(pipeline: Pipeline, data: Data) -> Value:
    result: Value = None
    for index, command in enumerate(pipeline.commands):
        head, *rest = command
        args = [_operand(arg, data) for arg in rest]
        if index > 0:
            args.append(result)
        if isinstance(head, Function):
            result = functions.call(head.name, FUNCTIONS[head.name], args)
        elif args:
            raise TemplateError("can't give argument to non-function")
        else:
            result = _operand(head, data)
    return result

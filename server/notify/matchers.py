"""Label matchers as Alertmanager writes them (``severity="critical"``, ``instance=~"gpu.*"``).

Pure. ``parse_matcher`` reads one matcher, ``parse_matchers`` a list or a braced set
(``{a="b",c!~"d.*"}``); regular expressions are anchored (``^(?:re)$``), as Alertmanager's are.
A missing label matches as the empty string, so ``team!="ops"`` matches an alert without
``team``. Errors are ``MatcherError`` with the offending text.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from server.notify.model import Labels


class MatcherError(ValueError):
    """A matcher that does not parse or whose regular expression is invalid."""


class Op(enum.Enum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: Op, value: str) -> Matcher:
        regex = None
        if op in (Op.RE, Op.NRE):
            try:
                regex = re.compile(f"^(?:{value})$", re.DOTALL)
            except re.error as exc:
                raise MatcherError(f"{name}{op.value}{value!r}: invalid regex: {exc}") from None
        return cls(name, op, value, regex)

    def matches(self, labels: Labels) -> bool:
        actual = dict(labels).get(self.name, "")
        if self.op is Op.EQ:
            return actual == self.value
        if self.op is Op.NE:
            return actual != self.value
        assert self._regex is not None
        found = self._regex.match(actual) is not None
        return found if self.op is Op.RE else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op.value}{json.dumps(self.value)}"


def parse_matcher(text: str) -> Matcher:
    """Returns: the matcher ``text`` spells; the value may be quoted (JSON string rules)."""
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(f"bad matcher {text!r}: expected name, one of = != =~ !~, value")
    name, op, raw = found.groups()
    value = raw
    if raw.startswith('"'):
        try:
            decoded = json.loads(raw)
        except json.JSONDecodeError:
            raise MatcherError(
                f"bad matcher {text!r}: unterminated or invalid quoted value"
            ) from None
        if not isinstance(decoded, str):
            raise MatcherError(f"bad matcher {text!r}: the value must be a string")
        value = decoded
    return Matcher.make(name, Op(op), value)


def parse_matchers(items: str | Iterable[str]) -> tuple[Matcher, ...]:
    """Returns: the matchers of a list of strings, or of one ``{a="b", c=~"d"}`` set."""
    if isinstance(items, str):
        text = items.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1]
        return tuple(parse_matcher(part) for part in _split(text) if part.strip())
    return tuple(parse_matcher(item) for item in items)


def matches_all(matchers: Sequence[Matcher], labels: Labels) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)


def format_matchers(matchers: Sequence[Matcher]) -> str:
    """Returns: ``{a="b",c=~"d"}``, as Alertmanager prints a route's matchers."""
    return "{" + ",".join(str(matcher) for matcher in matchers) + "}"


def _split(text: str) -> list[str]:
    """Split on commas outside quoted values."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts

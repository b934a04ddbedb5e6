"""Label matchers with Prometheus semantics: ``name=value``, ``!=``, ``=~`` and ``!~``.

Stage: api -> storage. Input: matcher text from a query; output: ``Matcher`` objects that
select series by their labels. A missing label matches as the empty string, and regular
expressions match the whole value (anchored at both ends), as in Prometheus. Regular expressions
use Python's ``re`` syntax, a superset of most RE2 patterns written against Prometheus; their
length is capped because ``re`` backtracks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from agent.wire.schema import LABEL_NAME_RE

Op: TypeAlias = Literal["=", "!=", "=~", "!~"]

MAX_REGEX_LENGTH: Final = 1024
# Where an operator starts: its first character. Label names never contain "=" or "!".
_OPERATOR_START: Final = re.compile(r"=|![=~]")


class MatcherError(ValueError):
    """A matcher that cannot be parsed or built; the message names the matcher and the problem."""


@dataclass(frozen=True)
class Matcher:
    """One condition on one label; regexes are compiled once, when the matcher is built.

    Raises:
        MatcherError: for a bad label name, an unknown operator, or a regex that is too long
            or does not compile.
    """

    name: str
    op: Op
    value: str
    pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not LABEL_NAME_RE.fullmatch(self.name):
            raise MatcherError(f"{self}: label name must match {LABEL_NAME_RE.pattern}")
        if self.op not in ("=", "!=", "=~", "!~"):
            raise MatcherError(f"{self}: unknown operator {self.op!r}")
        pattern = None
        if self.op in ("=~", "!~"):
            if len(self.value) > MAX_REGEX_LENGTH:
                raise MatcherError(
                    f"{self.name}{self.op}: regular expression longer than "
                    f"{MAX_REGEX_LENGTH} characters"
                )
            try:
                pattern = re.compile(self.value)
            except re.error as exc:
                raise MatcherError(f"{self}: invalid regular expression: {exc}") from exc
        object.__setattr__(self, "pattern", pattern)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value!r}"

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set satisfies this matcher; a missing label counts as ""."""
        actual = labels.get(self.name, "")
        match self.op:
            case "=":
                return actual == self.value
            case "!=":
                return actual != self.value
            case "=~":
                return self._full_match(actual)
            case "!~":
                return not self._full_match(actual)

    def _full_match(self, actual: str) -> bool:
        assert self.pattern is not None  # compiled in __post_init__ for the regex operators
        return self.pattern.fullmatch(actual) is not None


def parse_matcher(text: str) -> Matcher:
    """A matcher from ``label=value``, ``label!=value``, ``label=~regex`` or ``label!~regex``.

    The text splits at the first operator, so the value may contain "=" or "~" and may be
    empty; only an equality value cannot start with "~" (``a=~b`` is a regex matcher). Nothing
    is trimmed: spaces belong to the name (and make it invalid) or to the value.

    Raises:
        MatcherError: when there is no operator, the name is invalid, or the regex is rejected.
    """
    found = _OPERATOR_START.search(text)
    if found is None:
        raise MatcherError(f"{text!r}: expected label=value, !=, =~ or !~")
    name, at = text[: found.start()], found.start()
    op: Op
    if text.startswith("=~", at):
        op = "=~"
    elif text.startswith("!~", at):
        op = "!~"
    elif text.startswith("!=", at):
        op = "!="
    else:
        op = "="
    return Matcher(name, op, text[at + len(op) :])


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether the label set satisfies every matcher (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)

"""Errors of the rules core.

RulesError              base
├── RuleFileError       a rule file does not load: YAML, unknown keys, bad values; each
│                       problem names file, group, rule and field (``problems``)
├── TemplateError       a label or annotation template does not parse or expand
└── TestFileError       a ``promtool test rules`` file does not load
"""

from __future__ import annotations


class RulesError(Exception):
    """Base of every error the rules core raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RuleFileError(RulesError):
    """A rule file is invalid; ``problems`` lists every problem found, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class TemplateError(RulesError):
    """A template uses syntax or functions outside the supported subset, or fails to expand."""


class TestFileError(RulesError):
    """A rule unit-test file is invalid."""

    __test__ = False  # not a pytest test class

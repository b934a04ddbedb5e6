"""Errors of the PromQL core, each carrying the Prometheus API error kind it maps to.

    PromQLError            base; ``kind`` is Prometheus' errorType ("bad_data", "execution", ...)
    ├── ParseError         the text is not PromQL, or is ill-typed PromQL ("bad_data")
    ├── UnsupportedError   valid PromQL this engine does not evaluate: native histograms,
    │                      feature-flagged experiments ("bad_data"); never a wrong answer instead
    └── EvalError          evaluation failed: matching errors, duplicate label sets, bad
                           function arguments ("execution")

The HTTP layer maps ``kind`` to a status code once; the core never imports it.
"""

from __future__ import annotations


class PromQLError(Exception):
    """Base of every error the PromQL core raises."""

    kind: str = "execution"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ParseError(PromQLError):
    """The query does not parse, or its types do not check."""

    kind = "bad_data"


class UnsupportedError(PromQLError):
    """Valid PromQL that this engine refuses rather than answering wrongly."""

    kind = "bad_data"


class EvalError(PromQLError):
    """The query parsed but its evaluation failed, as it would in Prometheus."""

    kind = "execution"

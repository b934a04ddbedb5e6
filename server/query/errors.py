"""The query API's errors, each named by Prometheus' ``errorType``.

    QueryError        ``error_type`` is one of ERROR_TYPES; the message is Prometheus' or names
                      the parameter or limit at fault

Engine errors (``server.promql.errors.PromQLError``) carry the same kinds and are mapped with
these, once, in ``envelope.error_body``.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

ErrorType: TypeAlias = Literal[
    "bad_data", "execution", "timeout", "canceled", "internal", "not_found", "method_not_allowed"
]

# Prometheus' status code for each errorType (web/api/v1/api.go: returnAPIError).
STATUS: Final[dict[str, int]] = {
    "bad_data": 400,
    "execution": 422,
    "timeout": 503,
    "canceled": 503,
    "internal": 500,
    "not_found": 404,
    # Not one of Prometheus' types: its router answers a wrong method with a bare 405.
    "method_not_allowed": 405,
}


class QueryError(Exception):
    """A query request the API refuses or could not answer."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type: ErrorType = error_type
        self.message = message


def bad_param(name: str, problem: str) -> QueryError:
    """Returns: Prometheus' error for a bad parameter: ``invalid parameter "name": problem``."""
    return QueryError("bad_data", f'invalid parameter "{name}": {problem}')

"""Transports: deliver encoded batches to the server and return its acknowledgements."""

from agent.transport.base import (
    BulkResult,
    BulkUnsupportedError,
    RejectedError,
    RetryableError,
    Transport,
    TransportError,
)
from agent.transport.memory import MemoryTransport

__all__ = [
    "BulkResult",
    "BulkUnsupportedError",
    "MemoryTransport",
    "RejectedError",
    "RetryableError",
    "Transport",
    "TransportError",
]

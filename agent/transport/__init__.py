"""Transports: deliver one encoded batch to the server and return its acknowledgement."""

from agent.transport.base import RejectedError, RetryableError, Transport, TransportError
from agent.transport.memory import MemoryTransport

__all__ = ["MemoryTransport", "RejectedError", "RetryableError", "Transport", "TransportError"]

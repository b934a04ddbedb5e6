"""Encoding and decoding of batches on the wire: JSON, gzip-compressed.

Input: a ``Batch`` (agent side) or a request body plus its Content-Encoding (server side).
Output: bytes to POST, or a validated ``Batch``. Every decoding failure is a ``WireError`` with a
stable machine code and a message that names the problem, so the server can answer 4xx with the
reason and an operator can read it in the agent's log.

Decompression is bounded: a body that inflates past ``max_decompressed_bytes`` is refused while
it is being inflated, so a compression bomb costs the server at most that much memory.

Strings holding a NUL character are refused (PostgreSQL cannot store them). JSON can carry one
only as the escape ``\u0000``, so a scan of the raw bytes clears nearly every batch at once,
and only a batch with that escape is looked at closely.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Discriminator, Tag, TypeAdapter, ValidationError
from pydantic_core import to_json

from agent.wire.schema import COMPACT_SCHEMA_VERSION, SCHEMA_VERSION, Batch, CompactBatch

CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "gzip"
_GZIP_LEVEL = 3  # ~3x cheaper than 5 for ~20 % more bytes: agents run on busy GPU nodes
_MAX_PROBLEMS = 20
SCHEMA_VERSIONS = (SCHEMA_VERSION, COMPACT_SCHEMA_VERSION)


def _form(document: Any) -> str:
    compact = isinstance(document, dict) and document.get("schema_version") == 2
    return "compact" if compact else "full"


_EITHER_FORM: TypeAdapter[Batch] = TypeAdapter(
    Annotated[
        Annotated[Batch, Tag("full")] | Annotated[CompactBatch, Tag("compact")],
        Discriminator(_form),
    ]
)


@dataclass(frozen=True)
class Problem:
    """One reason a batch was refused: where in the document, and what is wrong."""

    location: str
    message: str


class WireError(Exception):
    """A body that is not a valid batch.

    ``code`` is one of: ``unsupported_encoding``, ``body_too_large``, ``bad_compression``,
    ``malformed_json``, ``unsupported_schema_version``, ``invalid_batch``.
    """

    def __init__(self, code: str, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = problems


def encode_batch(batch: Batch) -> bytes:
    """Returns: the batch as gzip-compressed JSON, ready to POST."""
    return gzip.compress(batch.model_dump_json().encode(), compresslevel=_GZIP_LEVEL, mtime=0)


def encode_document(document: Mapping[str, Any]) -> bytes:
    """Returns: a batch given as its plain document (what ``Batch.model_dump(mode="json")``
    gives) as gzip-compressed JSON, byte for byte what ``encode_batch`` makes of that batch.

    The agent's every tick takes this path (``agent.batch.TickBatch``): the same serializer
    as the model's, without building a model per metric family first. Samples go as
    ``[labels, value]`` lists, which it writes twice as fast as tuples.
    """
    return gzip.compress(to_json(document), compresslevel=_GZIP_LEVEL, mtime=0)


def decode_batch(body: bytes, content_encoding: str | None, max_decompressed_bytes: int) -> Batch:
    """Decode and validate a request body.

    Raises:
        WireError: the body cannot be decoded or does not match the schema.
    """
    return validate_batch(inflate(body, content_encoding, max_decompressed_bytes))


def validate_batch(raw: bytes) -> Batch:
    """Validate an inflated body against the schema: the reference decoder, whose errors are
    the wire contract's (``server/ingest/fast_decode.py`` falls back to it for every body it
    does not take). A body with ``schema_version`` 2 is a ``CompactBatch``.

    Raises:
        WireError: the body is not JSON or does not match the schema.
    """
    try:
        batch = _EITHER_FORM.validate_json(raw)
    except ValidationError as exc:
        raise _explain(raw, exc) from None
    if NUL_ESCAPE in raw:
        location = _nul_location(json.loads(raw))
        if location is not None:
            raise WireError(
                "invalid_batch",
                f"batch does not match the schema: {location}: a string holds a NUL character",
                (Problem(location, "a string holds a NUL character (\\u0000)"),),
            )
    return batch


def inflate(body: bytes, content_encoding: str | None, max_decompressed_bytes: int) -> bytes:
    """Undo the Content-Encoding, refusing to inflate past ``max_decompressed_bytes``."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        if len(body) > max_decompressed_bytes:
            raise WireError(
                "body_too_large", f"body of {len(body)} bytes exceeds {max_decompressed_bytes}"
            )
        return body
    if encoding != "gzip":
        raise WireError(
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported; use gzip or identity",
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(body, max_decompressed_bytes + 1)
    except zlib.error as exc:
        raise WireError("bad_compression", f"body is not valid gzip: {exc}") from None
    if len(raw) > max_decompressed_bytes or inflater.unconsumed_tail:
        raise WireError(
            "body_too_large", f"body inflates past the limit of {max_decompressed_bytes} bytes"
        )
    if not inflater.eof:
        raise WireError("bad_compression", "gzip stream is truncated")
    if inflater.unused_data:
        raise WireError("bad_compression", "trailing bytes after the gzip stream")
    return raw


NUL_ESCAPE = b"\\u0000"


def _nul_location(node: Any, path: str = "") -> str | None:
    """Returns: the location of the first key or string holding a NUL character, if any."""
    if isinstance(node, str):
        return (path or "(body)") if "\x00" in node else None
    children: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return child
            children.append((child, value))
    elif isinstance(node, list):
        children = [(f"{path}.{index}" if path else str(index), v) for index, v in enumerate(node)]
    for child, value in children:
        found = _nul_location(value, child)
        if found is not None:
            return found
    return None


def _location(loc: tuple[int | str, ...]) -> str:
    """Returns: a problem's location in the document, without the union's tag."""
    parts = list(loc[1:] if loc and loc[0] in ("full", "compact") else loc)
    return ".".join(str(part) for part in parts) or "(body)"


def _explain(raw: bytes, exc: ValidationError) -> WireError:
    """Turn a validation failure into the most specific error we can name."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as parse_error:
        return WireError("malformed_json", f"body is not valid JSON: {parse_error}")
    if not isinstance(document, dict):
        return WireError("invalid_batch", "body must be a JSON object")
    version = document.get("schema_version", SCHEMA_VERSION)
    if version not in SCHEMA_VERSIONS or type(version) is not int:
        return WireError(
            "unsupported_schema_version",
            f"schema_version {version!r} is not supported; this server speaks "
            f"{' and '.join(map(str, SCHEMA_VERSIONS))}",
        )
    problems = tuple(
        Problem(_location(error["loc"]), error["msg"])
        for error in exc.errors(include_url=False)[:_MAX_PROBLEMS]
    )
    summary = "; ".join(f"{p.location}: {p.message}" for p in problems[:3])
    more = exc.error_count() - min(3, len(problems))
    if more > 0:
        summary += f" (and {more} more)"
    return WireError("invalid_batch", f"batch does not match the schema: {summary}", problems)

"""Small files in the agent's state directory, written atomically (temp file, fsync, rename)."""

from __future__ import annotations

import os
from pathlib import Path


class StateError(OSError):
    """The state directory or one of its files cannot be used."""


def write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` so that a crash leaves either the old or the new content.

    Args:
        mode: permissions of the new file (e.g. 0o600 for a secret), set before any byte is
            written; None: the default for new files.

    Raises:
        StateError: the file cannot be written.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from None


def ensure_directory(path: Path) -> None:
    """Create the state directory (mode 0700) if needed.

    Raises:
        StateError: it cannot be created or is not writable.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create state directory {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateError(f"state directory {path} is not writable by this user")


def read_text(path: Path) -> str | None:
    """Returns: the file's stripped content, or None if it does not exist."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None

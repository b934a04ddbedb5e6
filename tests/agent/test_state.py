"""Node identity and batch numbers survive restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.identity import load_or_create_node_id, node_identity
from agent.sequence import Sequence
from agent.statefile import StateError, ensure_directory


def test_node_id_is_created_once_and_kept(tmp_path: Path) -> None:
    first = load_or_create_node_id(tmp_path)
    assert len(first) == 32
    assert load_or_create_node_id(tmp_path) == first
    assert (tmp_path / "node-id").read_text().strip() == first


def test_invalid_node_id_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "node-id").write_text("garbage\n")
    node_id = load_or_create_node_id(tmp_path)
    assert node_id != "garbage"
    assert len(node_id) == 32


def test_identity_defaults_name_to_hostname() -> None:
    identity = node_identity("a" * 32, None, {"rack": "r1"}, hostname="gpu07")
    assert (identity.name, identity.hostname, identity.labels) == ("gpu07", "gpu07", {"rack": "r1"})
    assert node_identity("a" * 32, "alias", {}, hostname="gpu07").name == "alias"


def test_sequence_is_monotonic_across_restarts(tmp_path: Path) -> None:
    first = Sequence(tmp_path, block=3)
    numbers = [first.next() for _ in range(5)]
    assert numbers == [0, 1, 2, 3, 4]
    # A restart (crash included) continues above anything handed out, skipping the block rest.
    second = Sequence(tmp_path, block=3)
    later = [second.next() for _ in range(3)]
    assert later[0] > numbers[-1]
    assert later == sorted(later)
    assert len(set(numbers + later)) == 8


def test_sequence_writes_only_once_per_block(tmp_path: Path) -> None:
    sequence = Sequence(tmp_path, block=100)
    sequence.next()
    stat = (tmp_path / "seq").stat()
    for _ in range(50):
        sequence.next()
    assert (tmp_path / "seq").stat().st_mtime_ns == stat.st_mtime_ns


def test_corrupt_sequence_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "seq").write_text("twelve")
    with pytest.raises(StateError, match="does not hold a number"):
        Sequence(tmp_path)


def test_unwritable_state_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot create state directory"):
        ensure_directory(blocker / "state")

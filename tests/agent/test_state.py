"""Node identity and batch numbers survive restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

import agent.sequence
from agent.identity import load_or_create_node_id, node_identity
from agent.sequence import Sequence
from agent.statefile import StateError, ensure_directory, write_atomically


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


class FullDisk:
    """Stands in for ``write_atomically``: writes for real until ``full`` is set."""

    def __init__(self) -> None:
        self.full = False

    def __call__(self, path: Path, text: str, mode: int | None = None) -> None:
        if self.full:
            raise StateError(f"cannot write {path}: No space left on device")
        write_atomically(path, text, mode)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    fake = FullDisk()
    monkeypatch.setattr(agent.sequence, "write_atomically", fake)
    return fake


def test_a_full_disk_never_makes_a_restart_reuse_a_number(
    tmp_path: Path, disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    first = Sequence(tmp_path, block=4)
    numbers = [first.next() for _ in range(2)]
    disk.full = True
    numbers += [first.next() for _ in range(10)]  # past the reserved block: never raises
    assert numbers == sorted(set(numbers)), "not strictly increasing"
    # A restart while the disk is still full, then one after it has room again.
    second = Sequence(tmp_path, block=4)
    numbers += [second.next() for _ in range(10)]
    disk.full = False
    third = Sequence(tmp_path, block=4)
    numbers += [third.next() for _ in range(10)]
    assert len(set(numbers)) == len(numbers), "a number was handed out twice"
    assert first.write_errors >= 1 and second.write_errors >= 1 and third.write_errors == 0
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "seq" in r.getMessage()]
    assert len(warnings) == 2  # once per run, not once per batch


def test_a_reservation_is_persisted_before_any_number_of_it_is_used(
    tmp_path: Path, disk: FullDisk
) -> None:
    disk.full = True
    sequence = Sequence(tmp_path, block=4)
    fallback = sequence.next()
    assert fallback >= agent.sequence.FALLBACK_BASE  # none of 0..3 was persisted
    assert not (tmp_path / "seq").exists()
    disk.full = False
    after = [sequence.next() for _ in range(3)]
    assert after[0] > fallback and after == sorted(after)
    # Once the disk takes writes again, a restart continues above all of them.
    assert int((tmp_path / "seq").read_text()) > after[-1]
    assert Sequence(tmp_path, block=4).next() > after[-1]


def test_a_reservation_is_renewed_before_it_runs_out(tmp_path: Path, disk: FullDisk) -> None:
    sequence = Sequence(tmp_path, block=8)
    sequence.next()
    disk.full = True  # from now on every renewal fails
    numbers = [sequence.next() for _ in range(7)]
    assert numbers == list(range(1, 8))  # the reserved rest is still used, in order
    assert sequence.write_errors >= 1  # renewal was tried before the block ran out
    assert sequence.next() >= agent.sequence.FALLBACK_BASE

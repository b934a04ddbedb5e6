"""A compact batch's families as the latest cache keeps them: read through the layout on demand.

Stage: ingest -> latest. A compact batch (``schema.CompactBatch``) brings values only; its
families are the node's layout (names, label sets, where each family's values start) with these
values. Building the (labels, value) pairs of every sample at ingest would bring back the
per-sample work the compact form removes, so ``CompactFamilies`` keeps the layout's parts and
the values list as they are and pairs them up only for the family a reader asks for. The
layout's label sets are shared with every batch of the node (never copied), and the pairs a
reader gets are built fresh, so no reader can change what another sees.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

FamilySamples = Sequence[tuple[Mapping[str, str], float]]


class CompactFamilies(Mapping[str, FamilySamples]):
    """Family name -> its samples: the layout's families with the batch's values, then
    ``extra`` (the batch's own families, such as the collectors' status)."""

    __slots__ = ("_extra", "_labels", "_names", "_offsets", "_positions", "_values")

    def __init__(
        self,
        names: Sequence[str],
        labels: Sequence[Sequence[Mapping[str, str]]],
        offsets: Sequence[int],
        values: Sequence[float],
        extra: Mapping[str, FamilySamples],
    ) -> None:
        if len(offsets) != len(names) + 1 or offsets[-1] != len(values):
            raise ValueError(f"{len(values)} values for a layout of {offsets[-1]} samples")
        self._names = names
        self._labels = labels
        self._offsets = offsets
        self._values = values
        self._extra = {name: samples for name, samples in extra.items() if name not in names}
        self._positions: dict[str, int] | None = None

    def _position(self, name: str) -> int | None:
        if self._positions is None:
            self._positions = {family: index for index, family in enumerate(self._names)}
        return self._positions.get(name)

    def __getitem__(self, name: str) -> FamilySamples:
        index = self._position(name)
        if index is None:
            return self._extra[name]
        start, end = self._offsets[index], self._offsets[index + 1]
        return list(zip(self._labels[index], self._values[start:end], strict=True))

    def parts(self, name: str) -> tuple[Sequence[Mapping[str, str]], Sequence[float]] | None:
        """Returns: a layout family's label sets (the layout's own list, the same object for
        every batch while the layout stays) and its values, or None for another family."""
        index = self._position(name)
        if index is None:
            return None
        start, end = self._offsets[index], self._offsets[index + 1]
        return self._labels[index], self._values[start:end]

    def __iter__(self) -> Iterator[str]:
        yield from self._names
        yield from self._extra

    def __len__(self) -> int:
        return len(self._names) + len(self._extra)

    def __contains__(self, name: object) -> bool:
        return (isinstance(name, str) and self._position(name) is not None) or name in self._extra

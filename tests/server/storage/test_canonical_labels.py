"""The series key: ``canonical_labels`` must give, byte for byte, the text every stored series
row holds (``json.dumps`` with sorted keys, compact separators, non-ASCII kept). Any other text
for the same labels would make a second series beside the stored one."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from server.storage.series_index import IndexedSeries, canonical_labels

# Every code point a label may hold, surrogates aside (a JSON body cannot carry a lone one
# that decodes), with the ones JSON escapes or might: controls, quote, backslash, DEL, the
# line separators, astral characters.
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_SPECIAL = st.sampled_from(
    ["", "\x00", "\x1f", '"', "\\", "/", "\x7f", "\u2028", "\u2029", "é", "\U0001f600"]
)


def _reference(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(_TEXT | _SPECIAL, _TEXT | _SPECIAL, max_size=6))
def test_the_key_is_the_stored_text(labels: dict[str, str]) -> None:
    key = canonical_labels(labels)
    assert key == _reference(labels)
    assert IndexedSeries(1, 1, "m", key).labels() == labels


def test_keys_are_sorted_and_compact() -> None:
    assert canonical_labels({"b": "1", "a": "ü\n"}) == '{"a":"ü\\n","b":"1"}'
    assert canonical_labels({}) == "{}"

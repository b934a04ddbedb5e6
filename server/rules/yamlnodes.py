"""YAML in, with positions: a small reader over PyYAML's node tree.

Prometheus decodes rule and test files strictly (unknown keys and duplicate keys are errors) and
names lines in its messages; ``read`` gives plain values plus each mapping's key lines, so the
loaders can do the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from yaml.constructor import ConstructorError, SafeConstructor


@dataclass(frozen=True)
class Map:
    """A YAML mapping: values by key, and the line (1-based) of each key and of the mapping."""

    items: dict[str, object]
    lines: dict[str, int]
    line: int


def _convert(node: yaml.Node, constructor: SafeConstructor, problems: list[str]) -> object:
    if isinstance(node, yaml.MappingNode):
        items: dict[str, object] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            name = str(key)
            if name in items:
                problems.append(
                    f"{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}: "
                    f'mapping key "{name}" already defined at line {lines[name]}'
                )
                continue
            items[name] = _convert(value_node, constructor, problems)
            lines[name] = key_node.start_mark.line + 1
        return Map(items, lines, node.start_mark.line + 1)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, constructor, problems) for item in node.value]
    return constructor.construct_object(node, deep=True)


def read(text: str) -> tuple[object, list[str]]:
    """Returns: the document as ``Map``/list/scalars (None when empty), and duplicate-key
    problems. Raises: yaml.YAMLError on syntax errors."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None:
        return None, []
    problems: list[str] = []
    try:
        return _convert(node, SafeConstructor(), problems), problems
    except ConstructorError as exc:
        raise yaml.YAMLError(str(exc)) from exc

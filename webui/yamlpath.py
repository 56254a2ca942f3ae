"""Find the line of a config field ('firewall.rules[1].dst') in the YAML text, to show a message beside it.

Walks the YAML node tree (yaml.compose keeps source positions). A path that does not exist in the text
(a missing required field) resolves to the line of its nearest existing parent.
"""

from __future__ import annotations

import re

import yaml

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def line_of(text: str, path: str) -> int | None:
    """1-based line number, or None if the text is not YAML at all."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line + 1
    for key, index in _PART.findall(path or ""):
        child = None
        if key and isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if child is not None:
                key_node = next(k for k, v in node.value if v is child)
                line = key_node.start_mark.line + 1
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            child = node.value[int(index)]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            line = node.start_mark.line + 1
    return line


def replace_scalar(text: str, path: str, value: str) -> str | None:
    """The text with the plain scalar at `path` replaced by `value`, comments and layout untouched, so the
    diff a clinic reviews shows one changed line. None when the path is not a scalar in the text (the caller
    then rebuilds the document instead)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    for key in path.split("."):
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        if node is None:
            return None
    if not isinstance(node, yaml.ScalarNode) or node.style not in (None, ""):
        return None
    return text[: node.start_mark.index] + value + text[node.end_mark.index :]


def replace_section(text: str, key: str, block: str) -> str | None:
    """The text with the top-level section `key` replaced by `block` (YAML text starting with `key:`),
    every other line untouched; appended at the end when the section is missing. None when the text is
    not a YAML mapping (the caller then rebuilds the document)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value in node.value:
        if getattr(key_node, "value", None) == key:
            line_start = text.rfind("\n", 0, key_node.start_mark.index) + 1
            return text[:line_start] + block.rstrip("\n") + "\n" + text[value.end_mark.index :].lstrip(" ")
    return text.rstrip("\n") + "\n\n" + block

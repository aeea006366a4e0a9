"""Parse manifest text into a tree of positioned nodes, safely.

Both spellings go through here: YAML with PyYAML's safe composer (no tags beyond the core schema, no
duplicate keys — PyYAML silently keeps the last one —, capped size, depth and alias expansion) and
JSON, which is checked by the json module first and then composed for line:column positions.
Scalars keep their raw text so that `version: 1.10` stays "1.10" and is not read as the float 1.1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from bootstrapper.text import one_line

#: Manifests are small; anything bigger is a mistake or an attack.
MAX_BYTES = 4 * 1024 * 1024
#: Nodes visited while expanding aliases ("billion laughs" stops here).
MAX_NODES = 200_000
MAX_DEPTH = 64

_CORE = "tag:yaml.org,2002:"
#: libyaml's composer when PyYAML was built with it (4x faster); same nodes, same marks.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALAR_TAGS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}


class SourceError(Exception):
    """The text cannot be parsed at all; carries the position when known."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


@dataclass
class Node:
    """A parsed value with its position (1-based; 0 when unknown)."""

    value: Any
    line: int = 0
    col: int = 0
    #: For scalars: the text as written.
    raw: str | None = None
    #: For mappings: the key nodes, for positions of unknown or duplicate keys.
    keys: dict[str, Node] = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_seq(self) -> bool:
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        return not (self.is_map or self.is_seq)

    def plain(self) -> Any:
        """The value as plain Python data (for conversion and hashing)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


@dataclass
class Parsed:
    root: Node
    #: True when the text was JSON (InstallApplications' spelling, unless it says `format`).
    is_json: bool
    problems: list[SourceError] = field(default_factory=list)


def parse(data: bytes) -> Parsed:
    if len(data) > MAX_BYTES:
        raise SourceError(f"the manifest is {len(data)} bytes; the limit is {MAX_BYTES} (4 MiB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"not UTF-8 text (byte {exc.start} is invalid); save the file as UTF-8") from exc
    if "\x00" in text:
        raise SourceError("the manifest contains a NUL byte; is it a text file?")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return _parse_json(text)
    return _parse_yaml(text)


def _parse_json(text: str) -> Parsed:
    problems: list[SourceError] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                problems.append(SourceError(f"duplicate key '{one_line(key, 80)}': each key may appear once"))
            seen[key] = value
        return seen

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise SourceError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    except RecursionError as exc:
        raise SourceError(f"nested deeper than {MAX_DEPTH} levels") from exc
    try:
        # Same data, composed again only to learn line:column of every value.
        parsed = _parse_yaml(text)
        parsed.is_json = True
        if parsed.problems:
            problems = parsed.problems
    except SourceError:
        parsed = Parsed(_from_plain(value), is_json=True)
    parsed.problems = problems
    return parsed


def _from_plain(value: Any) -> Node:
    if isinstance(value, dict):
        return Node({k: _from_plain(v) for k, v in value.items()}, keys={k: Node(k, raw=k) for k in value})
    if isinstance(value, list):
        return Node([_from_plain(v) for v in value])
    return Node(value, raw=json.dumps(value) if not isinstance(value, str) else value)


def _parse_yaml(text: str) -> Parsed:
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise SourceError(f"invalid YAML: {exc.problem or exc.context}", line, col) from exc
    except yaml.YAMLError as exc:
        raise SourceError(f"invalid YAML: {exc}") from exc
    if root is None:
        raise SourceError("the manifest is empty")
    walker = _Walker()
    node = walker.walk(root, 0)
    return Parsed(node, is_json=False, problems=walker.problems)


class _Walker:
    def __init__(self) -> None:
        self.count = 0
        self.problems: list[SourceError] = []
        self.constructor = yaml.SafeLoader("")

    def walk(self, node: yaml.Node, depth: int) -> Node:
        self.count += 1
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        if self.count > MAX_NODES:
            raise SourceError(
                f"the manifest expands to more than {MAX_NODES} values (aliases?); simplify it", line, col
            )
        if depth > MAX_DEPTH:
            raise SourceError(f"nested deeper than {MAX_DEPTH} levels", line, col)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, depth, line, col)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != f"{_CORE}seq":
                raise SourceError(
                    f"unsupported YAML tag {node.tag!r}: only plain values are allowed", line, col
                )
            return Node([self.walk(child, depth + 1) for child in node.value], line, col)
        assert isinstance(node, yaml.ScalarNode)
        if node.tag not in _SCALAR_TAGS:
            raise SourceError(f"unsupported YAML tag {node.tag!r}: only plain values are allowed", line, col)
        if node.tag == f"{_CORE}timestamp":
            return Node(node.value, line, col, raw=node.value)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except ValueError:
            # Only an integer past Python's digit limit (4300) gets here: timestamps stay text.
            self.problems.append(
                SourceError(f"a number of {len(node.value)} digits; is it a mistake?", line, col)
            )
            value = node.value
        return Node(value, line, col, raw=node.value)

    def _mapping(self, node: yaml.MappingNode, depth: int, line: int, col: int) -> Node:
        if node.tag != f"{_CORE}map":
            raise SourceError(f"unsupported YAML tag {node.tag!r}: only plain values are allowed", line, col)
        values: dict[str, Node] = {}
        keys: dict[str, Node] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == f"{_CORE}merge":
                merged.extend(self._merge(value_node, depth + 1))
                continue
            key = self.walk(key_node, depth + 1)
            if not isinstance(key.value, str) or key.raw is None:
                self.problems.append(SourceError("keys must be plain strings", key.line, key.col))
                continue
            name = key.raw
            if name in values:
                self.problems.append(
                    SourceError(
                        f"duplicate key '{one_line(name, 80)}' (first at line {keys[name].line}): "
                        "each key may appear once",
                        key.line,
                        key.col,
                    )
                )
                continue
            keys[name] = key
            values[name] = self.walk(value_node, depth + 1)
        # YAML merge keys: the mapping's own keys win, then the merged mappings in the order given.
        for source in merged:
            for name, value in source.value.items():
                if name not in values:
                    values[name], keys[name] = value, source.keys[name]
        return Node(values, line, col, keys=keys)

    def _merge(self, node: yaml.Node, depth: int) -> list[Node]:
        """What `<<:` brings in: a mapping (usually an `*alias`) or a list of them."""
        found = self.walk(node, depth)
        sources = found.value if found.is_seq else [found]
        if not all(source.is_map for source in sources):
            self.problems.append(
                SourceError(
                    "`<<:` merges a mapping or a list of mappings (e.g. `<<: *defaults`)",
                    found.line,
                    found.col,
                )
            )
            return []
        return sources

"""Safe YAML loading with YAML 1.2 scalars and a position for every node."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import Problem

__all__ = ["Node", "from_python", "parse_yaml"]

# YAML 1.2 core schema: only these plain scalars are not strings.
_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+")
_INT_OCT = re.compile(r"0o[0-7]+")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = {".inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}
_STD = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {_STD + t for t in ("str", "map", "seq", "int", "float", "bool", "null")}
_MAX_NODES = 100_000
_MAX_DEPTH = 64


@dataclass(eq=False)
class Node:
    """A YAML (or Python) value with the 1-based line and column it came from.

    Mappings hold ``dict[str, Node]`` and remember each key's own position in
    ``key_pos``; sequences hold ``list[Node]``; scalars hold str, int, float, bool
    or None.
    """

    value: Any
    file: str
    line: int
    col: int
    key_pos: dict[str, tuple[int, int]] = field(default_factory=dict)

    def at(self, code: str, message: str, hint: str | None = None) -> Problem:
        return Problem(self.file, self.line, self.col, code, message, hint)

    def key_at(self, key: str, code: str, message: str, hint: str | None = None) -> Problem:
        line, col = self.key_pos.get(key, (self.line, self.col))
        return Problem(self.file, line, col, code, message, hint)

    def plain(self) -> Any:
        """The value with every Node unwrapped."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


class _Loader(yaml.SafeLoader):
    """SafeLoader that composes nodes only; resolution is ours (YAML 1.2)."""


_Loader.yaml_implicit_resolvers = {}


def _scalar(node: yaml.ScalarNode) -> Any:
    text: str = node.value
    if node.style is not None or node.tag != _STD + "str":
        return _tagged(node.tag, text)
    if _NULL.fullmatch(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        return int(text)
    if _INT_OCT.fullmatch(text):
        return int(text[2:], 8)
    if _INT_HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text.lower() in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[text.lower()]
    return text


def _tagged(tag: str, text: str) -> Any:
    if tag == _STD + "int":
        return int(text, 0)
    if tag == _STD + "float":
        return float(text)
    if tag == _STD + "bool":
        return _BOOL[text]
    if tag == _STD + "null":
        return None
    return text


class _Converter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.count = 0

    def problem(self, node: yaml.Node, code: str, message: str, hint: str | None = None) -> None:
        mark = node.start_mark
        self.problems.append(
            Problem(self.file, mark.line + 1, mark.column + 1, code, message, hint)
        )

    def convert(self, node: yaml.Node, active: frozenset[int] = frozenset()) -> Node:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _TooBig
        if len(active) > _MAX_DEPTH:
            raise _TooDeep
        mark = node.start_mark
        out = Node(None, self.file, mark.line + 1, mark.column + 1)
        if node.tag not in _ALLOWED_TAGS:
            self.problem(node, "yaml-tag", f"the tag {node.tag!r} is not allowed in rule files")
            return out
        if id(node) in active:
            self.problem(node, "yaml-alias", "an alias refers to itself")
            return out
        inner = active | {id(node)}
        if isinstance(node, yaml.ScalarNode):
            try:
                out.value = _scalar(node)
            except (ValueError, KeyError):
                self.problem(node, "yaml-value", f"{node.value!r} is not a valid {node.tag[18:]}")
            if isinstance(out.value, int) and not -(2**63) <= out.value < 2**63:
                self.problem(node, "yaml-value", "the number is too large (64 bits at most)")
                out.value = None
        elif isinstance(node, yaml.SequenceNode):
            out.value = [self.convert(item, inner) for item in node.value]
        elif isinstance(node, yaml.MappingNode):
            mapping: dict[str, Node] = {}
            for key_node, value_node in node.value:
                key = self.convert(key_node, inner)
                if not isinstance(key.value, str):
                    self.problem(
                        key_node, "yaml-key", f"mapping keys must be strings, not {key.value!r}"
                    )
                    continue
                if key.value in mapping:
                    self.problem(key_node, "duplicate-key", f"the key {key.value!r} appears twice")
                    continue
                mapping[key.value] = self.convert(value_node, inner)
                out.key_pos[key.value] = (key.line, key.col)
            out.value = mapping
        return out


class _TooBig(Exception):
    pass


class _TooDeep(Exception):
    pass


def parse_yaml(text: str, file: str) -> tuple[Node | None, list[Problem]]:
    """Parse one YAML document into Nodes; return it with every problem found."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except RecursionError:
        return None, [Problem(file, 1, 1, "yaml-depth", f"nested deeper than {_MAX_DEPTH} levels")]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return None, [Problem(file, line, col, "yaml-syntax", message)]
    except yaml.YAMLError as exc:
        return None, [Problem(file, 1, 1, "yaml-syntax", str(exc))]
    if root is None:
        return None, []
    conv = _Converter(file)
    try:
        node = conv.convert(root)
    except _TooBig:
        return None, [Problem(file, 1, 1, "yaml-size", f"more than {_MAX_NODES} nodes")]
    except _TooDeep:
        return None, [Problem(file, 1, 1, "yaml-depth", f"nested deeper than {_MAX_DEPTH} levels")]
    return node, conv.problems


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def caller_location() -> tuple[str, int]:
    """File and line of the first caller outside this package (for Python rule objects)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE_DIR)
        or frame.f_code.co_filename == "<string>"
        or str(frame.f_globals.get("__name__", "")).partition(".")[0] in _FRAMEWORKS
    ):
        frame = frame.f_back
    return frame.f_code.co_filename, frame.f_lineno


# Frames of these packages build middleware for the user (add_middleware): skip them.
_FRAMEWORKS = frozenset({"starlette", "fastapi", "flask", "werkzeug", "django", "uvicorn"})


def from_python(value: Any, file: str, line: int, depth: int = 0) -> Node:
    """Wrap a Python value (dicts, lists, scalars) as Nodes located at file:line."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"rules nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, Node):
        return value
    if isinstance(value, Mapping):
        node = Node({}, file, line, 1)
        for k, v in value.items():
            node.value[k if isinstance(k, str) else repr(k)] = from_python(v, file, line, depth + 1)
            node.key_pos[k if isinstance(k, str) else repr(k)] = (line, 1)
        return node
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return Node([from_python(v, file, line, depth + 1) for v in value], file, line, 1)
    return Node(value, file, line, 1)

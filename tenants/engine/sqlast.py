"""Small helpers over pglast's syntax tree, shared by the lint rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast


def walk(node: Any) -> Iterator[ast.Node]:
    """Every node under ``node`` (itself included), depth first."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for attr in type(node).__slots__:  # type: ignore[attr-defined]
            yield from walk(getattr(node, attr, None))


def names(value: Any) -> list[str]:
    """The strings of a qualified name list (``schema.name`` as ``["schema", "name"]``)."""
    if isinstance(value, (list, tuple)):
        return [str(item.sval) for item in value if isinstance(item, ast.String)]
    return []


def enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def constant_string(node: Any) -> str | None:
    """The value of a string constant node, else None."""
    value = getattr(node, "val", None) if isinstance(node, ast.A_Const) else None
    return str(value.sval) if isinstance(value, ast.String) and value.sval is not None else None


def line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, max(offset, 0)) + 1


def stmt_start(text: str, location: int) -> int:
    """Offset of the first token of a statement (pglast's location may include leading space and comments)."""
    i = location
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i)
            i = len(text) if end < 0 else end + 2
        else:
            break
    return i


def statement_text(text: str, raw: Any) -> str:
    start = raw.stmt_location or 0
    return text[start : start + raw.stmt_len] if raw.stmt_len else text[start:]


def node_location(node: ast.Node, default: int) -> int:
    location = getattr(node, "location", None)
    return location if isinstance(location, int) and location >= 0 else default

"""The one table of limits: what a workflow file may hold, and so what the model keeps to.

The file loader refuses anything past these; the model refuses (ids, colours) or clamps
(titles, coordinates, sizes, zoom) to the same numbers, and a save checks the whole file
against them before it touches the old one. So whatever the API or the editor builds saves
and opens again.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_FILE_BYTES = 32 * 1024 * 1024  # a workflow file, as written or read
MAX_ITEMS = 100_000  # entries in any one array of the file (nodes, links, frames, ...)
MAX_COORD = 1e7  # |x|, |y| of positions, the view centre and frame rects
MAX_NODE_SIZE = 1e5  # a node's width and height
MIN_ZOOM, MAX_ZOOM = 0.01, 100.0
MAX_TITLE = 500  # node and frame titles
MAX_STRING = 10_000  # any other string the file holds, unless a param declares otherwise
MAX_TYPE_ID = 200
MAX_SOCKET_NAME = 200
MAX_METADATA_BYTES = 1_000_000  # the metadata object as compact JSON
MAX_METADATA_DEPTH = 4  # levels of nesting inside one metadata value
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # node, link and frame ids
COLOR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")


class GraphError(ValueError):
    """A mutation that the graph refuses, with the reason as message."""


def clamp(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value))


_HEX = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def clamp_point(point, limit: float = MAX_COORD) -> tuple[float, ...]:
    values = tuple(float(v) for v in point)
    if not all(math.isfinite(v) for v in values):
        raise GraphError(f"not a finite position: {point!r}")
    return tuple(clamp(v, -limit, limit) for v in values)


def clamp_size(size) -> tuple[float, float] | None:
    """A node size inside the file's limits (None: the node's natural size)."""
    if size is None:
        return None
    w, h = clamp_point(size, MAX_NODE_SIZE)
    return max(0.0, w), max(0.0, h)


def clamp_rect(rect) -> tuple[float, float, float, float]:
    x, y, w, h = clamp_point(rect)
    return x, y, max(0.0, w), max(0.0, h)


def check_id(value: str) -> str:
    problem = id_problem(value)
    if problem:
        raise GraphError(problem)
    return value


def normalise_color(color: str | None) -> str | None:
    """``#abc`` → ``#aabbcc``; None stays None; anything else is refused."""
    if color is None:
        return None
    match = _HEX.fullmatch(color)
    if not match:
        raise GraphError(f"not a colour: {color!r} (expected #rrggbb)")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits.lower()


def id_problem(value: Any) -> str:
    """Why ``value`` cannot be a node, link or frame id ("" when it can)."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        shown = value[:80] if isinstance(value, str) else value
        return f"invalid id {shown!r} (1 to 64 of A-Z a-z 0-9 _ . : -)"
    return ""


def depth_over(value: Any, limit: int = MAX_METADATA_DEPTH) -> bool:
    """Whether ``value`` nests lists/objects more than ``limit`` levels deep (iterative, so a
    deep value cannot exhaust the stack)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level + 1 > limit:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def metadata_problem(meta: Any) -> tuple[str, str] | None:
    """(path, message) for metadata the file would refuse, or None."""
    if not isinstance(meta, dict):
        return "metadata", f"expected object, got {type(meta).__name__}"
    for key, value in meta.items():
        if not isinstance(key, str):
            return "metadata", f"keys must be strings, got {key!r}"
        if depth_over(value):
            return f"metadata.{key}", f"nested more than {MAX_METADATA_DEPTH} levels deep"
    try:
        size = len(json.dumps(meta, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as exc:
        return "metadata", f"not plain JSON: {exc}"
    if size > MAX_METADATA_BYTES:
        return "metadata", f"larger than {MAX_METADATA_BYTES:,} bytes ({size:,})"
    return None

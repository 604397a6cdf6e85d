"""A node's geometry, computed from its type's declarations (no widgets, no painting).

The layout depends only on the node type, the node's collapsed flag and stored size, a
live size while resizing, and the thumbnail's size; so the inline widgets (created
lazily) never change where anything sits, and painting just reads the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QRectF

from graphs import Node, NodeType, Param

from . import theme
from .widgets import row_height, seed_control

IMAGE_MAX_H = 220.0
COMPANION_EXTRA_W = 50.0  # room for a seed's control box beside it
MIN_RESIZE_W = 160.0


@dataclass
class ParamRow:
    param: Param
    y: float
    height: float
    companion: Param | None  # a seed's control, drawn in the same row


@dataclass
class NodeLayout:
    width: float
    height: float
    natural_height: float = theme.HEADER_H  # without a user-set height
    inputs: dict[str, tuple[float, float]] = field(default_factory=dict)  # socket -> centre
    outputs: dict[str, tuple[float, float]] = field(default_factory=dict)
    rows: list[ParamRow] = field(default_factory=list)
    params_top: float = 0.0
    params_bottom: float = 0.0
    image_rect: QRectF | None = None

    def grip_rect(self) -> QRectF:
        return QRectF(self.width - 12, self.height - 12, 12, 12)


def companions(node_type: NodeType) -> set[str]:
    """Params drawn beside another one (a seed's control) instead of in a row of their own."""
    names = set()
    for param in node_type.params:
        companion = seed_control(node_type, param)
        if companion is not None:
            names.add(companion.name)
    return names


def default_width(node_type: NodeType) -> float:
    return theme.NODE_WIDTH + (theme.scaled(COMPANION_EXTRA_W) if companions(node_type) else 0.0)


def layout_node(node_type: NodeType, node: Node, size: tuple[float, float] | None,
                image_size: tuple[int, int] | None = None) -> NodeLayout:
    """``size`` is the live size while resizing, else the node's stored one (or None)."""
    hidden = companions(node_type)
    width = size[0] if size else default_width(node_type)
    linkable = [p.name for p in node_type.params if p.linkable]
    if node.flags.get("collapsed"):
        mid = theme.HEADER_H / 2
        lay = NodeLayout(width, theme.HEADER_H)
        lay.inputs = {s.name: (0.0, mid) for s in node_type.inputs}
        lay.inputs.update({name: (0.0, mid) for name in linkable})
        lay.outputs = {s.name: (width, mid) for s in node_type.outputs}
        return lay
    lay = NodeLayout(width, 0.0)
    row_h = theme.SOCKET_ROW_H
    y = theme.HEADER_H + 4
    for i, socket in enumerate(node_type.inputs):
        lay.inputs[socket.name] = (0.0, y + i * row_h + row_h / 2)
    for i, socket in enumerate(node_type.outputs):
        lay.outputs[socket.name] = (width, y + i * row_h + row_h / 2)
    n_rows = max(len(node_type.inputs), len(node_type.outputs))
    y += n_rows * row_h
    if n_rows and node_type.params:
        y += 4
    lay.params_top = y
    for param in node_type.params:
        if param.name in hidden:
            if param.linkable:  # its socket sits on the row it shares
                lay.inputs.setdefault(param.name, (0.0, y))
            continue
        h = row_height(param)
        lay.rows.append(ParamRow(param, y, h, seed_control(node_type, param)))
        if param.linkable:
            lay.inputs[param.name] = (0.0, y + min(h, theme.scaled(22)) / 2)
        y += h + 2
    lay.params_bottom = y
    if image_size is not None:
        iw, ih = max(1, image_size[0]), max(1, image_size[1])
        scale = min((width - 2 * theme.PAD) / iw, IMAGE_MAX_H / ih)
        w, h = iw * scale, ih * scale
        lay.image_rect = QRectF((width - w) / 2, y + 4, w, h)
        y += h + 8
    y += 6
    lay.natural_height = y
    lay.height = max(y, size[1]) if size else y
    return lay

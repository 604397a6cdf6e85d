"""A coloured socket on a node: the end point of links and the handle for dragging wires.

Sockets are not QGraphicsItems (a 500-node canvas would carry thousands of them): the
node paints them and the view hit-tests them through ``NodeItem.socket_at``. The object
keeps the small item-like API the rest of the editor uses (``scenePos``, ``setPos``,
``update``).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QBrush, QColor, QPainter, QPen

from . import (
    theme,
)

HIT_RADIUS = 10.0


class SocketItem:
    """``is_output`` sockets sit on the right edge, inputs on the left."""

    __slots__ = ("node_item", "name", "socket_type", "is_output", "color", "optional", "state",
                 "connected", "hover", "_pos", "scale")

    def __init__(self, node_item, name: str, socket_type: str, is_output: bool,
                 color: QColor, optional: bool = False) -> None:
        self.node_item = node_item
        self.name, self.socket_type, self.is_output = name, socket_type, is_output
        self.color = QColor(color)
        self.optional = optional
        self.state = "normal"  # "normal", "dim" or "hot" (compatible while dragging)
        self.connected = False
        self.hover = False
        self._pos = QPointF(0, 0)
        self.scale = 1.0

    @property
    def node_id(self) -> str:
        return self.node_item.node_id

    def setPos(self, x: float, y: float) -> None:  # noqa: N802 - item-like API
        self._pos = QPointF(x, y)

    def y(self) -> float:
        return self._pos.y()

    def pos(self) -> QPointF:
        return QPointF(self._pos)

    def scenePos(self) -> QPointF:  # noqa: N802 - item-like API
        return self.node_item.pos() + self._pos

    def update(self) -> None:
        self.node_item.update()

    def set_color(self, color: QColor) -> None:
        if color != self.color:
            self.color = QColor(color)
            self.update()

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.update()

    def paint(self, painter: QPainter) -> None:
        color = QColor(self.color)
        r = theme.SOCKET_R * self.scale
        if self.state == "dim":
            color.setAlpha(55)
        if self.state == "hot" or self.hover:
            r += 1.5
        hot = self.state == "hot"
        filled = self.connected or not self.optional or hot
        if filled:
            painter.setPen(QPen(theme.HIGHLIGHT if hot else theme.OUTLINE, 1.5 if hot else 1.0))
            painter.setBrush(QBrush(color))
        else:
            painter.setPen(QPen(color, 2.0))
            painter.setBrush(QBrush(theme.FIELD_BG))
        painter.drawEllipse(QRectF(self._pos.x() - r, self._pos.y() - r, 2 * r, 2 * r))

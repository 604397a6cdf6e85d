"""A coloured socket on a node: the end point of links and the handle for dragging wires."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem

from . import theme


class SocketItem(QGraphicsItem):
    """``is_output`` sockets sit on the right edge, inputs on the left."""

    def __init__(self, node_item, name: str, socket_type: str, is_output: bool,
                 color: QColor, optional: bool = False) -> None:
        super().__init__(node_item)
        self.node_item = node_item
        self.name, self.socket_type, self.is_output = name, socket_type, is_output
        self.color = QColor(color)
        self.optional = optional
        self.state = "normal"  # "normal", "dim" or "hot" (compatible while dragging)
        self.connected = False
        self.setAcceptHoverEvents(True)
        self.setZValue(2)
        self._hover = False

    @property
    def node_id(self) -> str:
        return self.node_item.node_id

    def boundingRect(self) -> QRectF:  # noqa: N802
        r = theme.SOCKET_R + 4
        return QRectF(-r, -r, 2 * r, 2 * r)

    def set_color(self, color: QColor) -> None:
        if color != self.color:
            self.color = QColor(color)
            self.update()

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.update()

    def paint(self, painter: QPainter, option, widget=None) -> None:
        color = QColor(self.color)
        r = theme.SOCKET_R
        if self.state == "dim":
            color.setAlpha(55)
        if self.state == "hot" or self._hover:
            r += 1.5
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        border = QColor("#ffffff") if self.state == "hot" else QColor("#101214")
        painter.setPen(QPen(border, 1.5 if self.state == "hot" else 1.0))
        filled = self.connected or not self.optional or self.state == "hot"
        painter.setBrush(QBrush(color) if filled else QBrush(QColor("#1f2226")))
        if not filled:
            painter.setPen(QPen(color, 2.0))
        painter.drawEllipse(QRectF(-r, -r, 2 * r, 2 * r))

    def hoverEnterEvent(self, event) -> None:  # noqa: N802
        self._hover = True
        self.update()
        self.setCursor(Qt.CursorShape.CrossCursor)

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802
        self._hover = False
        self.update()

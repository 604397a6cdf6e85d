"""A titled frame behind a group of nodes. Dragging its title moves it with the nodes inside;
the bottom-right grip resizes it. Both become one ``MoveNodes`` command on release."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyle

from graphs import Frame

from . import (
    theme,
)

TITLE_H = 30.0
GRIP = 14.0


class FrameItem(QGraphicsItem):
    def __init__(self, scene, frame: Frame) -> None:
        super().__init__()
        self.graph_scene = scene
        self.frame_id = frame.id
        self.setZValue(-20)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self._drag: dict | None = None
        self.sync()

    @property
    def frame(self) -> Frame:
        return self.graph_scene.graph.frames[self.frame_id]

    def sync(self) -> None:
        x, y, w, h = self.frame.rect
        self.prepareGeometryChange()
        self._size = (w, h)
        self.setPos(x, y)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-2, -2, self._size[0] + 4, self._size[1] + 4)

    def title_rect(self) -> QRectF:
        return QRectF(0, 0, self._size[0], TITLE_H)

    def grip_rect(self) -> QRectF:
        return QRectF(self._size[0] - GRIP, self._size[1] - GRIP, GRIP, GRIP)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        frame = self.frame
        rect = QRectF(0, 0, *self._size)
        color = QColor(frame.color)
        fill = QColor(color)
        fill.setAlpha(70)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(QPen(theme.NODE_SELECTED if selected else color.lighter(130), 1.5))
        painter.setBrush(fill)
        painter.drawRoundedRect(rect, 8, 8)
        head = QColor(color)
        head.setAlpha(150)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(head)
        painter.drawRoundedRect(self.title_rect(), 8, 8)
        painter.setPen(theme.TEXT)
        painter.setFont(theme.font(12, True))
        painter.drawText(self.title_rect().adjusted(10, 0, -10, 0),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, frame.title)
        painter.setPen(QPen(theme.TEXT_DIM, 1.2))
        g = self.grip_rect()
        for i in (4, 8, 12):
            painter.drawLine(QPointF(g.right() - i, g.bottom() - 2), QPointF(g.right() - 2, g.bottom() - i))

    # Clicks in the body fall through to the canvas (rubber band); only the title and grip grab.
    def mousePressEvent(self, event) -> None:  # noqa: N802
        pos = event.pos()
        if event.button() != Qt.MouseButton.LeftButton:
            event.ignore()
            return
        if self.grip_rect().contains(pos):
            mode = "resize"
        elif self.title_rect().contains(pos):
            mode = "move"
        else:
            event.ignore()
            return
        inside = [self.graph_scene.node_items[n.id] for n in
                  self.graph_scene.graph.nodes_in_frame(self.frame_id)
                  if n.id in self.graph_scene.node_items] if mode == "move" else []
        self._drag = {"mode": mode, "start": event.scenePos(), "rect": tuple(self.frame.rect),
                      "nodes": {item: item.pos() for item in inside}}
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drag is None:
            return
        delta = event.scenePos() - self._drag["start"]
        x, y, w, h = self._drag["rect"]
        if self._drag["mode"] == "resize":
            self.prepareGeometryChange()
            self._size = (max(120.0, w + delta.x()), max(60.0, h + delta.y()))
            self.update()
        else:
            self.setPos(x + delta.x(), y + delta.y())
            for item, start in self._drag["nodes"].items():
                item.setPos(start + delta)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        drag, self._drag = self._drag, None
        if drag is None:
            return
        old = drag["rect"]
        new = (self.pos().x(), self.pos().y(), self._size[0], self._size[1])
        if tuple(round(v, 3) for v in new) == tuple(round(v, 3) for v in old):
            return
        moves = {item.node_id: (tuple(start.toTuple()), tuple(item.pos().toTuple()))
                 for item, start in drag["nodes"].items()}
        self.graph_scene.move_requested.emit(moves, {self.frame_id: (old, new)})

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if self.title_rect().contains(event.pos()):
            self.graph_scene.rename_frame_requested.emit(self.frame_id)
            event.accept()
            return
        event.ignore()

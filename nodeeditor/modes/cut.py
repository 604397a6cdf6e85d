"""Cut mode (Ctrl+right-drag): a dashed line; the links it crosses are cut on release."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem

from .. import theme


class EdgeCutMode:
    def __init__(self, view, scene_pos: QPointF) -> None:
        self.view = view
        self.points = [scene_pos]
        self.item = QGraphicsPathItem()
        self.item.setPen(QPen(theme.CUT_LINE, 1.5, Qt.PenStyle.DashLine))
        self.item.setZValue(20)
        view.scene().addItem(self.item)

    def move(self, event) -> None:
        self.points.append(self.view.mapToScene(event.position().toPoint()))
        path = QPainterPath(self.points[0])
        for p in self.points[1:]:
            path.lineTo(p)
        self.item.setPath(path)

    def release(self, event) -> None:
        self.view.scene().removeItem(self.item)
        cut = [ln.link_id for ln in self.view.scene().link_items.values() if ln.crosses(self.points)]
        if cut:
            self.view.disconnect_requested.emit(cut)

"""Pan mode: middle-drag, Space+left-drag, or a right-drag (a right click opens the menu)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt


class PanMode:
    def __init__(self, view, pos: QPoint) -> None:
        self.view, self.last = view, pos
        view.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)

    def move(self, event) -> None:
        delta = event.position().toPoint() - self.last
        self.last = event.position().toPoint()
        self.view.horizontalScrollBar().setValue(self.view.horizontalScrollBar().value() - delta.x())
        self.view.verticalScrollBar().setValue(self.view.verticalScrollBar().value() - delta.y())

    def release(self, event) -> None:
        self.view.viewport().unsetCursor()

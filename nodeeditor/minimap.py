"""The minimap: a small overlay in the canvas's bottom-right corner that draws every node as a
rectangle (never its widgets) and the part of the graph on screen; a click or a drag on it centres
the canvas there. Toggled in View → Minimap (kept in QSettings); while the whole graph is on
screen it hides, as it would only cover a corner of it.

Cheap to draw: the node rectangles are drawn once into a pixmap, again only after the graph
changed (model events, a run's events, a new document), at most every ``REFRESH_MS``; an ordinary
paint (the canvas panned or zoomed) blits that pixmap and draws one rectangle.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from . import theme

SIZE = (220, 150)
MARGIN = 12  # px between the minimap and the canvas edges
REFRESH_MS = 150
SETTING = "view/minimap"
BACKGROUND = QColor("#16181b")
FRAME = QColor("#3f444c")
NODE = QColor("#5a616b")
NODE_SELECTED = theme.NODE_SELECTED
VIEWPORT = QColor("#dcdfe4")


class Minimap(QWidget):
    def __init__(self, view) -> None:
        super().__init__(view)  # over the viewport (a child of the viewport would scroll with it)
        self.view = view
        self.setFixedSize(*SIZE)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Minimap: click or drag to move the view")
        self.bounds = QRectF()  # the scene rect the map shows
        self.scale = 1.0
        self.offset = QPointF()
        self.pixmap: QPixmap | None = None
        self.boxes: list[tuple] = []  # (x, y, w, h, selected) of each node, as last drawn
        self.rebuilds = 0
        self.enabled = True  # View → Minimap; shown only while part of the graph is off screen
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.rebuild)
        scene = view.scene()
        scene.structure_changed.connect(self.schedule)
        scene.bridge.event.connect(self.schedule)
        scene.selectionChanged.connect(self.schedule)
        view.zoom_changed.connect(self.view_moved)
        view.horizontalScrollBar().valueChanged.connect(self.view_moved)
        view.verticalScrollBar().valueChanged.connect(self.view_moved)
        view.installEventFilter(self)
        self.place()

    # ----- placement ----------------------------------------------------------------
    def place(self) -> None:
        vp = self.view.viewport().geometry()
        self.move(vp.right() - self.width() - MARGIN + 1, vp.bottom() - self.height() - MARGIN + 1)
        self.raise_()

    # ----- the cached node rectangles -----------------------------------------------
    def set_enabled(self, on: bool) -> None:
        self.enabled = on
        if on:
            self.rebuild()
        else:
            self.hide()

    def view_moved(self, *_args) -> None:
        self.sync_visibility()
        if self.isVisible():
            self.update()

    def sync_visibility(self) -> None:
        """Shown while enabled and some of the graph is off screen (else it would only cover it)."""
        show = self.enabled and not self.bounds.isEmpty() and not self.visible_scene_rect().contains(self.bounds)
        if show == self.isHidden():
            self.setVisible(show)

    def schedule(self, *_args) -> None:
        """The graph changed: redraw the rectangles soon (at most every REFRESH_MS)."""
        if self.enabled and not self._timer.isActive():
            self._timer.start()

    def rebuild(self) -> None:
        """Collect the node rects and draw them into the pixmap (plain tuples in the loops: this
        runs over every node)."""
        self._timer.stop()
        scene = self.view.scene()
        boxes = []  # (x, y, w, h, selected): the body, no socket margins, no transform mapping
        for item in scene.node_items.values():
            pos, lay = item.pos(), item.layout
            boxes.append((pos.x(), pos.y(), lay.width, lay.height, item.isSelected()))
        frames = [frame.sceneBoundingRect() for frame in scene.frame_items.values()]
        self.boxes = boxes
        self.rebuilds += 1
        width, height = self.width(), self.height()
        pixmap = QPixmap(width, height)
        pixmap.fill(BACKGROUND)
        lefts = [b[0] for b in boxes] + [f.left() for f in frames]
        if not lefts:
            self.bounds, self.pixmap = QRectF(), pixmap
            self.sync_visibility()
            return
        tops = [b[1] for b in boxes] + [f.top() for f in frames]
        right = max([b[0] + b[2] for b in boxes] + [f.right() for f in frames])
        bottom = max([b[1] + b[3] for b in boxes] + [f.bottom() for f in frames])
        bounds = QRectF(min(lefts), min(tops), 0, 0)
        bounds.setRight(max(right, bounds.left() + 1))
        bounds.setBottom(max(bottom, bounds.top() + 1))
        pad = 6.0
        s = self.scale = min((width - 2 * pad) / bounds.width(), (height - 2 * pad) / bounds.height())
        ox = (width - bounds.width() * s) / 2 - bounds.left() * s
        oy = (height - bounds.height() * s) / 2 - bounds.top() * s
        self.offset, self.bounds = QPointF(ox, oy), bounds
        painter = QPainter(pixmap)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(60, 66, 74, 90))
        painter.drawRects([QRectF(f.x() * s + ox, f.y() * s + oy, f.width() * s, f.height() * s) for f in frames])
        plain, selected = [], []
        for x, y, w, h, sel in boxes:  # a pixel's gap keeps touching nodes apart
            w, h = w * s, h * s
            (selected if sel else plain).append(
                QRectF(x * s + ox, y * s + oy, w - 1 if w > 2 else 1.0, h - 1 if h > 2 else 1.0))
        for color, group in ((NODE, plain), (NODE_SELECTED, selected)):
            if group:
                painter.setBrush(color)
                painter.drawRects(group)
        painter.end()
        self.pixmap = pixmap
        self.sync_visibility()
        self.update()

    @property
    def rects(self) -> list[QRectF]:
        """The node rects last drawn, in scene coordinates (for tests and scripting)."""
        return [QRectF(x, y, w, h) for x, y, w, h, _ in self.boxes]

    # ----- mapping ------------------------------------------------------------------
    def to_scene(self, pos: QPointF) -> QPointF:
        return QPointF((pos.x() - self.offset.x()) / self.scale, (pos.y() - self.offset.y()) / self.scale)

    def to_map(self, rect: QRectF) -> QRectF:
        s = self.scale
        return QRectF(rect.x() * s + self.offset.x(), rect.y() * s + self.offset.y(), rect.width() * s,
                      rect.height() * s)

    def visible_scene_rect(self) -> QRectF:
        return self.view.mapToScene(self.view.viewport().rect()).boundingRect()

    # ----- painting and the mouse ---------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self.place()

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        if self.pixmap is None:
            painter.fillRect(self.rect(), BACKGROUND)
        else:
            painter.drawPixmap(0, 0, self.pixmap)
        if not self.bounds.isEmpty():
            painter.setClipRect(self.rect().adjusted(1, 1, -1, -1))
            painter.setPen(QPen(VIEWPORT, 1))
            painter.setBrush(QColor(255, 255, 255, 24))
            painter.drawRect(self.to_map(self.visible_scene_rect()))
            painter.setClipping(False)
        painter.setPen(QPen(FRAME, 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        painter.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.go_to(event.position())
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.go_to(event.position())
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        event.accept()

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0  # zoom the canvas about its centre
        if steps:
            self.view.zoom_at(self.view.viewport().rect().center(), self.view.zoom() * 1.15 ** steps)
        event.accept()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        if watched is self.view and event.type() == QEvent.Type.Resize:
            QTimer.singleShot(0, self.place)  # keep to the corner, once the viewport has its size
        return False

    def go_to(self, pos: QPointF) -> None:
        """Centre the canvas on the scene point under ``pos`` (minimap coordinates)."""
        if self.bounds.isEmpty():
            return
        self.view.centerOn(self.to_scene(pos))
        self.update()


def install_minimap(window) -> Minimap:
    """Add the minimap to the window's canvas and View → Minimap (checked state in settings)."""
    from .gallery import view_menu

    minimap = Minimap(window.view)
    window.minimap = minimap
    window.document.replaced.connect(minimap.schedule)
    window.document.cleared.connect(minimap.schedule)
    window.worker.run_done.connect(minimap.schedule)  # previews grew the nodes
    action = QAction("&Minimap", window)
    action.setObjectName("minimap")
    action.setCheckable(True)
    on = str(window.settings.value(SETTING, "true")).lower() in ("true", "1")
    action.setChecked(on)
    minimap.enabled = on
    minimap.hide()  # until a graph is drawn that does not fit on screen

    def toggled(checked: bool) -> None:
        minimap.set_enabled(checked)
        window.settings.setValue(SETTING, "true" if checked else "false")

    action.toggled.connect(toggled)
    window.actions_by_name["minimap"] = action
    menu = view_menu(window)
    if menu is not None:
        menu.addSeparator()
        menu.addAction(action)
    return minimap

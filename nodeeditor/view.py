"""The canvas view: pan/zoom, level of detail, and the mouse and keys of the canvas.

Drags run as interaction modes (``nodeeditor.modes``: pan, cut, wire), one at a time;
rubber-band selection and node moving are Qt's own. Gestures that edit the graph are
emitted as ``*_requested`` signals for the controller; the view never edits the model.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QCursor, QPainter
from PySide6.QtWidgets import QGraphicsProxyWidget, QGraphicsView, QToolTip

from . import theme
from .frame_item import FrameItem
from .library import NODE_MIME
from .link_item import LinkItem
from .modes import EdgeCutMode, EdgeDragMode, PanMode
from .node_item import NodeItem
from .search import SearchPopup, addable_types
from .socket_item import SocketItem


class GraphView(QGraphicsView):
    zoom_changed = Signal(float)
    # Gestures, for the controller to turn into commands.
    connect_requested = Signal(str, str, str, str, object)  # src, output, dst, input, detached link
    disconnect_requested = Signal(object)  # [link id]
    reroute_requested = Signal(str, object)  # link id, (x, y)
    add_node_requested = Signal(str, object, object)  # type id, (x, y), the wire dropped or None
    # For the window: a file dropped on the canvas, a right click (viewport pos), a message.
    file_dropped = Signal(str)
    context_menu_requested = Signal(QPoint)
    status_message = Signal(str)

    def __init__(self, scene, parent=None) -> None:
        super().__init__(scene, parent)
        self.mode = None  # the active interaction mode (nodeeditor.modes), if any
        self.space_held = False
        self.last_scene_pos = QPointF(0, 0)
        self._right_press: QPoint | None = None
        self._right_moved = False
        self.search_popup = None
        self.last_cursor_message = ""  # the last refusal shown at the cursor (tests read it)
        # type id -> how often the user added it from the search (the window keeps it in settings)
        self.search_usage: dict[str, int] = {}
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing, True)
        # Every item's paint() sets the pen/brush/hints it needs, so skip save/restore per item.
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheBackground)
        self.setAcceptDrops(True)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._widget_timer = QTimer(self)
        self._widget_timer.setSingleShot(True)
        self._widget_timer.setInterval(30)
        self._widget_timer.timeout.connect(self.materialize_visible)
        scene.structure_changed.connect(self.schedule_widgets)
        scene.view_changed.connect(self.apply_model_view)

    # ----- zoom and level of detail ---------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        zoom = max(theme.ZOOM_MIN, min(theme.ZOOM_MAX, zoom))
        factor = zoom / self.zoom()
        if abs(factor - 1.0) < 1e-9:
            return
        self.scale(factor, factor)
        self._zoom_updated()

    def reset_view(self) -> None:
        """Zoom 100%, centred on the origin (a new workflow), the zoom label told."""
        self.resetTransform()
        self.centerOn(0, 0)
        self._zoom_updated()

    def _zoom_updated(self) -> None:
        self.resetCachedContent()
        self.scene().set_widgets_visible(self.zoom() >= theme.LOD_WIDGETS)
        self.schedule_widgets()
        self.zoom_changed.emit(self.zoom())

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if not steps:
            return
        self.zoom_at(event.position().toPoint(), self.zoom() * (1.15 ** steps))
        event.accept()

    def zoom_at(self, pos: QPoint, zoom: float) -> None:
        """Zoom keeping the scene point under viewport position ``pos`` in place."""
        before = self.mapToScene(pos)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.set_zoom(zoom)
        shift = before - self.mapToScene(pos)
        self.centerOn(self.mapToScene(self.viewport().rect().center()) + shift)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)

    def zoom_in(self) -> None:
        self._zoom_centered(1.2)

    def zoom_out(self) -> None:
        self._zoom_centered(1 / 1.2)

    def _zoom_centered(self, factor: float) -> None:
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.set_zoom(self.zoom() * factor)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)

    def center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def frame_rect(self, rect: QRectF) -> None:
        if rect.isNull() or rect.isEmpty():
            return
        rect = rect.adjusted(-40, -40, 40, 40)
        vp = self.viewport().rect()
        zoom = min(vp.width() / rect.width(), vp.height() / rect.height(), 1.5)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.set_zoom(zoom)
        self.centerOn(rect.center())
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.schedule_widgets()

    def say_at_cursor(self, text: str) -> None:
        """A refusal where the user is looking (the socket just let go of), not only in the status bar."""
        self.last_cursor_message = text
        self.status_message.emit(text)
        QToolTip.showText(QCursor.pos(), text, self.viewport(), self.viewport().rect(), 4000)

    def frame_all(self) -> None:
        self.frame_rect(self.scene().items_rect())

    def frame_selection_or_all(self) -> None:
        rect = self.scene().items_rect(selected_only=True)
        if rect.isNull() or rect.isEmpty():
            self.frame_all()
        else:
            self.frame_rect(rect)

    def apply_model_view(self, view) -> None:
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.set_zoom(view.zoom)
        self.centerOn(QPointF(*view.center))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self._applied = (self._view_state(), view)
        self.schedule_widgets()

    def _view_state(self) -> tuple:
        return (self.zoom(), self.horizontalScrollBar().value(), self.verticalScrollBar().value(),
                self.viewport().size().toTuple())

    def current_view(self) -> tuple[float, tuple[float, float]]:
        """(zoom, centre) to store in the model. Unchanged since the model's view was
        applied, it is returned as it was, so save -> open -> save is identical (Qt rounds
        scroll positions to whole pixels)."""
        applied = getattr(self, "_applied", None)
        if applied is not None and applied[0] == self._view_state():
            return applied[1].zoom, tuple(applied[1].center)
        center = self.mapToScene(self.viewport().rect()).boundingRect().center()
        return round(self.zoom(), 6), (round(center.x(), 3), round(center.y(), 3))

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802
        super().scrollContentsBy(dx, dy)
        self.schedule_widgets()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.schedule_widgets()

    # ----- lazy inline widgets --------------------------------------------------------
    def schedule_widgets(self) -> None:
        if not self._widget_timer.isActive():
            self._widget_timer.start()

    def materialize_visible(self, limit: int | None = 30) -> int:
        """Create inline widgets for visible nodes (a few per pass, so panning stays smooth)."""
        scene = self.scene()
        if self.zoom() < theme.LOD_WIDGETS:
            return 0
        rect = self.mapToScene(self.viewport().rect()).boundingRect()
        made = 0
        for item in scene.node_items.values():
            if item.proxy is None and item.param_rows and item.sceneBoundingRect().intersects(rect):
                if limit is not None and made >= limit:
                    self.schedule_widgets()
                    break
                item.ensure_widgets()
                made += 1
        return made

    # ----- mouse ----------------------------------------------------------------------
    def socket_at(self, scene_pos: QPointF) -> SocketItem | None:
        """The socket under ``scene_pos`` (sockets are painted by their node)."""
        r = 10.0
        probe = QRectF(scene_pos.x() - r, scene_pos.y() - r, 2 * r, 2 * r)
        for item in self.scene().items(probe, Qt.ItemSelectionMode.IntersectsItemBoundingRect):
            if isinstance(item, NodeItem):
                sock = item.socket_at(scene_pos)
                if sock is not None:
                    return sock
        return None


    def mousePressEvent(self, event) -> None:  # noqa: N802
        pos = event.position().toPoint()
        scene_pos = self.mapToScene(pos)
        button = event.button()
        mods = event.modifiers()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self.space_held):
            self.mode = PanMode(self, pos)
            event.accept()
            return
        if button == Qt.MouseButton.RightButton:
            if mods & Qt.KeyboardModifier.ControlModifier:
                self.mode = EdgeCutMode(self, scene_pos)
            else:
                self._right_press, self._right_moved = pos, False
            event.accept()
            return
        if button == Qt.MouseButton.LeftButton:
            sock = self.socket_at(scene_pos)
            if sock is not None:
                self.mode = EdgeDragMode(self, sock)
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position().toPoint()
        self.last_scene_pos = self.mapToScene(pos)
        if self.mode is not None:
            self.mode.move(event)
            event.accept()
            return
        if self._right_press is not None:
            if (pos - self._right_press).manhattanLength() > 4 or self._right_moved:
                if not self._right_moved:
                    self._right_moved = True
                    self.mode = PanMode(self, self._right_press)
                self.mode.move(event)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self.mode is not None:
            mode, self.mode = self.mode, None
            mode.release(event)
            self._right_press = None
            event.accept()
            return
        if event.button() == Qt.MouseButton.RightButton and self._right_press is not None:
            self._right_press = None
            if not self._right_moved:
                self.context_menu_requested.emit(event.position().toPoint())
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        pos = event.position().toPoint()
        scene_pos = self.mapToScene(pos)
        if event.button() != Qt.MouseButton.LeftButton:
            return
        item = self.itemAt(pos)
        if isinstance(item, LinkItem):
            self.reroute_requested.emit(item.link_id, (scene_pos.x() - 9, scene_pos.y() - 9))
            event.accept()
            return
        if item is None or (isinstance(item, FrameItem) and not item.title_rect().contains(
                item.mapFromScene(scene_pos))):
            self.open_search(scene_pos)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802
        # Menus open from mouseReleaseEvent (a right click, not a right drag) only.
        if event.reason() != event.Reason.Mouse:
            self.context_menu_requested.emit(event.pos())
        event.accept()

    # ----- keys -----------------------------------------------------------------------
    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat() and self.scene().focusItem() is None:
            self.space_held = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat() and self.space_held:
            self.space_held = False
            self.viewport().unsetCursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802
        self.space_held = False
        super().focusOutEvent(event)

    def tab_pressed(self) -> None:
        """Tab opens the search, unless a node's widget is being edited: then it moves on."""
        focus = self.scene().focusItem()
        if isinstance(focus, QGraphicsProxyWidget) and focus.widget() is not None:
            current = focus.widget().focusWidget()
            nxt = current.nextInFocusChain() if current is not None else None
            if nxt is not None:
                nxt.setFocus(Qt.FocusReason.TabFocusReason)
            return
        self.open_search()

    EMPTY_HINT = ("Tab or double-click to add a node\nright-click → Add for every node by category\n"
                  "drop a workflow (.json, ours or ComfyUI's) or an image that carries one (.png, .webp) to open it")

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        """An empty canvas says how to start."""
        scene = self.scene()
        if scene is None or getattr(scene, "graph", None) is None or scene.graph.nodes:
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor("#8d939c"))  # the search popup's hint grey: readable, not loud
        painter.drawText(self.viewport().rect(), int(Qt.AlignmentFlag.AlignCenter), self.EMPTY_HINT)
        painter.restore()

    # ----- search popup ---------------------------------------------------------------
    def cursor_scene_pos(self) -> QPointF:
        """Where the mouse last was over the canvas (paste / add at cursor), else the centre."""
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        if visible.contains(self.last_scene_pos):
            return QPointF(self.last_scene_pos)
        return self.center()

    def open_search(self, scene_pos: QPointF | None = None, wire=None):
        if scene_pos is None:
            scene_pos = self.cursor_scene_pos()
        types = addable_types(self.scene().graph.registry, wire)
        title = "Add node" if wire is None else f"Add node taking {wire[3]}" if wire[2] \
            else f"Add node giving {wire[3]}"
        popup = SearchPopup(types, self, title, self.search_usage)
        popup.chosen.connect(lambda type_id: self.add_node_requested.emit(
            type_id, (scene_pos.x(), scene_pos.y()), wire))
        self.search_popup = popup
        popup.show_at(self.viewport().mapToGlobal(self.mapFromScene(scene_pos)))
        return popup

    # ----- file drops -----------------------------------------------------------------
    @staticmethod
    def _dropped_path(event) -> str | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            path = url.toLocalFile()
            if Path(path).suffix.lower() in (".json", ".png", ".webp"):
                return path
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self._dropped_path(event) or event.mimeData().hasFormat(NODE_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        mime = event.mimeData()
        if mime.hasFormat(NODE_MIME):  # a node from the library, placed where it was let go
            event.acceptProposedAction()
            at = self.mapToScene(event.position().toPoint())
            self.add_node_requested.emit(bytes(mime.data(NODE_MIME)).decode(), (at.x(), at.y()), None)
            return
        path = self._dropped_path(event)
        if path:
            event.acceptProposedAction()
            self.file_dropped.emit(path)
        else:
            event.ignore()

"""The canvas view: pan/zoom and interaction modes.

Each mode is a small helper class (edge drag, edge cut, pan) selected by :class:`Mode`;
rubber-band selection and node moving are Qt's own. The view turns gestures into
requests on the controller; it never edits the model.
"""

from __future__ import annotations

import enum
from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsProxyWidget, QGraphicsView, QMenu

from graphs import ANY

from . import (
    theme,
)
from .controller import COLORS
from .frame_item import FrameItem
from .link_item import DragWire, LinkItem
from .node_item import NodeItem
from .socket_item import SocketItem


class Mode(enum.Enum):
    IDLE = 0
    EDGE_DRAG = 1
    EDGE_CUT = 2
    PAN = 3


class PanMode:
    def __init__(self, view: GraphView, pos: QPoint) -> None:
        self.view, self.last = view, pos
        view.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)

    def move(self, event) -> None:
        delta = event.position().toPoint() - self.last
        self.last = event.position().toPoint()
        self.view.horizontalScrollBar().setValue(self.view.horizontalScrollBar().value() - delta.x())
        self.view.verticalScrollBar().setValue(self.view.verticalScrollBar().value() - delta.y())

    def release(self, event) -> None:
        self.view.viewport().unsetCursor()


class EdgeCutMode:
    """Ctrl+right-drag: a dashed line; links it crosses are removed on release."""

    def __init__(self, view: GraphView, scene_pos: QPointF) -> None:
        self.view = view
        self.points = [scene_pos]
        self.item = QGraphicsPathItem()
        self.item.setPen(QPen(QColor("#ff6b6b"), 1.5, Qt.PenStyle.DashLine))
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
            self.view.controller.disconnect(cut)


class EdgeDragMode:
    """Drag from a socket: compatible sockets light up, the rest dim; drop connects.

    Dragging from a connected input picks up its link (drop elsewhere to re-plug it,
    on empty canvas to remove it).
    """

    SNAP = 18.0

    def __init__(self, view: GraphView, socket: SocketItem) -> None:
        self.view = view
        scene = view.scene()
        graph = scene.graph
        self.detached = None
        if not socket.is_output:
            link = graph.inbound(socket.node_id, socket.name)
            if link is not None:
                self.detached = link
                item = scene.link_items.get(link.id)
                if item is not None:
                    item.setVisible(False)
                socket = scene.node_items[link.src_node].outputs[link.src_output]
        self.origin = socket
        if socket.is_output:
            self.type = graph.output_type(socket.node_id, socket.name)
        else:
            self.type = graph.input_type(socket.node_id, socket.name)
        self.wire = DragWire(socket.color)
        scene.addItem(self.wire)
        self.wire.set_ends(socket.scenePos(), socket.scenePos(), socket.is_output)
        self._mark_compatible()

    def _related(self) -> set[str]:
        """Nodes a new link from the origin would make a cycle with."""
        graph = self.view.scene().graph
        forward = not self.origin.is_output  # from an input: its descendants are forbidden
        adjacency: dict[str, list[str]] = {}
        for ln in graph.links.values():
            a, b = (ln.src_node, ln.dst_node) if forward else (ln.dst_node, ln.src_node)
            adjacency.setdefault(a, []).append(b)
        seen, stack = {self.origin.node_id}, [self.origin.node_id]
        while stack:
            for nxt in adjacency.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def _mark_compatible(self) -> None:
        scene = self.view.scene()
        graph = scene.graph
        sockets_reg = graph.registry.sockets
        forbidden = self._related()
        self.hot: list[SocketItem] = []
        for item in scene.node_items.values():
            bad_node = item.node_id in forbidden
            if self.origin.is_output:
                own, other = item.inputs, item.outputs
            else:
                own, other = item.outputs, item.inputs
            for sock in other.values():
                sock.set_state("dim")
            for sock in own.values():
                if bad_node:
                    sock.set_state("dim")
                    continue
                if self.origin.is_output:
                    their = (graph.input_type(item.node_id, sock.name) if sock.socket_type == ANY
                             else sock.socket_type)
                    ok = sockets_reg.compatible(self.type, their)
                else:
                    their = (graph.output_type(item.node_id, sock.name) if sock.socket_type == ANY
                             else sock.socket_type)
                    ok = sockets_reg.compatible(their, self.type)
                sock.set_state("hot" if ok else "dim")
                if ok:
                    self.hot.append(sock)
        self.origin.set_state("normal")

    def target_at(self, scene_pos: QPointF) -> SocketItem | None:
        best, best_d = None, self.SNAP
        for sock in self.hot:
            d = (sock.scenePos() - scene_pos).manhattanLength()
            if d < best_d:
                best, best_d = sock, d
        return best

    def any_socket_at(self, scene_pos: QPointF) -> SocketItem | None:
        sock = self.view.socket_at(scene_pos)
        return sock if sock is not self.origin else None

    def move(self, event) -> None:
        pos = self.view.mapToScene(event.position().toPoint())
        target = self.target_at(pos)
        end = target.scenePos() if target is not None else pos
        self.wire.set_ends(self.origin.scenePos(), end, self.origin.is_output)

    def release(self, event) -> None:
        pos = self.view.mapToScene(event.position().toPoint())
        self.finish_at(pos)

    def finish_at(self, pos: QPointF) -> None:
        view, scene = self.view, self.view.scene()
        controller = view.controller
        target = self.target_at(pos)
        self._cleanup()
        if target is not None:
            src, dst = (self.origin, target) if self.origin.is_output else (target, self.origin)
            controller.connect(src.node_id, src.name, dst.node_id, dst.name, detached=self.detached)
            return
        other = self.any_socket_at(pos)
        if other is not None and other.is_output != self.origin.is_output:
            src, dst = (self.origin, other) if self.origin.is_output else (other, self.origin)
            ok, why = scene.graph.can_connect(src.node_id, src.name, dst.node_id, dst.name)
            controller.status(f"Cannot connect: {why}" if not ok else "")
            if ok:
                controller.connect(src.node_id, src.name, dst.node_id, dst.name, detached=self.detached)
            return
        if self.detached is not None:
            controller.disconnect([self.detached.id])
            return
        under = [i for i in scene.items(pos) if isinstance(i, NodeItem)]
        if under:  # dropped on a node's body: plug into its first compatible socket
            node_item = under[0]
            hot = [sock for sock in self.hot if sock.node_item is node_item]
            free = [sock for sock in hot if not sock.connected]
            if hot:
                sock = (free or hot)[0]  # rather an empty input than replacing a link
                src, dst = (self.origin, sock) if self.origin.is_output else (sock, self.origin)
                controller.connect(src.node_id, src.name, dst.node_id, dst.name, detached=self.detached)
            else:
                controller.status(f"{node_item.node.title} has no socket that fits {self.type}")
            return
        view.open_search(pos, wire=(self.origin.node_id, self.origin.name, self.origin.is_output, self.type))

    def _cleanup(self) -> None:
        scene = self.view.scene()
        scene.removeItem(self.wire)
        for item in scene.node_items.values():
            for sock in list(item.inputs.values()) + list(item.outputs.values()):
                sock.set_state("normal")
        if self.detached is not None:
            link_item = scene.link_items.get(self.detached.id)
            if link_item is not None:
                link_item.setVisible(True)


class GraphView(QGraphicsView):
    zoom_changed = Signal(float)

    def __init__(self, scene, controller, parent=None) -> None:
        super().__init__(scene, parent)
        self.controller = controller
        self.mode = Mode.IDLE
        self.helper = None
        self.space_held = False
        self.last_scene_pos = QPointF(0, 0)
        self._right_press: QPoint | None = None
        self._right_moved = False
        self.search_popup = None
        self.context_menu: QMenu | None = None
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

    def _start(self, mode: Mode, helper) -> None:
        self.mode, self.helper = mode, helper

    def mousePressEvent(self, event) -> None:  # noqa: N802
        pos = event.position().toPoint()
        scene_pos = self.mapToScene(pos)
        button = event.button()
        mods = event.modifiers()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self.space_held):
            self._start(Mode.PAN, PanMode(self, pos))
            event.accept()
            return
        if button == Qt.MouseButton.RightButton:
            if mods & Qt.KeyboardModifier.ControlModifier:
                self._start(Mode.EDGE_CUT, EdgeCutMode(self, scene_pos))
            else:
                self._right_press, self._right_moved = pos, False
            event.accept()
            return
        if button == Qt.MouseButton.LeftButton:
            sock = self.socket_at(scene_pos)
            if sock is not None:
                self._start(Mode.EDGE_DRAG, EdgeDragMode(self, sock))
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position().toPoint()
        self.last_scene_pos = self.mapToScene(pos)
        if self.helper is not None:
            self.helper.move(event)
            event.accept()
            return
        if self._right_press is not None:
            if (pos - self._right_press).manhattanLength() > 4 or self._right_moved:
                if not self._right_moved:
                    self._right_moved = True
                    self._start(Mode.PAN, PanMode(self, self._right_press))
                self.helper.move(event)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self.helper is not None:
            helper, self.helper, self.mode = self.helper, None, Mode.IDLE
            helper.release(event)
            self._right_press = None
            event.accept()
            return
        if event.button() == Qt.MouseButton.RightButton and self._right_press is not None:
            self._right_press = None
            if not self._right_moved:
                self.show_context_menu(event.position().toPoint())
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
            self.controller.insert_reroute(item.link_id, (scene_pos.x() - 9, scene_pos.y() - 9))
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
            self.show_context_menu(event.pos())
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

    # ----- search popup ---------------------------------------------------------------
    def cursor_scene_pos(self) -> QPointF:
        """Where the mouse last was over the canvas (paste / add at cursor), else the centre."""
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        if visible.contains(self.last_scene_pos):
            return QPointF(self.last_scene_pos)
        return self.center()

    def open_search(self, scene_pos: QPointF | None = None, wire=None):
        from .search import SearchPopup
        if scene_pos is None:
            scene_pos = self.cursor_scene_pos()
        types = self.controller.addable_types(wire)
        title = "Add node" if wire is None else f"Add node taking {wire[3]}" if wire[2] \
            else f"Add node giving {wire[3]}"
        popup = SearchPopup(types, self, title)
        popup.chosen.connect(lambda type_id: self.controller.add_node(
            type_id, (scene_pos.x(), scene_pos.y()), wire=wire))
        self.search_popup = popup
        popup.show_at(self.viewport().mapToGlobal(self.mapFromScene(scene_pos)))
        return popup

    # ----- context menu ---------------------------------------------------------------
    def show_context_menu(self, pos: QPoint) -> QMenu:
        scene_pos = self.mapToScene(pos)
        item = self.itemAt(pos)
        while item is not None and not isinstance(item, (NodeItem, LinkItem, FrameItem)):
            item = item.parentItem()
        menu = QMenu(self)
        c = self.controller
        if isinstance(item, NodeItem):
            if not item.isSelected():
                self.scene().select_nodes([item.node_id])
            ids = self.scene().selected_node_ids()
            node = item.node
            menu.addAction("Run to here", lambda: c.run(targets=[item.node_id]))
            menu.addSeparator()
            menu.addAction("Unbypass" if node.flags.get("bypass") else "Bypass",
                           lambda: c.toggle_flag("bypass", ids))
            menu.addAction("Unmute" if node.flags.get("mute") else "Mute", lambda: c.toggle_flag("mute", ids))
            menu.addAction("Expand" if node.flags.get("collapsed") else "Collapse",
                           lambda: c.toggle_collapse(ids))
            menu.addAction("Rename…", lambda: c.rename_node(item.node_id))
            colors = menu.addMenu("Colour")
            for name, value in COLORS.items():
                colors.addAction(name, lambda v=value: c.set_color(v, ids))
            menu.addAction("Duplicate", c.duplicate)
            menu.addAction("Group in frame", c.group)
            menu.addSeparator()
            menu.addAction("Delete", c.delete_selected)
        elif isinstance(item, LinkItem):
            menu.addAction("Insert reroute", lambda: c.insert_reroute(
                item.link_id, (scene_pos.x() - 9, scene_pos.y() - 9)))
            menu.addAction("Delete link", lambda: c.disconnect([item.link_id]))
        elif isinstance(item, FrameItem):
            menu.addAction("Rename frame…", lambda: c.rename_frame(item.frame_id))
            colors = menu.addMenu("Colour")
            for name, value in COLORS.items():
                colors.addAction(name, lambda v=value: c.set_frame_color(item.frame_id, v or "#3a4a5a"))
            menu.addAction("Delete frame", lambda: c.delete_items(frame_ids=[item.frame_id]))
        else:
            menu.addAction("Add node…", lambda: self.open_search(scene_pos))
            menu.addAction("Paste", lambda: c.paste(at=(scene_pos.x(), scene_pos.y())))
            menu.addAction("Frame all", self.frame_all)
        self.context_menu = menu
        menu.popup(self.viewport().mapToGlobal(pos))
        return menu

    # ----- file drops -----------------------------------------------------------------
    @staticmethod
    def _dropped_path(event) -> str | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            path = url.toLocalFile()
            if Path(path).suffix.lower() in (".json", ".png"):
                return path
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self._dropped_path(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if self._dropped_path(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_path(event)
        if path:
            event.acceptProposedAction()
            self.controller.open_dropped(path)
        else:
            event.ignore()

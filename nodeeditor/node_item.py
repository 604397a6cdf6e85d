"""A node on the canvas: header, sockets, inline param widgets, image thumbnail, status badge.

The item mirrors a ``graphs.Node``; its position is the node's ``pos`` (top-left). Its
geometry comes from ``node_layout`` (the type's declarations, never the widgets) and its
look from ``node_painter``; this module holds the item's state, its inline widgets
(created lazily, only for nodes visible at a readable zoom, inside one
``QGraphicsProxyWidget`` per node) and its mouse handling, which emits the scene's
request signals.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QImage, QPainter, QPainterPath
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsProxyWidget,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from graphs import REROUTE, Node, NodeType, Param

from . import theme
from .make_room import push_aside
from .node_layout import MIN_RESIZE_W, NodeLayout, layout_node
from .node_painter import paint_node, paint_reroute
from .socket_item import HIT_RADIUS, SocketItem
from .widgets import ParamEditor, make_editor


class NodeItem(QGraphicsItem):
    def __init__(self, scene, node: Node) -> None:
        super().__init__()
        self.graph_scene = scene
        self.node_id = node.id
        self.links: set = set()
        self.inputs: dict[str, SocketItem] = {}
        self.outputs: dict[str, SocketItem] = {}
        self.layout = NodeLayout(theme.NODE_WIDTH, theme.HEADER_H)
        self.editors: dict[str, ParamEditor] = {}
        self.proxy: QGraphicsProxyWidget | None = None
        self.badge: tuple[str, str] | None = None  # (state, text)
        self.image: QImage | None = None
        self._image_scaled: QImage | None = None
        self._size_override: tuple[float, float] | None = None  # live, while resizing
        self._resize_from: tuple | None = None
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsMovable
                      | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
                      | QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption)  # exposedRect
        self.setAcceptHoverEvents(True)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setPos(QPointF(*node.pos))
        self._build_sockets()
        self.relayout()
        self.apply_flags()

    # ----- model access ---------------------------------------------------------------
    @property
    def graph(self):
        return self.graph_scene.graph

    @property
    def node(self) -> Node:
        return self.graph.nodes[self.node_id]

    @property
    def node_type(self) -> NodeType:
        return self.graph.node_type(self.node)

    def missing_label(self) -> str:
        """For a placeholder (a type nobody provides): "missing: type (package)"."""
        node_type = self.node_type
        if not node_type.placeholder:
            return ""
        return f"missing: {node_type.type_id}" + (f" ({node_type.package})" if node_type.package else "")

    def is_muted(self) -> bool:
        return bool(self.node.flags.get("mute"))

    # ----- sockets and layout ---------------------------------------------------------
    def _build_sockets(self) -> None:
        node_type = self.node_type
        scene = self.graph_scene
        for socket in node_type.inputs:
            self.inputs[socket.name] = SocketItem(self, socket.name, socket.type, False,
                                                  scene.socket_color(socket.type), socket.optional)
        for param in node_type.params:
            if param.linkable:
                self.inputs[param.name] = SocketItem(self, param.name, param.socket_type, False,
                                                     scene.socket_color(param.socket_type), True)
        for socket in node_type.outputs:
            self.outputs[socket.name] = SocketItem(self, socket.name, socket.type, True,
                                                   scene.socket_color(socket.type))

    @property
    def param_rows(self):
        return self.layout.rows

    def relayout(self) -> None:
        self.prepareGeometryChange()
        image = None if self.image is None else (self.image.width(), self.image.height())
        self.layout = layout_node(self.node_type, self.node, self._size_override or self.node.size, image)
        self._apply_layout()

    def _apply_layout(self) -> None:
        for name, (x, y) in self.layout.inputs.items():
            if name in self.inputs:
                self.inputs[name].setPos(x, y)
        for name, (x, y) in self.layout.outputs.items():
            self.outputs[name].setPos(x, y)
        self._update_bounds()
        self._place_proxy()
        self._update_links()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._bounds

    def _update_bounds(self) -> None:
        m = theme.SOCKET_R + 4
        self._bounds = QRectF(-m, -2, self.layout.width + 2 * m, self.layout.height + 4)

    def body_rect(self) -> QRectF:
        return QRectF(0, 0, self.layout.width, self.layout.height)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.body_rect())
        return path

    def _update_links(self) -> None:
        for link in self.links:
            link.update_path()

    def itemChange(self, change, value):  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged:
            for link in self.links:
                link.update_path()
        return super().itemChange(change, value)

    # ----- inline widgets (lazy) ------------------------------------------------------
    def has_widgets(self) -> bool:
        return self.proxy is not None

    def ensure_widgets(self) -> None:
        if self.proxy is not None or not self.param_rows:
            return
        node = self.node
        container = QWidget()
        container.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        container.setStyleSheet(theme.node_widget_stylesheet())
        layout = QVBoxLayout(container)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        for r in self.layout.rows:
            param, h, companion = r.param, r.height, r.companion
            row = QWidget(container)
            row.setFixedHeight(int(h))
            row_layout = QHBoxLayout(row)
            row_layout.setContentsMargins(0, 0, 0, 0)
            row_layout.setSpacing(4)
            label = QLabel(param.label or param.name.replace("_", " "), row)
            label.setFixedWidth(int(theme.LABEL_W))
            if param.kind == "text":
                label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            row_layout.addWidget(label)
            editor = self._make_editor(param, row)
            row_layout.addWidget(editor.widget, 1)
            if companion is not None:
                comp = self._make_editor(companion, row)
                comp.widget.setFixedWidth(round(theme.scaled(86)))
                row_layout.addWidget(comp.widget)
            layout.addWidget(row)
        layout.addStretch(1)
        self.proxy = QGraphicsProxyWidget(self)
        self.proxy.setWidget(container)
        self.proxy.setZValue(1)
        self.proxy.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._place_proxy()
        self.refresh_linked()
        self.proxy.setVisible(self.graph_scene.widgets_visible and not node.flags.get("collapsed"))

    def _make_editor(self, param: Param, parent: QWidget) -> ParamEditor:
        node_id, name = self.node_id, param.name
        editor = make_editor(param, self.node.params.get(name, param.default),
                             lambda value: self.graph_scene.param_requested.emit(node_id, name, value), parent)
        self.editors[name] = editor
        return editor

    def drop_widgets(self) -> None:
        if self.proxy is not None:
            proxy, self.proxy = self.proxy, None
            self.editors = {}
            if proxy.scene() is not None:
                proxy.scene().removeItem(proxy)
            proxy.deleteLater()

    def _place_proxy(self) -> None:
        if self.proxy is None:
            return
        lay = self.layout
        if not lay.rows:
            self.proxy.setVisible(False)
            return
        self.proxy.setPos(theme.PAD, lay.params_top)
        self.proxy.resize(lay.width - 2 * theme.PAD, lay.params_bottom - lay.params_top - 2)
        self.proxy.setVisible(self.graph_scene.widgets_visible)

    def set_widgets_visible(self, visible: bool) -> None:
        if self.proxy is not None:
            self.proxy.setVisible(visible and not self.node.flags.get("collapsed"))
        self.update()

    def refresh_linked(self) -> None:
        for name, editor in self.editors.items():
            editor.set_enabled(not self.graph.param_overridden(self.node_id, name))
        for name, sock in self.inputs.items():
            connected = self.graph.inbound(self.node_id, name) is not None
            if connected != sock.connected:
                sock.connected = connected
                sock.update()
        self.update()

    # ----- model events ---------------------------------------------------------------
    def on_changed(self, what: str, name: str | None) -> None:
        node = self.node
        edited = what == "params" or (what == "flags" and name in ("bypass", "mute"))
        if edited and self.badge is not None and self.badge[0] in ("done", "cached"):
            self.set_badge("changed", "changed", "edited since the last run: run again to see it")
        if what == "params" and name in self.editors:
            self.editors[name].set_value(node.params[name])
        elif what == "flags":
            self.apply_flags()
            if name == "collapsed":
                self.relayout()
                self.set_widgets_visible(self.graph_scene.widgets_visible)
        elif what == "size":
            self.relayout()
        self.update()

    def apply_flags(self) -> None:
        self.setOpacity(0.45 if self.is_muted() else 1.0)
        for link in self.links:
            link.refresh_dimmed()

    def set_pos_from_model(self) -> None:
        pos = QPointF(*self.node.pos)
        if self.pos() != pos:
            self.setPos(pos)

    def set_badge(self, state: str | None, text: str = "", tooltip: str = "") -> None:
        self.badge = (state, text) if state else None
        self.setToolTip(tooltip)
        self.update()

    def set_image(self, image: QImage | None) -> None:
        before = self.sceneBoundingRect()
        self.image = image
        self._image_scaled = None
        self.relayout()
        self.update()
        push_aside(self.graph_scene, self.node_id, before)  # a taller node covers no neighbour

    # ----- painting (node_painter) ---------------------------------------------------
    def paint(self, painter: QPainter, option, widget=None) -> None:
        paint_node(self, painter, option)

    def scaled_image(self) -> QImage:
        if self._image_scaled is None and self.image is not None:
            size = self.layout.image_rect.size().toSize() * 2
            self._image_scaled = self.image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.SmoothTransformation)
        return self._image_scaled

    # ----- interaction ----------------------------------------------------------------
    def grip_rect(self) -> QRectF:
        return self.layout.grip_rect()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if (event.button() == Qt.MouseButton.LeftButton and event.pos().y() < theme.HEADER_H
                and 6 < event.pos().x() < 24):
            self.graph_scene.collapse_requested.emit(self.node_id)
            event.accept()
            return
        if (event.button() == Qt.MouseButton.LeftButton and not self.node.flags.get("collapsed")
                and self.grip_rect().contains(event.pos())):
            self._resize_from = (event.scenePos(), self.layout.width, self.layout.height)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._resize_from is None:
            super().mouseMoveEvent(event)
            return
        start, w, h = self._resize_from
        delta = event.scenePos() - start
        self._size_override = (max(MIN_RESIZE_W, round(w + delta.x())), max(0.0, round(h + delta.y())))
        self.relayout()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._resize_from is None:
            super().mouseReleaseEvent(event)
            return
        size, self._size_override, self._resize_from = self._size_override, None, None
        if size is None:
            return
        new = (float(size[0]), float(max(size[1], self.layout.natural_height)))
        self.graph_scene.resize_requested.emit(self.node_id, new)
        self.relayout()  # to the model's size: the new one, or the old if it was refused

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if event.pos().y() < theme.HEADER_H and event.pos().x() > 24:
            self.graph_scene.rename_node_requested.emit(self.node_id)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def socket_at(self, scene_pos: QPointF, radius: float = HIT_RADIUS) -> SocketItem | None:
        local = scene_pos - self.pos()
        best, best_d = None, radius
        for sock in list(self.inputs.values()) + list(self.outputs.values()):
            d = (sock._pos - local).manhattanLength()
            if d < best_d:
                best, best_d = sock, d
        return best

    def hoverMoveEvent(self, event) -> None:  # noqa: N802
        sock = self.socket_at(event.scenePos())
        changed = False
        for other in list(self.inputs.values()) + list(self.outputs.values()):
            hover = other is sock
            if other.hover != hover:
                other.hover, changed = hover, True
        if sock is not None:
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.unsetCursor()
        if changed:
            self.update()

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802
        for other in list(self.inputs.values()) + list(self.outputs.values()):
            other.hover = False
        self.unsetCursor()
        self.update()


class RerouteItem(NodeItem):
    """A reroute node drawn as a small dot; its in and out sockets sit on either side."""

    SIZE = 18.0

    def relayout(self) -> None:
        self.prepareGeometryChange()
        s = self.SIZE
        self.layout = NodeLayout(s, s, s, inputs={"in": (0.0, s / 2)}, outputs={"out": (s, s / 2)})
        for sock in (self.inputs["in"], self.outputs["out"]):
            sock.scale = 0.7
        self._apply_layout()

    def ensure_widgets(self) -> None:
        return

    def set_image(self, image: Any) -> None:
        return

    def paint(self, painter: QPainter, option, widget=None) -> None:
        paint_reroute(self, painter, option)


def make_node_item(scene, node: Node) -> NodeItem:
    return RerouteItem(scene, node) if node.type_id == REROUTE else NodeItem(scene, node)

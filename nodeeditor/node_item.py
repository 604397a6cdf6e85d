"""A node on the canvas: header, sockets, inline param widgets, image thumbnail, status badge.

The item mirrors a ``graphs.Node``; its position is the node's ``pos`` (top-left). The
geometry is computed from the node type's declarations, so it does not depend on the
inline widgets, which are created lazily (only for nodes that become visible at a zoom
where they are readable) inside one ``QGraphicsProxyWidget`` per node.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsProxyWidget,
    QHBoxLayout,
    QLabel,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from graphs import REROUTE, Node, NodeType, Param

from . import (
    theme,
)
from .socket_item import HIT_RADIUS, SocketItem
from .widgets import ParamEditor, display_value, make_editor, row_height, seed_control


class NodeItem(QGraphicsItem):
    def __init__(self, scene, node: Node) -> None:
        super().__init__()
        self.graph_scene = scene
        self.node_id = node.id
        self.links: set = set()
        self.inputs: dict[str, SocketItem] = {}
        self.outputs: dict[str, SocketItem] = {}
        self.param_rows: list[tuple[Param, float, float, Param | None]] = []
        self.editors: dict[str, ParamEditor] = {}
        self.proxy: QGraphicsProxyWidget | None = None
        self.badge: tuple[str, str] | None = None  # (state, text)
        self.image: QImage | None = None
        self._image_scaled: QImage | None = None
        self._width = theme.NODE_WIDTH
        self._height = theme.HEADER_H
        self._size_override: tuple[float, float] | None = None  # live, while resizing
        self._resize_from: tuple | None = None
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsMovable
                      | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
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
        self._companions = set()
        for param in node_type.params:
            companion = seed_control(node_type, param)
            if companion is not None:
                self._companions.add(companion.name)
        for param in node_type.params:
            if param.linkable:
                self.inputs[param.name] = SocketItem(self, param.name, param.socket_type, False,
                                                     scene.socket_color(param.socket_type), True)
        for socket in node_type.outputs:
            self.outputs[socket.name] = SocketItem(self, socket.name, socket.type, True,
                                                   scene.socket_color(socket.type))

    def relayout(self) -> None:
        self.prepareGeometryChange()
        node = self.node
        node_type = self.node_type
        default = theme.NODE_WIDTH + (50.0 if self._companions else 0.0)
        size = self._size_override or node.size
        width = size[0] if size else default
        self._width = width
        collapsed = bool(node.flags.get("collapsed"))
        mid = theme.HEADER_H / 2
        if collapsed:
            for sock in self.inputs.values():
                sock.setPos(0, mid)
            for sock in self.outputs.values():
                sock.setPos(width, mid)
            self._height = theme.HEADER_H
            self.param_rows = []
            self._update_bounds()
            self._place_proxy()
            self._update_links()
            return
        y = theme.HEADER_H + 4
        n_rows = max(len(node_type.inputs), len(node_type.outputs))
        for i, socket in enumerate(node_type.inputs):
            self.inputs[socket.name].setPos(0, y + i * theme.SOCKET_ROW_H + theme.SOCKET_ROW_H / 2)
        for i, socket in enumerate(node_type.outputs):
            self.outputs[socket.name].setPos(width, y + i * theme.SOCKET_ROW_H + theme.SOCKET_ROW_H / 2)
        y += n_rows * theme.SOCKET_ROW_H
        if n_rows and node_type.params:
            y += 4
        self.param_rows = []
        self._params_top = y
        for param in node_type.params:
            if param.name in self._companions:
                continue
            h = row_height(param)
            companion = seed_control(node_type, param)
            self.param_rows.append((param, y, h, companion))
            if param.name in self.inputs:
                self.inputs[param.name].setPos(0, y + min(h, 22) / 2)
            y += h + 2
        self._params_bottom = y
        if self.image is not None:
            avail = width - 2 * theme.PAD
            scale = min(avail / max(1, self.image.width()), 220 / max(1, self.image.height()))
            w, h = self.image.width() * scale, self.image.height() * scale
            self._image_rect = QRectF((width - w) / 2, y + 4, w, h)
            y += h + 8
        y += 6
        self._natural_height = y
        if size and size[1] > y:
            y = size[1]
        self._height = y
        self._update_bounds()
        self._place_proxy()
        self._update_links()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._bounds

    def _update_bounds(self) -> None:
        m = theme.SOCKET_R + 4
        self._bounds = QRectF(-m, -2, self._width + 2 * m, self._height + 4)

    def body_rect(self) -> QRectF:
        return QRectF(0, 0, self._width, self._height)

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
        for param, _y, h, companion in self.param_rows:
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
                comp.widget.setFixedWidth(86)
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
                             lambda value: self.graph_scene.request_param(node_id, name, value), parent)
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
        if not self.param_rows:
            self.proxy.setVisible(False)
            return
        self.proxy.setPos(theme.PAD, self._params_top)
        height = self._params_bottom - self._params_top - 2
        self.proxy.resize(self._width - 2 * theme.PAD, height)
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
        self.image = image
        self._image_scaled = None
        self.relayout()
        self.update()

    # ----- painting -------------------------------------------------------------------
    def paint(self, painter: QPainter, option, widget=None) -> None:
        node = self.node
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        rect = self.body_rect()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        failed = self.badge is not None and self.badge[0] == "failed"
        header_color = QColor(node.color) if node.color else theme.NODE_HEADER
        if node.flags.get("bypass"):
            header_color = theme.BYPASS
        missing = self.missing_label()
        if missing:
            header_color = theme.MISSING
        if lod < theme.LOD_TEXT:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            painter.fillRect(rect, theme.NODE_BODY)
            painter.fillRect(QRectF(0, 0, rect.width(), theme.HEADER_H), header_color)
            if selected or failed:
                painter.setPen(QPen(theme.FAILED if failed else theme.NODE_SELECTED, 3 / max(lod, 0.05)))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRect(rect)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        radius = 6.0
        body = QPainterPath()
        body.addRoundedRect(rect, radius, radius)
        painter.fillPath(body, theme.NODE_BODY)
        header = QPainterPath()
        header_rect = QRectF(0, 0, rect.width(), theme.HEADER_H)
        header.addRoundedRect(header_rect, radius, radius)
        if not node.flags.get("collapsed"):
            header.addRect(QRectF(0, theme.HEADER_H - radius, rect.width(), radius))
        painter.fillPath(header.simplified(), header_color)
        if node.flags.get("bypass"):
            painter.fillPath(body, QColor(122, 79, 176, 50))
        # title and collapse arrow
        painter.setPen(theme.TEXT)
        painter.setFont(theme.font(9.5, True))
        arrow = "▸" if node.flags.get("collapsed") else "▾"
        painter.drawText(QRectF(9, 0, 14, theme.HEADER_H), Qt.AlignmentFlag.AlignVCenter, arrow)
        badge_w = self._paint_badge(painter) if self.badge else 0.0
        metrics = QFontMetrics(theme.font(9.5, True))
        title = metrics.elidedText(missing or node.title, Qt.TextElideMode.ElideRight,
                                   int(rect.width() - 34 - badge_w))
        painter.drawText(QRectF(25, 0, rect.width() - 34 - badge_w, theme.HEADER_H),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, title)
        if not node.flags.get("collapsed"):
            self._paint_rows(painter, lod)
            if self.image is not None:
                painter.drawImage(self._image_rect, self._scaled_image())
            g = self.grip_rect()
            painter.setPen(QPen(QColor("#5a616b"), 1.2))
            for i in (4, 8):
                painter.drawLine(QPointF(g.right() - i, g.bottom() - 2),
                                 QPointF(g.right() - 2, g.bottom() - i))
        border = theme.FAILED if failed else (theme.NODE_SELECTED if selected else theme.NODE_BORDER)
        painter.setPen(QPen(border, 2.2 if (selected or failed) else 1.0))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(body)
        self.paint_sockets(painter)

    def paint_sockets(self, painter: QPainter) -> None:
        for sock in self.inputs.values():
            sock.paint(painter)
        for sock in self.outputs.values():
            sock.paint(painter)

    def _scaled_image(self) -> QImage:
        if self._image_scaled is None and self.image is not None:
            size = self._image_rect.size().toSize() * 2
            self._image_scaled = self.image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.SmoothTransformation)
        return self._image_scaled

    def _paint_badge(self, painter: QPainter) -> float:
        state, text = self.badge
        painter.setFont(theme.font(8))
        metrics = QFontMetrics(theme.font(8))
        w = metrics.horizontalAdvance(text) + 12
        r = QRectF(self._width - w - 6, 5, w, theme.HEADER_H - 10)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(theme.BADGE_COLORS.get(state, theme.TEXT_DIM)))
        painter.drawRoundedRect(r, 7, 7)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
        painter.setFont(theme.font(9.5, True))
        return w + 6

    def _paint_rows(self, painter: QPainter, lod: float) -> None:
        node_type = self.node_type
        painter.setFont(theme.font(8.5))
        painter.setPen(theme.TEXT_DIM)
        y = theme.HEADER_H + 4
        for i, socket in enumerate(node_type.inputs):
            painter.drawText(QRectF(12, y + i * theme.SOCKET_ROW_H, self._width / 2, theme.SOCKET_ROW_H),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             socket.label or socket.name)
        for i, socket in enumerate(node_type.outputs):
            painter.drawText(QRectF(self._width / 2 - 12, y + i * theme.SOCKET_ROW_H, self._width / 2,
                                    theme.SOCKET_ROW_H),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                             socket.label or socket.name)
        live = self.proxy is not None and self.proxy.isVisible()
        if live:
            return
        params = self.node.params
        for param, py, h, companion in self.param_rows:
            painter.setPen(theme.TEXT_DIM)
            painter.drawText(QRectF(theme.PAD, py, theme.LABEL_W, min(h, 22)),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             param.label or param.name.replace("_", " "))
            box = QRectF(theme.PAD + theme.LABEL_W + 4, py + 1,
                         self._width - 2 * theme.PAD - theme.LABEL_W - 4, h - 2)
            if lod >= 0.45:
                painter.setPen(QPen(QColor("#3f444c"), 1))
                painter.setBrush(QColor("#1f2226"))
                painter.drawRoundedRect(box, 3, 3)
            linked = self.graph.param_overridden(self.node_id, param.name)
            value = "(linked)" if linked else display_value(param, params.get(param.name, param.default))
            if companion is not None and not linked:
                value += f"  [{params.get(companion.name, companion.default)}]"
            painter.setPen(theme.TEXT_DIM if linked else theme.TEXT)
            flags = Qt.AlignmentFlag.AlignLeft | (Qt.AlignmentFlag.AlignTop if param.kind == "text"
                                                  else Qt.AlignmentFlag.AlignVCenter)
            if param.kind == "text" and not linked:
                flags |= Qt.TextFlag.TextWordWrap
                value = str(params.get(param.name, param.default))[:200]
            painter.drawText(box.adjusted(4, 2, -4, -2), flags, value)

    # ----- interaction ----------------------------------------------------------------
    def grip_rect(self) -> QRectF:
        return QRectF(self._width - 12, self._height - 12, 12, 12)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if (event.button() == Qt.MouseButton.LeftButton and event.pos().y() < theme.HEADER_H
                and 6 < event.pos().x() < 24):
            self.graph_scene.request_toggle_collapse(self.node_id)
            event.accept()
            return
        if (event.button() == Qt.MouseButton.LeftButton and not self.node.flags.get("collapsed")
                and self.grip_rect().contains(event.pos())):
            self._resize_from = (event.scenePos(), self._width, self._height, self.node.size)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._resize_from is None:
            super().mouseMoveEvent(event)
            return
        start, w, h, _old = self._resize_from
        delta = event.scenePos() - start
        self._size_override = (max(160.0, round(w + delta.x())), max(0.0, round(h + delta.y())))
        self.relayout()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._resize_from is None:
            super().mouseReleaseEvent(event)
            return
        size, self._size_override, self._resize_from = self._size_override, None, None
        if size is None:
            return
        new = (float(size[0]), float(max(size[1], self._natural_height)))
        if self.graph_scene.controller is not None:
            if not self.graph_scene.controller.resize_node(self.node_id, new):
                self.relayout()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if event.pos().y() < theme.HEADER_H and event.pos().x() > 24 and \
                self.graph_scene.controller is not None:
            self.graph_scene.controller.rename_node(self.node_id)
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
        self._width = self._height = self.SIZE
        self.param_rows = []
        self.inputs["in"].setPos(0, self.SIZE / 2)
        self.outputs["out"].setPos(self.SIZE, self.SIZE / 2)
        for sock in (self.inputs["in"], self.outputs["out"]):
            sock.scale = 0.7
        self._update_bounds()
        self._update_links()

    def ensure_widgets(self) -> None:
        return

    def set_image(self, image: Any) -> None:
        return

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        color = self.outputs["out"].color
        painter.setPen(QPen(theme.NODE_SELECTED if selected else QColor("#101214"), 2 if selected else 1))
        painter.setBrush(QColor(color))
        r = self.SIZE / 2 - 2
        painter.drawEllipse(QPointF(self.SIZE / 2, self.SIZE / 2), r, r)
        self.paint_sockets(painter)


def make_node_item(scene, node: Node) -> NodeItem:
    return RerouteItem(scene, node) if node.type_id == REROUTE else NodeItem(scene, node)

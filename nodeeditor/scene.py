"""The canvas scene: mirrors the model's events with node, link and frame items.

The scene never changes the model itself. User gestures on its items that edit the graph
are emitted as ``*_requested`` signals, which the controller turns into commands; the
resulting model events come back here (one handler per event class) and update the items.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QLineF, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsScene

from graphs import REROUTE, Graph
from graphs import events as ev

from . import (
    theme,
)
from .bridge import GraphBridge
from .frame_item import FrameItem
from .link_item import LinkItem
from .node_item import NodeItem, make_node_item


class GraphScene(QGraphicsScene):
    view_changed = Signal(object)  # the model's View, after load / set_view
    structure_changed = Signal()
    # Gestures on items, for the controller to turn into commands.
    param_requested = Signal(str, str, object)  # node id, param name, value
    collapse_requested = Signal(str)  # node id
    move_requested = Signal(object, object)  # {node id: (old, new)}, {frame id: (old, new)}
    insert_requested = Signal(str, str, object)  # node id, link id, its moves: splice it in
    resize_requested = Signal(str, object)  # node id, (w, h)
    rename_node_requested = Signal(str)
    rename_frame_requested = Signal(str)

    def __init__(self, graph: Graph, parent=None) -> None:
        super().__init__(parent)
        self.graph = graph
        self.node_items: dict[str, NodeItem] = {}
        self.link_items: dict[str, LinkItem] = {}
        self.frame_items: dict[str, FrameItem] = {}
        self.widgets_visible = True
        self._press_positions: dict[NodeItem, QPointF] = {}
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        self.setSceneRect(QRectF(-50000, -50000, 100000, 100000))
        self._colors: dict[str, QColor] = {}
        self.bridge = GraphBridge(graph, self)
        self.on_event = ev.Dispatcher({
            ev.NodeAdded: self._node_added, ev.NodeRemoved: self._node_removed,
            ev.NodeMoved: self._node_moved, ev.NodeChanged: self._node_changed,
            ev.LinkAdded: self._link_added, ev.LinkRemoved: self._link_removed,
            ev.FrameAdded: self._frame_added, ev.FrameRemoved: self._frame_removed,
            ev.FrameChanged: self._frame_changed, ev.ViewChanged: self._view_changed,
            ev.Cleared: self._cleared,
        })
        self.bridge.event.connect(self.on_event)
        self.rebuild()

    # ----- building -------------------------------------------------------------------
    def socket_color(self, type_name: str) -> QColor:
        color = self._colors.get(type_name)
        if color is None:
            try:
                color = QColor(self.graph.registry.sockets.get(type_name).color)
            except KeyError:
                color = theme.SOCKET_FALLBACK
            self._colors[type_name] = color
        return color

    def rebuild(self) -> None:
        for item in list(self.node_items.values()) + list(self.link_items.values()) + \
                list(self.frame_items.values()):
            self.removeItem(item)
        self.node_items.clear()
        self.link_items.clear()
        self.frame_items.clear()
        for frame in self.graph.frames.values():
            self._add_frame(frame)
        for node in self.graph.nodes.values():
            self._add_node(node)
        for link in self.graph.links.values():
            self._add_link(link, refresh=False)
        for item in self.node_items.values():
            item.refresh_linked()
        self._refresh_reroutes()

    def _add_node(self, node) -> NodeItem:
        item = make_node_item(self, node)
        self.addItem(item)
        self.node_items[node.id] = item
        return item

    def _add_link(self, link, refresh: bool = True) -> LinkItem | None:
        src_item = self.node_items.get(link.src_node)
        dst_item = self.node_items.get(link.dst_node)
        if src_item is None or dst_item is None:
            return None
        src = src_item.outputs.get(link.src_output)
        dst = dst_item.inputs.get(link.dst_input)
        if src is None or dst is None:
            return None
        color = self.socket_color(self.graph.output_type(link.src_node, link.src_output))
        item = LinkItem(link.id, src, dst, color)
        self.addItem(item)
        self.link_items[link.id] = item
        src_item.links.add(item)
        dst_item.links.add(item)
        item.refresh_dimmed()
        if refresh:
            dst_item.refresh_linked()
            src.connected = True
            src.update()
        return item

    def _add_frame(self, frame) -> FrameItem:
        item = FrameItem(self, frame)
        self.addItem(item)
        self.frame_items[frame.id] = item
        return item

    def _refresh_reroutes(self) -> None:
        reroutes = [n for n in self.graph.nodes.values() if n.type_id == REROUTE]
        if not reroutes:
            return
        for node in reroutes:
            item = self.node_items.get(node.id)
            if item is None:
                continue
            out_type = self.graph.output_type(node.id, "out")
            if out_type == "*":
                out_type = self.graph.input_type(node.id, "in")
            color = self.socket_color(out_type)
            item.inputs["in"].set_color(color)
            item.outputs["out"].set_color(color)
            item.update()
            for link in item.links:
                link.set_color(self.socket_color(
                    self.graph.output_type(link.src.node_id, link.src.name)))

    # ----- model events ---------------------------------------------------------------
    def _node_added(self, e: ev.NodeAdded) -> None:
        self._add_node(e.node)
        self.structure_changed.emit()

    def _node_removed(self, e: ev.NodeRemoved) -> None:
        item = self.node_items.pop(e.node.id, None)
        if item is not None:
            item.drop_widgets()
            self.removeItem(item)
        self.structure_changed.emit()

    def _node_moved(self, e: ev.NodeMoved) -> None:
        item = self.node_items.get(e.node.id)
        if item is not None:
            item.set_pos_from_model()

    def _node_changed(self, e: ev.NodeChanged) -> None:
        item = self.node_items.get(e.node.id)
        if item is not None:
            item.on_changed(e.what, e.name)

    def _link_added(self, e: ev.LinkAdded) -> None:
        self._add_link(e.link)
        self._refresh_reroutes()

    def _link_removed(self, e: ev.LinkRemoved) -> None:
        item = self.link_items.pop(e.link.id, None)
        if item is not None:
            item.src.node_item.links.discard(item)
            item.dst.node_item.links.discard(item)
            self.removeItem(item)
            item.src.connected = any(ln.src is item.src for ln in item.src.node_item.links)
            item.src.update()
        dst = self.node_items.get(e.link.dst_node)
        if dst is not None:
            dst.refresh_linked()
        self._refresh_reroutes()

    def _frame_added(self, e: ev.FrameAdded) -> None:
        self._add_frame(e.frame)

    def _frame_removed(self, e: ev.FrameRemoved) -> None:
        item = self.frame_items.pop(e.frame.id, None)
        if item is not None:
            self.removeItem(item)

    def _frame_changed(self, e: ev.FrameChanged) -> None:
        item = self.frame_items.get(e.frame.id)
        if item is not None:
            item.sync()

    def _view_changed(self, e: ev.ViewChanged) -> None:
        self.view_changed.emit(e.view)

    def _cleared(self, e: ev.Cleared) -> None:
        for item in self.node_items.values():
            item.drop_widgets()
        self.clear()
        self.node_items.clear()
        self.link_items.clear()
        self.frame_items.clear()
        self.structure_changed.emit()

    # ----- selection (view state) -----------------------------------------------------
    def selected_node_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_link_ids(self) -> list[str]:
        return [i.link_id for i in self.selectedItems() if isinstance(i, LinkItem)]

    def selected_frame_ids(self) -> list[str]:
        return [i.frame_id for i in self.selectedItems() if isinstance(i, FrameItem)]

    def select_nodes(self, node_ids) -> None:
        self.clearSelection()
        for node_id in node_ids:
            item = self.node_items.get(node_id)
            if item is not None:
                item.setSelected(True)

    def items_rect(self, selected_only: bool = False) -> QRectF:
        items = [i for i in list(self.node_items.values()) + list(self.frame_items.values())
                 if not selected_only or i.isSelected()]
        rect = QRectF()
        for item in items:
            rect = rect.united(item.sceneBoundingRect())
        return rect

    # ----- level of detail ------------------------------------------------------------
    def set_widgets_visible(self, visible: bool) -> None:
        if visible == self.widgets_visible:
            return
        self.widgets_visible = visible
        for item in self.node_items.values():
            item.set_widgets_visible(visible)

    # ----- moving nodes: one command on release ---------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        super().mousePressEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self._press_positions = {i: i.pos() for i in self.selectedItems() if isinstance(i, NodeItem)}

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        super().mouseReleaseEvent(event)
        if event.button() != Qt.MouseButton.LeftButton or not self._press_positions:
            return
        pressed, self._press_positions = self._press_positions, {}
        moves = {}
        for item, start in pressed.items():
            if item.scene() is self and item.pos() != start:
                moves[item.node_id] = (tuple(start.toTuple()), tuple(item.pos().toTuple()))
        if not moves:
            return
        alt = bool(event.modifiers() & Qt.KeyboardModifier.AltModifier)
        if len(moves) == 1 and not alt:
            node_id = next(iter(moves))
            link_id = self.link_under_node(node_id)
            if link_id is not None:
                self.insert_requested.emit(node_id, link_id, moves)
                return
        self.move_requested.emit(moves, {})

    def link_under_node(self, node_id: str) -> str | None:
        """A link passing under the centre of an unconnected node (for drop-to-insert)."""
        item = self.node_items[node_id]
        if item.links:
            return None
        center = item.sceneBoundingRect().center()
        probe = QRectF(center.x() - 6, center.y() - 6, 12, 12)
        for other in self.items(probe):
            if isinstance(other, LinkItem):
                return other.link_id
        return None

    # ----- background grid ------------------------------------------------------------
    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        painter.fillRect(rect, theme.BACKGROUND)
        lod = painter.worldTransform().m11()
        for step, color, min_lod in ((20, theme.GRID_MINOR, 0.6), (100, theme.GRID_MAJOR, 0.12)):
            if lod < min_lod:
                continue
            left = math.floor(rect.left() / step) * step
            top = math.floor(rect.top() / step) * step
            lines = []
            x = left
            while x < rect.right():
                lines.append(QLineF(x, rect.top(), x, rect.bottom()))
                x += step
            y = top
            while y < rect.bottom():
                lines.append(QLineF(rect.left(), y, rect.right(), y))
                y += step
            painter.setPen(QPen(color, 0))
            painter.drawLines(lines)

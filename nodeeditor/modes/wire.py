"""Wire mode: drag from a socket to connect; drop on empty canvas to add a connected node."""

from __future__ import annotations

from PySide6.QtCore import QPointF

from graphs import ANY

from ..link_item import DragWire
from ..node_item import NodeItem
from ..socket_item import SocketItem


class EdgeDragMode:
    """Drag from a socket: compatible sockets light up, the rest dim; drop connects.

    Dragging from a connected input picks up its link (drop elsewhere to re-plug it,
    on empty canvas to remove it).
    """

    SNAP = 18.0

    def __init__(self, view, socket: SocketItem) -> None:
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
        target = self.target_at(pos)
        self._cleanup()
        if target is not None:
            self._connect(target)
            return
        other = self.any_socket_at(pos)
        if other is not None and other.is_output != self.origin.is_output:
            self._connect(other)  # an incompatible one is refused, with the reason shown
            return
        if self.detached is not None:
            view.disconnect_requested.emit([self.detached.id])
            return
        under = [i for i in scene.items(pos) if isinstance(i, NodeItem)]
        if under:  # dropped on a node's body: plug into its first compatible socket
            node_item = under[0]
            hot = [sock for sock in self.hot if sock.node_item is node_item]
            free = [sock for sock in hot if not sock.connected]
            if hot:
                self._connect((free or hot)[0])  # rather an empty input than replacing a link
            else:
                view.say_at_cursor(f"{node_item.node.title} has no socket that fits {self.type}")
            return
        view.open_search(pos, wire=(self.origin.node_id, self.origin.name, self.origin.is_output, self.type))

    def _connect(self, other: SocketItem) -> None:
        src, dst = (self.origin, other) if self.origin.is_output else (other, self.origin)
        self.view.connect_requested.emit(src.node_id, src.name, dst.node_id, dst.name, self.detached)

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

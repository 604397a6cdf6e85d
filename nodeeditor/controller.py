"""Turns the view's and the scene's requests (Qt signals) and the menu actions into
``graphs`` commands on the QUndoStack.

Nothing here edits the model directly: every edit is a command pushed through
:func:`nodeeditor.undo.push`, so undo/redo restore exactly, and a command the model
refuses (first time or on a later redo/undo) is reported through ``status``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication, QUndoStack
from PySide6.QtWidgets import QInputDialog

from graphs import (
    REROUTE,
    AddNodes,
    Command,
    Connect,
    Disconnect,
    Fragment,
    Graph,
    Group,
    Link,
    Macro,
    MoveNodes,
    Paste,
    RemoveItems,
    SetFlags,
    SetFrame,
    SetNodeColor,
    SetNodeSize,
    SetParam,
    SetTitle,
    copy_fragment,
    new_id,
)
from graphs.clipboard import fragment_from_text, fragment_to_text

from .model_defaults import fitting_params
from .search import wire_socket
from .undo import push


class Controller(QObject):
    _clipboard: Fragment | None = None  # shared by every window of the app

    def __init__(self, graph: Graph, stack: QUndoStack, scene, view,
                 status: Callable[[str], None] = lambda message: None, parent=None) -> None:
        super().__init__(parent)
        self.graph, self.stack, self.scene, self.view = graph, stack, scene, view
        self.status = status
        # the settings model file params resolve in (models folder, workflow folder); the window sets it
        self.model_settings: Callable[[], dict] = lambda: {}
        # ask_text(title, label, current) -> str | None; replace in tests
        self.ask_text: Callable[[str, str, str], str | None] = self._ask_text
        scene.param_requested.connect(self.set_param)
        scene.collapse_requested.connect(lambda node_id: self.toggle_collapse([node_id]))
        scene.move_requested.connect(self.move)
        scene.insert_requested.connect(self.insert_into_link)
        scene.resize_requested.connect(self.resize_node)
        scene.rename_node_requested.connect(self.rename_node)
        scene.rename_frame_requested.connect(self.rename_frame)
        view.connect_requested.connect(
            lambda src, out, dst, inp, detached: self.connect(src, out, dst, inp, detached))
        view.disconnect_requested.connect(self.disconnect)
        view.reroute_requested.connect(self.insert_reroute)
        view.add_node_requested.connect(lambda type_id, pos, wire: self.add_node(type_id, pos, wire))

    def _ask_text(self, title: str, label: str, current: str) -> str | None:
        text, ok = QInputDialog.getText(self.view, title, label, text=current)
        return text if ok else None

    def push(self, command: Command) -> bool:
        return push(self.stack, self.graph, command, self._refused) is None

    def _refused(self, command: Command, error: Exception) -> None:
        message = error.args[0] if error.args else str(error)
        self.status(f"Refused: {command.text}: {message}")

    # ----- nodes ----------------------------------------------------------------------
    def add_node(self, type_id: str, pos: tuple[float, float], wire=None,
                 select: bool = True) -> str | None:
        try:
            node = self.graph.create_node(type_id, pos)
        except (KeyError, ValueError) as exc:
            self.status(str(exc))
            return None
        # settings that fit the graph's model (its CFG, its sampler), not the generic defaults
        node.params.update(fitting_params(self.graph, type_id, self.model_settings()))
        links: list[Link] = []
        if wire is not None and wire[0] not in self.graph.nodes:
            wire = None  # the node the wire came from is gone
        if wire is not None:
            other_id, other_name, from_output, _type = wire
            mine = wire_socket(self.graph.registry, self.graph.registry.nodes.get(type_id), wire)
            if mine is not None:
                if from_output:
                    links.append(Link(new_id(), other_id, other_name, node.id, mine))
                else:
                    # place the new node to the left of the input it feeds
                    node.pos = (pos[0] - 260.0, pos[1])
                    links.append(Link(new_id(), node.id, mine, other_id, other_name))
        if not self.push(AddNodes([node], links, text=f"add {node.title}")):
            return None
        if select:
            self.scene.select_nodes([node.id])
        return node.id

    def set_param(self, node_id: str, name: str, value: Any) -> bool:
        if node_id not in self.graph.nodes or self.graph.nodes[node_id].params.get(name) == value:
            return False
        return self.push(SetParam(self.graph, node_id, name, value))

    def rename_node(self, node_id: str, title: str | None = None) -> bool:
        node = self.graph.nodes[node_id]
        if title is None:
            title = self.ask_text("Rename node", "Title:", node.title)
        if not title or title == node.title:
            return False
        return self.push(SetTitle(self.graph, node_id, title))

    def move(self, moves: dict, frame_moves: dict | None = None) -> bool:
        # Consecutive moves of the same nodes merge into one undo step (MoveNodes.merge).
        return self.push(MoveNodes(moves, frame_moves or {}))

    def _targets(self, node_ids) -> list[str]:
        return list(node_ids) if node_ids is not None else self.scene.selected_node_ids()

    def toggle_flag(self, flag: str, node_ids=None) -> bool:
        ids = self._targets(node_ids)
        if not ids:
            self.status(f"Select nodes to {flag}")
            return False
        value = not all(self.graph.nodes[n].flags.get(flag) for n in ids)
        return self.push(SetFlags(self.graph, ids, flag, value))

    def toggle_collapse(self, node_ids=None) -> bool:
        return self.toggle_flag("collapsed", node_ids)

    # ----- links ----------------------------------------------------------------------
    def connect(self, src_node: str, src_output: str, dst_node: str, dst_input: str,
                detached: Link | None = None) -> bool:
        ok, why = self.graph.can_connect(src_node, src_output, dst_node, dst_input)
        if not ok:
            self.view.say_at_cursor(f"Cannot connect: {why}")
            return False
        if detached is not None and (detached.src_node, detached.src_output, detached.dst_node,
                                     detached.dst_input) == (src_node, src_output, dst_node, dst_input):
            return False  # dropped back where it was
        commands: list[Command] = []
        if detached is not None and detached.id in self.graph.links and \
                (detached.dst_node, detached.dst_input) != (dst_node, dst_input):
            commands.append(Disconnect([detached.id]))
        commands.append(Connect(src_node, src_output, dst_node, dst_input))
        self.status("")
        return self.push(commands[0] if len(commands) == 1 else Macro(commands, text="reconnect"))

    def disconnect(self, link_ids: list[str]) -> bool:
        ids = [i for i in link_ids if i in self.graph.links]
        if not ids:
            return False
        return self.push(Disconnect(ids))

    def insert_reroute(self, link_id: str, pos: tuple[float, float]) -> str | None:
        link = self.graph.links.get(link_id)
        if link is None:
            return None
        node = self.graph.create_node(REROUTE, pos)
        ok = self.push(Macro([AddNodes([node]),
                              Connect(link.src_node, link.src_output, node.id, "in"),
                              Connect(node.id, "out", link.dst_node, link.dst_input)],
                             text="insert reroute"))
        return node.id if ok else None

    def insert_into_link(self, node_id: str, link_id: str, moves: dict) -> bool:
        """Drop an unconnected node onto a link: splice it in (with the move, one step)."""
        link = self.graph.links[link_id]
        node_type = self.graph.node_type(node_id)
        sockets = self.graph.registry.sockets
        src_type = self.graph.output_type(link.src_node, link.src_output)
        dst_type = self.graph.input_type(link.dst_node, link.dst_input)
        node = self.graph.nodes[node_id]
        inp = next((s.name for s in node_type.all_inputs() if sockets.compatible(src_type, s.type)), None)
        if node.type_id == REROUTE:
            out = "out"
        else:
            out = next((s.name for s in node_type.outputs if sockets.compatible(s.type, dst_type)), None)
        if inp is None or out is None:
            return self.move(moves)
        return self.push(Macro([MoveNodes(moves), Connect(link.src_node, link.src_output, node_id, inp),
                                Connect(node_id, out, link.dst_node, link.dst_input)],
                               text="insert node"))

    # ----- delete / clipboard -----------------------------------------------------------
    def delete_items(self, node_ids=(), link_ids=(), frame_ids=()) -> bool:
        if not (node_ids or link_ids or frame_ids):
            return False
        return self.push(RemoveItems(list(node_ids), list(link_ids), list(frame_ids)))

    def delete_selected(self) -> bool:
        scene = self.scene
        return self.delete_items(scene.selected_node_ids(), scene.selected_link_ids(),
                                 scene.selected_frame_ids())

    def copy(self) -> bool:
        ids = self.scene.selected_node_ids()
        frames = self.scene.selected_frame_ids()
        if not ids and not frames:
            self.status("Nothing selected to copy")
            return False
        fragment = copy_fragment(self.graph, ids, frames)
        Controller._clipboard = fragment
        # Plain text (workflow JSON): setMimeData with a Python-made QMimeData crashes
        # PySide6 at exit when the clipboard frees an object Python already freed.
        QGuiApplication.clipboard().setText(fragment_to_text(self.graph, fragment))
        self.status(f"Copied {len(ids)} node(s)")
        return True

    def cut(self) -> bool:
        return self.copy() and self.delete_selected()

    def paste(self, at: tuple[float, float] | None = None, keep_input_links: bool = False,
              fragment: Fragment | None = None) -> list[str]:
        fragment = fragment or self._system_clipboard() or Controller._clipboard
        if fragment is None or not fragment.nodes:
            self.status("Clipboard is empty")
            return []
        if at is None and self.view is not None:
            p = self.view.cursor_scene_pos()
            at = (p.x(), p.y())
        registry_ok = [n for n in fragment.nodes if n.type_id in self.graph.registry.nodes]
        fragment = Fragment(registry_ok, fragment.links, fragment.frames)
        command = Paste(self.graph, fragment, at, keep_input_links)
        if not self.push(command):
            return []
        self.scene.select_nodes(command.node_ids)
        return command.node_ids

    def _system_clipboard(self) -> Fragment | None:
        """Nodes on the system clipboard: copied in any LatentGraph window, or workflow JSON."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return None
        if not mime.hasText():
            return None
        text = mime.text()
        if len(text) > 32 * 1024 * 1024:
            return None
        return fragment_from_text(text, self.graph.registry)

    def duplicate(self) -> list[str]:
        ids = self.scene.selected_node_ids()
        if not ids:
            self.status("Select nodes to duplicate")
            return []
        fragment = copy_fragment(self.graph, ids)
        x = min(self.graph.nodes[n].pos[0] for n in ids) + 30
        y = min(self.graph.nodes[n].pos[1] for n in ids) + 30
        return self.paste(at=(x, y), keep_input_links=True, fragment=fragment)

    def select_all(self) -> None:
        for item in self.scene.node_items.values():
            item.setSelected(True)

    def resize_node(self, node_id: str, size: tuple[float, float] | None) -> bool:
        if self.graph.nodes[node_id].size == size:
            return False
        return self.push(SetNodeSize(self.graph, node_id, size))

    def set_color(self, color: str | None, node_ids=None) -> bool:
        ids = self._targets(node_ids)
        if not ids:
            return False
        return self.push(SetNodeColor(self.graph, ids, color))

    def set_frame_color(self, frame_id: str, color: str) -> bool:
        return self.push(SetFrame(self.graph.frames[frame_id], color=color))

    # ----- frames ---------------------------------------------------------------------
    def group(self, title: str = "Group") -> str | None:
        ids = self.scene.selected_node_ids()
        if not ids:
            self.status("Select nodes to group")
            return None
        # The command decides the frame's geometry; the canvas only says how big nodes are drawn.
        sizes = {n: self.scene.node_items[n].body_rect().size().toTuple() for n in ids}
        command = Group(self.graph, ids, title, sizes=sizes)
        return command.frame.id if self.push(command) else None

    def rename_frame(self, frame_id: str, title: str | None = None) -> bool:
        frame = self.graph.frames[frame_id]
        if title is None:
            title = self.ask_text("Rename frame", "Title:", frame.title)
        if not title or title == frame.title:
            return False
        return self.push(SetFrame(frame, title=title))

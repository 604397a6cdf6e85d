"""Undoable edits over the graph model, free of Qt.

Each command's ``do`` and ``undo`` call the model's mutation methods only, so the
editor (which mirrors model events) stays in step. The Qt side wraps these in
``QUndoCommand`` (nodeeditor/undo.py); :class:`UndoStack` is the Qt-free stack for scripts and
tests. Both run each step in a ``Graph.transaction``, so a command that fails part-way leaves
the graph exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Frame, Graph, GraphError, Link, Node, new_id


class Command:
    """An undoable edit. ``merge`` folds a following command of the same kind into this one."""

    text = "edit"
    merge_key: tuple | None = None

    def do(self, graph: Graph) -> None:
        raise NotImplementedError

    def undo(self, graph: Graph) -> None:
        raise NotImplementedError

    def merge(self, other: Command) -> bool:
        return False


@dataclass
class Fragment:
    """Nodes, the links among/around them and frames: what cut, copy, paste and delete move."""

    nodes: list[Node] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)


class AddNodes(Command):
    """Add nodes (and optionally links among them and to existing nodes)."""

    def __init__(self, nodes: list[Node], links: list[Link] | None = None,
                 frames: list[Frame] | None = None, text: str = "add node") -> None:
        self.fragment = Fragment([n.clone() for n in nodes], list(links or []),
                                 [f.clone() for f in frames or []])
        self.displaced: list[Link] = []
        self.text = text

    @property
    def node_ids(self) -> list[str]:
        return [n.id for n in self.fragment.nodes]

    def do(self, graph: Graph) -> None:
        for node in self.fragment.nodes:
            graph.add_node(node.clone())
        for frame in self.fragment.frames:
            graph.add_frame(frame.clone())
        self.displaced = []
        for link in self.fragment.links:
            old = graph.inbound(link.dst_node, link.dst_input)
            if old is not None:
                self.displaced.append(graph.remove_link(old.id))
            graph.add_link(link)

    def undo(self, graph: Graph) -> None:
        for link in reversed(self.fragment.links):
            graph.remove_link(link.id)
        for frame in self.fragment.frames:
            graph.remove_frame(frame.id)
        for node in reversed(self.fragment.nodes):
            graph.remove_node(node.id)
        for link in self.displaced:
            graph.add_link(link, check=False)


class RemoveItems(Command):
    """Remove nodes, links and frames; undo restores them with every link they had."""

    text = "delete"

    def __init__(self, node_ids: list[str] = (), link_ids: list[str] = (),
                 frame_ids: list[str] = ()) -> None:
        self.node_ids = list(dict.fromkeys(node_ids))
        self.link_ids = list(dict.fromkeys(link_ids))
        self.frame_ids = list(dict.fromkeys(frame_ids))
        self.removed = Fragment()

    def do(self, graph: Graph) -> None:
        links: dict[str, Link] = {}
        for link_id in self.link_ids:
            if link_id in graph.links:
                links[link_id] = graph.links[link_id]
        for node_id in self.node_ids:
            for link in graph.links_of(node_id):
                links[link.id] = link
        self.removed = Fragment(
            [graph.nodes[n].clone() for n in self.node_ids if n in graph.nodes],
            sorted(links.values(), key=lambda ln: ln.id),
            [graph.frames[f].clone() for f in self.frame_ids if f in graph.frames],
        )
        for link in self.removed.links:
            graph.remove_link(link.id)
        for node in self.removed.nodes:
            graph.remove_node(node.id)
        for frame in self.removed.frames:
            graph.remove_frame(frame.id)

    def undo(self, graph: Graph) -> None:
        for frame in self.removed.frames:
            graph.add_frame(frame.clone())
        for node in self.removed.nodes:
            graph.add_node(node.clone())
        for link in self.removed.links:
            graph.add_link(link, check=False)


class Connect(Command):
    """Link an output to an input, remembering the link it displaced."""

    text = "connect"

    def __init__(self, src_node: str, src_output: str, dst_node: str, dst_input: str,
                 link_id: str | None = None) -> None:
        self.link = Link(link_id or new_id(), src_node, src_output, dst_node, dst_input)
        self.displaced: Link | None = None

    def do(self, graph: Graph) -> None:
        link = self.link
        ok, why = graph.can_connect(link.src_node, link.src_output, link.dst_node, link.dst_input)
        if not ok:
            raise GraphError(why)
        self.displaced = graph.inbound(link.dst_node, link.dst_input)
        if self.displaced is not None:
            graph.remove_link(self.displaced.id)
        graph.add_link(link, check=False)

    def undo(self, graph: Graph) -> None:
        graph.remove_link(self.link.id)
        if self.displaced is not None:
            graph.add_link(self.displaced, check=False)


class Disconnect(RemoveItems):
    text = "disconnect"

    def __init__(self, link_ids: list[str]) -> None:
        super().__init__(link_ids=link_ids)


class MoveNodes(Command):
    """Move nodes (and frames); consecutive moves of the same items merge into one step."""

    text = "move"

    def __init__(self, moves: dict[str, tuple[tuple[float, float], tuple[float, float]]],
                 frame_moves: dict[str, tuple[tuple, tuple]] | None = None) -> None:
        # node id -> (old pos, new pos); frame id -> (old rect, new rect)
        self.moves = dict(moves)
        self.frame_moves = dict(frame_moves or {})
        self.merge_key = ("move", frozenset(self.moves), frozenset(self.frame_moves))

    def do(self, graph: Graph) -> None:
        for node_id, (_, new) in self.moves.items():
            graph.move_node(node_id, new)
        for frame_id, (_, new) in self.frame_moves.items():
            graph.set_frame(frame_id, rect=new)

    def undo(self, graph: Graph) -> None:
        for node_id, (old, _) in self.moves.items():
            graph.move_node(node_id, old)
        for frame_id, (old, _) in self.frame_moves.items():
            graph.set_frame(frame_id, rect=old)

    def merge(self, other: Command) -> bool:
        if not isinstance(other, MoveNodes) or other.merge_key != self.merge_key:
            return False
        for key, (_, new) in other.moves.items():
            self.moves[key] = (self.moves[key][0], new)
        for key, (_, new) in other.frame_moves.items():
            self.frame_moves[key] = (self.frame_moves[key][0], new)
        return True


class SetParam(Command):
    """Change one widget value; successive edits of the same param merge (typing, dragging)."""

    def __init__(self, graph: Graph, node_id: str, name: str, value: Any) -> None:
        self.node_id, self.name, self.value = node_id, name, value
        self.old = graph.nodes[node_id].params.get(name)
        self.text = f"set {name}"
        self.merge_key = ("param", node_id, name)

    def do(self, graph: Graph) -> None:
        graph.set_param(self.node_id, self.name, self.value)

    def undo(self, graph: Graph) -> None:
        graph.set_param(self.node_id, self.name, self.old)

    def merge(self, other: Command) -> bool:
        if isinstance(other, SetParam) and other.merge_key == self.merge_key:
            self.value = other.value
            return True
        return False


class SetFlags(Command):
    """Set one flag (bypass, mute, collapsed) on several nodes."""

    def __init__(self, graph: Graph, node_ids: list[str], flag: str, value: bool) -> None:
        self.flag, self.value = flag, bool(value)
        self.old = {n: graph.nodes[n].flags.get(flag, False) for n in node_ids}
        self.text = f"{flag}" if value else f"un-{flag}"

    def do(self, graph: Graph) -> None:
        for node_id in self.old:
            graph.set_flag(node_id, self.flag, self.value)

    def undo(self, graph: Graph) -> None:
        for node_id, old in self.old.items():
            graph.set_flag(node_id, self.flag, old)


class SetTitle(Command):
    text = "rename"

    def __init__(self, graph: Graph, node_id: str, title: str) -> None:
        self.node_id, self.title, self.old = node_id, title, graph.nodes[node_id].title

    def do(self, graph: Graph) -> None:
        graph.set_title(self.node_id, self.title)

    def undo(self, graph: Graph) -> None:
        graph.set_title(self.node_id, self.old)


class SetFrame(Command):
    """Rename / recolour a frame."""

    text = "edit frame"

    def __init__(self, frame: Frame, title: str | None = None, color: str | None = None) -> None:
        self.frame_id = frame.id
        self.old = (frame.title, frame.color)
        self.new = (title if title is not None else frame.title,
                    color if color is not None else frame.color)

    def do(self, graph: Graph) -> None:
        graph.set_frame(self.frame_id, title=self.new[0], color=self.new[1])

    def undo(self, graph: Graph) -> None:
        graph.set_frame(self.frame_id, title=self.old[0], color=self.old[1])


class SetNodeColor(Command):
    """Header colour of nodes (None: the default)."""

    text = "colour"

    def __init__(self, graph: Graph, node_ids: list[str], color: str | None) -> None:
        self.color = color
        self.old = {n: graph.nodes[n].color for n in node_ids}

    def do(self, graph: Graph) -> None:
        for node_id in self.old:
            graph.set_color(node_id, self.color)

    def undo(self, graph: Graph) -> None:
        for node_id, color in self.old.items():
            graph.set_color(node_id, color)


class SetNodeSize(Command):
    """Resize a node (its ``size``; None is the size its declarations give)."""

    text = "resize"

    def __init__(self, graph: Graph, node_id: str, size: tuple[float, float] | None) -> None:
        self.node_id, self.size, self.old = node_id, size, graph.nodes[node_id].size

    def do(self, graph: Graph) -> None:
        graph.set_size(self.node_id, self.size)

    def undo(self, graph: Graph) -> None:
        graph.set_size(self.node_id, self.old)


class Paste(AddNodes):
    """Add a copied fragment under fresh ids, offset so its top-left lands at ``at``.

    With ``keep_input_links`` links from outside the fragment into it are kept
    (Ctrl+Shift+V); otherwise only links inside the fragment survive.
    """

    def __init__(self, graph: Graph, fragment: Fragment, at: tuple[float, float] | None = None,
                 keep_input_links: bool = False) -> None:
        mapping = {n.id: new_id() for n in fragment.nodes}
        dx = dy = 0.0
        if at is not None and fragment.nodes:
            dx = at[0] - min(n.pos[0] for n in fragment.nodes)
            dy = at[1] - min(n.pos[1] for n in fragment.nodes)
        nodes = []
        for node in fragment.nodes:
            copy_ = node.clone()
            copy_.id = mapping[node.id]
            copy_.pos = (node.pos[0] + dx, node.pos[1] + dy)
            nodes.append(copy_)
        links = []
        for link in fragment.links:
            if link.dst_node not in mapping:
                continue
            if link.src_node in mapping:
                src = mapping[link.src_node]
            elif keep_input_links and link.src_node in graph.nodes:
                src = link.src_node
            else:
                continue
            links.append(Link(new_id(), src, link.src_output, mapping[link.dst_node], link.dst_input))
        frames = []
        for frame in fragment.frames:
            copy_f = frame.clone()
            copy_f.id = new_id()
            x, y, w, h = frame.rect
            copy_f.rect = (x + dx, y + dy, w, h)
            frames.append(copy_f)
        super().__init__(nodes, links, frames, text="paste")


class Group(Command):
    """Put a titled frame around nodes (Ctrl+G)."""

    text = "group"

    def __init__(self, graph: Graph, node_ids: list[str], title: str = "Group",
                 margin: float = 40.0, frame_id: str | None = None,
                 node_size: tuple[float, float] = (220.0, 120.0),
                 sizes: dict[str, tuple[float, float]] | None = None) -> None:
        # sizes: node id -> (w, h) as drawn (the editor knows; the model may not store it)
        if not node_ids:
            raise GraphError("select nodes to group")
        xs0, ys0, xs1, ys1 = [], [], [], []
        for node_id in node_ids:
            node = graph.nodes[node_id]
            w, h = (sizes or {}).get(node_id) or node.size or node_size
            xs0.append(node.pos[0])
            ys0.append(node.pos[1])
            xs1.append(node.pos[0] + w)
            ys1.append(node.pos[1] + h)
        rect = (min(xs0) - margin, min(ys0) - margin - 20,
                max(xs1) - min(xs0) + 2 * margin, max(ys1) - min(ys0) + 2 * margin + 20)
        self.frame = Frame(frame_id or new_id(), title, rect)

    def do(self, graph: Graph) -> None:
        graph.add_frame(self.frame.clone())

    def undo(self, graph: Graph) -> None:
        graph.remove_frame(self.frame.id)


def copy_fragment(graph: Graph, node_ids: list[str], frame_ids: list[str] = ()) -> Fragment:
    """The selected nodes with every link that enters or joins them (for copy/cut)."""
    chosen = set(node_ids)
    links = [ln for ln in graph.links.values() if ln.dst_node in chosen]
    return Fragment([graph.nodes[n].clone() for n in node_ids], links,
                    [graph.frames[f].clone() for f in frame_ids])


class Macro(Command):
    """Several commands as one undo step."""

    def __init__(self, commands: list[Command], text: str = "edit") -> None:
        self.commands, self.text = commands, text

    def do(self, graph: Graph) -> None:
        with graph.transaction():  # a sub-command that fails undoes the ones before it
            for command in self.commands:
                command.do(graph)

    def undo(self, graph: Graph) -> None:
        with graph.transaction():
            for command in reversed(self.commands):
                command.undo(graph)


class UndoStack:
    """A linear undo history over one graph; ``clean`` tracks the saved state."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.done: list[Command] = []
        self.undone: list[Command] = []
        self._clean_index: int | None = 0

    def push(self, command: Command) -> Command:
        """Do ``command`` and keep it; one that raises leaves the graph and the history as they
        were (Graph.transaction) and the error propagates."""
        with self.graph.transaction():
            command.do(self.graph)
        self.undone.clear()
        if self._clean_index is not None and self._clean_index > len(self.done):
            self._clean_index = None
        top = self.done[-1] if self.done else None
        if (top is not None and self._clean_index != len(self.done) and top.merge_key is not None
                and top.merge(command)):
            return top
        self.done.append(command)
        return command

    def undo(self) -> bool:
        if not self.done:
            return False
        with self.graph.transaction():
            self.done[-1].undo(self.graph)
        self.undone.append(self.done.pop())
        return True

    def redo(self) -> bool:
        if not self.undone:
            return False
        with self.graph.transaction():
            self.undone[-1].do(self.graph)
        self.done.append(self.undone.pop())
        return True

    def set_clean(self) -> None:
        self._clean_index = len(self.done)

    @property
    def is_clean(self) -> bool:
        return self._clean_index == len(self.done)

"""QUndoCommand wrappers around the Qt-free ``graphs.commands``.

``redo`` calls ``cmd.do(graph)`` (the first redo is the one ``QUndoStack.push`` makes),
``undo`` calls ``cmd.undo(graph)``; merging uses the command's ``merge_key``/``merge``.
A command that fails on its first ``do`` marks itself obsolete, so Qt drops it instead
of stacking an edit that never happened; the error is kept in ``error``.
"""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand, QUndoStack

from graphs import Command, Frame, Graph, GraphError


class GraphUndoCommand(QUndoCommand):
    def __init__(self, graph: Graph, command: Command) -> None:
        super().__init__(command.text)
        self.graph, self.command = graph, command
        self.error: Exception | None = None
        self._done_once = False
        key = command.merge_key
        self._id = -1 if key is None else (hash(key) & 0x3FFFFFFF)

    def redo(self) -> None:
        if not self._done_once:
            self._done_once = True
            try:
                self.command.do(self.graph)
            except (GraphError, KeyError, ValueError) as exc:
                self.error = exc
                self.setObsolete(True)
                try:  # best effort: take back whatever the command did before it failed
                    self.command.undo(self.graph)
                except Exception:  # noqa: BLE001 - partial state; nothing more we can do
                    pass
            return
        self.command.do(self.graph)

    def undo(self) -> None:
        self.command.undo(self.graph)

    def id(self) -> int:  # noqa: A003 - Qt API
        return self._id

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt API
        if not isinstance(other, GraphUndoCommand) or other.command.merge_key != self.command.merge_key:
            return False
        return self.command.merge(other.command)


def push(stack: QUndoStack, graph: Graph, command: Command) -> Exception | None:
    """Do ``command`` through ``stack``; returns the error if the model refused it."""
    wrapper = GraphUndoCommand(graph, command)
    stack.push(wrapper)
    return wrapper.error


class SetFrame(Command):
    """Rename / recolour a frame (the graphs library has no command for it yet)."""

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

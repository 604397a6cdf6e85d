"""QUndoCommand wrappers around the Qt-free ``graphs.commands``.

``redo`` calls ``cmd.do(graph)`` (the first redo is the one ``QUndoStack.push`` makes),
``undo`` calls ``cmd.undo(graph)``; merging uses the command's ``merge_key``/``merge``.
A command that fails on its first ``do`` marks itself obsolete, so Qt drops it instead
of stacking an edit that never happened; the error is kept in ``error``.
"""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand, QUndoStack

from graphs import Command, Graph, GraphError


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

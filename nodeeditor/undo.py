"""QUndoCommand wrappers around the Qt-free ``graphs.commands``.

``redo`` calls ``cmd.do(graph)`` (the first redo is the one ``QUndoStack.push`` makes),
``undo`` calls ``cmd.undo(graph)``; merging uses the command's ``merge_key``/``merge``.
Each step runs in a ``Graph.transaction``: one that fails leaves the graph as it was. So a
command that fails, on its first ``do`` or on any later redo or undo, is marked obsolete
(Qt drops it from the history instead of keeping an edit that did not happen) and the
error goes to ``on_error`` (the controller shows it in the status bar); none is swallowed.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand, QUndoStack

from graphs import Command, Graph

ErrorHandler = Callable[[Command, Exception], None]


class GraphUndoCommand(QUndoCommand):
    def __init__(self, graph: Graph, command: Command, on_error: ErrorHandler | None = None) -> None:
        super().__init__(command.text)
        self.graph, self.command = graph, command
        self.on_error = on_error
        self.error: Exception | None = None
        key = command.merge_key
        self._id = -1 if key is None else (hash(key) & 0x3FFFFFFF)

    def _apply(self, step: Callable[[Graph], None]) -> None:
        try:
            with self.graph.transaction():
                step(self.graph)
        except Exception as exc:  # noqa: BLE001 - reported, never swallowed: see the module doc
            self.error = exc
            self.setObsolete(True)
            if self.on_error is not None:
                self.on_error(self.command, exc)

    def redo(self) -> None:
        self._apply(self.command.do)

    def undo(self) -> None:
        self._apply(self.command.undo)

    def id(self) -> int:  # noqa: A003 - Qt API
        return self._id

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt API
        if not isinstance(other, GraphUndoCommand) or other.error is not None \
                or other.command.merge_key != self.command.merge_key:
            return False  # Qt would merge a command that failed: keep it out
        return self.command.merge(other.command)


def push(stack: QUndoStack, graph: Graph, command: Command,
         on_error: ErrorHandler | None = None) -> Exception | None:
    """Do ``command`` through ``stack``; returns the error if the model refused it."""
    wrapper = GraphUndoCommand(graph, command, on_error)
    stack.push(wrapper)
    return wrapper.error

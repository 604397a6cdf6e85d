"""Qt signals for the Qt-free model and executor events.

Model events are emitted on the GUI thread and are delivered directly, so the scene is
in step with the model as soon as a command returns. Executor events are emitted on the
worker thread; the bridge object lives on the GUI thread, so Qt queues them to it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal

from graphs import Executor, Graph
from graphs.events import Event


class GraphBridge(QObject):
    """Re-emits ``graph.events`` as ``event(Event)`` (direct, GUI thread)."""

    event = Signal(object)  # a graphs.events.Event

    def __init__(self, graph: Graph, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.graph = graph
        # While True, events are dropped (bulk loads rebuild the scene once instead).
        # A Python flag, not QObject.blockSignals: emitting blocked signals thousands of
        # times trips a refcount bug in PySide6 6.12 (bool_dealloc).
        self.suspended = False
        self._unsubscribe: Callable[[], None] | None = graph.events.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if not self.suspended:
            self.event.emit(event)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


class ExecutorBridge(QObject):
    """Re-emits ``executor.events`` (worker thread) as a queued ``event(Event)``."""

    event = Signal(object)  # a graphs.events.Event
    _relay = Signal(object)

    def __init__(self, executor: Executor, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay.connect(self.event, Qt.ConnectionType.QueuedConnection)
        self._unsubscribe = executor.events.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self._relay.emit(event)

    def detach(self) -> None:
        self._unsubscribe()

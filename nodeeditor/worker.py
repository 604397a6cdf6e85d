"""The run worker: one ``graphs.Executor`` on a long-lived ``QThread``.

The GUI thread takes ``graph.copy()`` and sends it with ``request``; the
worker runs it and the executor's events reach the GUI through :class:`ExecutorBridge`
(queued). The executor (its cache, loaded models) lives as long as the app.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from graphs import Executor, Graph, RunResult

from .bridge import ExecutorBridge


class _Runner(QObject):
    finished = Signal(object)  # RunResult

    def __init__(self, executor: Executor) -> None:
        super().__init__()
        self.executor = executor

    @Slot(object)
    def prepare(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - a run will meet the same problem and report it
            print(f"latentgraph: preparing the run thread failed: {exc}", file=sys.stderr)

    @Slot(object, object, object, object)
    def run(self, graph: Graph, targets: Any, settings: Any, cancel_event: Any) -> None:
        try:
            result = self.executor.run(graph, targets=targets, settings=settings, take_snapshot=False,
                                       cancel_event=cancel_event)
        except Exception as exc:  # the executor reports node failures itself; this is a bug guard
            from graphs import NodeFailure
            result = RunResult("failed", error=NodeFailure("", "run", type(exc).__name__, str(exc), ""))
        self.finished.emit(result)


class RunWorker(QObject):
    """Owns the thread and the executor. ``events`` carries executor events on the GUI thread."""

    _request = Signal(object, object, object, object)
    _prepare = Signal(object)
    run_done = Signal(object)  # RunResult, after run_finished has been delivered

    def __init__(self, executor: Executor | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.executor = executor or Executor()
        self.bridge = ExecutorBridge(self.executor, self)
        self.events = self.bridge.event
        self.thread = QThread()
        self.thread.setObjectName("latentgraph-run")
        self._runner = _Runner(self.executor)
        self._runner.moveToThread(self.thread)
        self._request.connect(self._runner.run)
        self._prepare.connect(self._runner.prepare)
        self._runner.finished.connect(self._on_finished)
        self.busy = False
        self._cancel_event = threading.Event()  # one per request
        self.thread.start()

    def request(self, snapshot: Graph, targets: list[str] | None = None,
                settings: dict[str, Any] | None = None) -> bool:
        """Queue a run of ``snapshot`` (taken on the GUI thread); False if one is running."""
        if self.busy:
            return False
        self.busy = True
        self._cancel_event = threading.Event()
        self._request.emit(snapshot, targets, dict(settings or {}), self._cancel_event)
        return True

    def prepare(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the run thread now, ahead of any run (a run requested meanwhile starts
        when it is done): slow one-off set-up such as importing torch, off the GUI thread."""
        self._prepare.emit(work)

    def cancel(self) -> None:
        """Stop the queued or running run (thread-safe; a no-op when idle)."""
        self._cancel_event.set()

    def _on_finished(self, result: RunResult) -> None:
        self.busy = False
        self.run_done.emit(result)

    def shutdown(self, wait_ms: int = 10000) -> None:
        if self.thread.isRunning():
            self._cancel_event.set()
            self.thread.quit()
            self.thread.wait(wait_ms)
        self.bridge.detach()

"""The run queue: snapshots waiting to run, the one running, and the recently finished ones.

A queued run is a snapshot of the graph as it was when Run was pressed (``Graph.copy()``), its
targets and its run settings; editing goes on meanwhile and never reaches it. One run goes to the
worker at a time: when it ends the next pending one starts. A batch (``count`` > 1) runs the same
snapshot ``count`` times, each time with the previous run's after-run param updates applied (the
seed controls: increment, randomize...), exactly as the live graph receives them after a single run.

No widgets here (``queue_panel.py`` shows it). The run presenter starts entries (``starter``) and
cancels the running one (``canceller``); ``held`` keeps pending runs waiting (a sweep has the run
thread).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from graphs import Graph

from .history import graph_params, param_changes

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
MAX_FINISHED = 50  # finished entries the queue keeps showing (the history keeps the runs)
_ids = itertools.count(1)


@dataclass(eq=False)
class QueuedRun:
    graph: Graph  # the snapshot the next run of this entry runs
    targets: list[str] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = "Run"
    count: int = 1  # batch count
    done: int = 0  # runs of the batch that ended
    state: str = PENDING
    changes: list[str] = field(default_factory=list)  # against the run queued before it
    message: str = ""  # why it failed or was cancelled
    seconds: float = 0.0
    cancel_requested: bool = False
    queued_at: float = field(default_factory=time.time)
    id: int = field(default_factory=lambda: next(_ids))

    def describe(self) -> str:
        if self.count == 1:
            batch = ""
        elif self.state == PENDING:
            batch = f" ×{self.count}"
        else:
            batch = f" ({min(self.done + 1, self.count) if self.state == RUNNING else self.done}/{self.count})"
        when = time.strftime("%H:%M:%S", time.localtime(self.queued_at))
        text = f"#{self.id} {self.label}{batch} · {self.state} · queued {when}"
        if self.state in (DONE, FAILED) and self.seconds:
            text += f" · {self.seconds:.1f}s"
        if self.message:
            text += f"\n{self.message}"
        if self.changes:
            text += "\n" + "; ".join(self.changes[:4]) + (" …" if len(self.changes) > 4 else "")
        return text


def apply_updates(graph: Graph, updates: dict[str, dict[str, Any]]) -> Graph:
    """A copy of ``graph`` with a run's after-run param updates applied (the next batch run)."""
    copy = graph.copy()
    for node_id, changes in (updates or {}).items():
        if node_id in copy.nodes:
            for name, value in changes.items():
                try:
                    copy.set_param(node_id, name, value)
                except (ValueError, KeyError):
                    pass
    return copy


class RunQueue(QObject):
    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pending: list[QueuedRun] = []
        self.current: QueuedRun | None = None
        self.finished: deque[QueuedRun] = deque(maxlen=MAX_FINISHED)
        self.starter: Callable[[QueuedRun], bool] = lambda entry: False
        self.canceller: Callable[[], None] = lambda: None
        self.held = False
        self._last_graph: Graph | None = None  # the snapshot queued last (what changes are shown against)

    # ----- what is in it -----------------------------------------------------------
    def entries(self) -> list[QueuedRun]:
        """Running, then pending in order, then finished (newest first)."""
        return ([self.current] if self.current else []) + list(self.pending) + list(reversed(self.finished))

    def find(self, entry_id: int) -> QueuedRun | None:
        return next((e for e in self.entries() if e.id == entry_id), None)

    def busy(self) -> bool:
        return self.current is not None or bool(self.pending)

    # ----- changing it -------------------------------------------------------------
    def submit(self, entry: QueuedRun) -> QueuedRun:
        if self._last_graph is not None:
            entry.changes = param_changes(graph_params(self._last_graph), graph_params(entry.graph))
        self._last_graph = entry.graph
        self.pending.append(entry)
        self.changed.emit()
        self.pump()
        return entry

    def cancel(self, entry_id: int) -> bool:
        """A pending entry is removed; the running one is cancelled through the worker (with the
        rest of its batch)."""
        for entry in self.pending:
            if entry.id == entry_id:
                self.pending.remove(entry)
                entry.state, entry.message = CANCELLED, "cancelled before it started"
                self.finished.append(entry)
                self.changed.emit()
                return True
        if self.current is not None and self.current.id == entry_id:
            self.current.cancel_requested = True
            self.canceller()
            self.changed.emit()
            return True
        return False

    def cancel_all(self) -> None:
        for entry in list(self.pending):
            self.cancel(entry.id)
        if self.current is not None:
            self.cancel(self.current.id)

    def move(self, entry_id: int, delta: int) -> bool:
        """Move a pending entry ``delta`` places (negative: sooner)."""
        index = next((i for i, e in enumerate(self.pending) if e.id == entry_id), None)
        if index is None:
            return False
        target = max(0, min(len(self.pending) - 1, index + delta))
        if target == index:
            return False
        self.pending.insert(target, self.pending.pop(index))
        self.changed.emit()
        return True

    def clear_finished(self) -> None:
        self.finished.clear()
        self.changed.emit()

    def hold(self, held: bool) -> None:
        self.held = held
        self.changed.emit()
        if not held:
            self.pump()

    # ----- running -----------------------------------------------------------------
    def pump(self) -> None:
        """Start the next pending entry if nothing runs."""
        while self.current is None and self.pending and not self.held:
            entry = self.pending.pop(0)
            entry.state = RUNNING
            self.current = entry
            self.changed.emit()
            if not self.starter(entry):
                self._finish(entry, FAILED, "the worker refused the run", pump=False)

    def run_ended(self, entry: QueuedRun, result) -> None:
        """The worker finished one run of ``entry`` (the presenter calls this last)."""
        entry.done += 1
        entry.seconds += float(getattr(result, "seconds", 0.0) or 0.0)
        status = getattr(result, "status", "failed")
        if status == "finished" and entry.done < entry.count and not entry.cancel_requested:
            entry.graph = apply_updates(entry.graph, result.param_updates)
            self.changed.emit()
            if not self.starter(entry):
                self._finish(entry, FAILED, "the worker refused the run")
            return
        if status == "finished" and entry.done < entry.count:  # cancelled between two runs of a batch
            self._finish(entry, CANCELLED, f"cancelled after {entry.done} of {entry.count}")
        elif status == "finished":
            self._finish(entry, DONE, "")
        elif status == "cancelled":
            self._finish(entry, CANCELLED, "cancelled" + (f" after {entry.done - 1} of {entry.count}"
                                                          if entry.count > 1 else ""))
        else:
            error = getattr(result, "error", None)
            self._finish(entry, FAILED, str(error) if error is not None else "failed")

    def _finish(self, entry: QueuedRun, state: str, message: str, pump: bool = True) -> None:
        entry.state, entry.message = state, message
        if self.current is entry:
            self.current = None
        self.finished.append(entry)
        self.changed.emit()
        if pump:
            self.pump()

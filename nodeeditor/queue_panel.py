"""The Queue panel (pending, running and recently finished runs: cancel one or all, move pending
ones up and down, or drag them), the "Queue and history" dock's tabs, and the Run toolbar (Run,
the batch count, Cancel, Sweep…).

Queue and History share one dock as tabs of their own: a second group of tabified dock widgets
made before the window is shown leaves a stray tab bar on the canvas with Qt 6.11.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .run_queue import CANCELLED, DONE, FAILED, PENDING, RUNNING, RunQueue

STATE_COLORS = {RUNNING: theme.BADGE_COLORS["running"], DONE: theme.BADGE_COLORS["done"],
                FAILED: theme.FAILED, CANCELLED: theme.TEXT_DIM, PENDING: theme.TEXT}
ID_ROLE = Qt.ItemDataRole.UserRole


class _QueueList(QListWidget):
    """Pending rows can be dragged to a new place; the queue's order is the truth, so a drop
    moves the entry in the queue and the list is rebuilt from it."""

    def __init__(self, panel: QueuePanel) -> None:
        super().__init__()
        self.panel = panel
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setWordWrap(True)
        self.setSpacing(3)

    def dropEvent(self, event) -> None:  # noqa: N802
        dragged = self.currentItem()
        target = self.itemAt(event.position().toPoint())
        event.ignore()  # never let Qt move the row itself
        if dragged is None or target is None:
            return
        queue = self.panel.queue
        pending = [e.id for e in queue.pending]
        source, dest = dragged.data(ID_ROLE), target.data(ID_ROLE)
        if source in pending and dest in pending:
            queue.move(source, pending.index(dest) - pending.index(source))


class QueuePanel(QWidget):
    def __init__(self, queue: RunQueue) -> None:
        super().__init__()
        self.queue = queue
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.summary = QLabel()
        layout.addWidget(self.summary)
        self.list = _QueueList(self)
        layout.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for key, text, tip, slot in (
                ("up", "Move up", "run it sooner (or drag it)", lambda: self._move(-1)),
                ("down", "Move down", "run it later (or drag it)", lambda: self._move(1)),
                ("cancel", "Cancel", "a pending run is removed; the running one is stopped", self._cancel),
                ("cancel_all", "Cancel all", "remove every pending run and stop the running one",
                 self.queue.cancel_all),
                ("clear", "Clear finished", "forget the finished rows (the History keeps the runs)",
                 self.queue.clear_finished)):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _checked=False, s=slot: s())
            row.addWidget(button)
            self.buttons[key] = button
        row.addStretch(1)
        layout.addLayout(row)
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        queue.changed.connect(self.refresh)
        self.refresh()

    def selected_id(self) -> int | None:
        item = self.list.currentItem()
        return item.data(ID_ROLE) if item is not None else None

    def select(self, entry_id: int) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(ID_ROLE) == entry_id:
                self.list.setCurrentRow(row)
                return

    def refresh(self) -> None:
        keep = self.selected_id()
        self.list.blockSignals(True)
        self.list.clear()
        for entry in self.queue.entries():
            item = QListWidgetItem(entry.describe())
            item.setData(ID_ROLE, entry.id)
            item.setForeground(QBrush(STATE_COLORS.get(entry.state, theme.TEXT)))
            flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
            if entry.state == PENDING:
                flags |= Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemIsDropEnabled
            item.setFlags(flags)
            self.list.addItem(item)
        self.list.blockSignals(False)
        if keep is not None:
            self.select(keep)
        waiting = len(self.queue.pending)
        current = self.queue.current
        parts = [f"running #{current.id}" if current else "idle", f"{waiting} waiting"]
        if self.queue.held:
            parts.append("held while a sweep runs")
        self.summary.setText(" · ".join(parts))
        self._update_buttons()

    def _update_buttons(self) -> None:
        entry = self.queue.find(self.selected_id()) if self.selected_id() is not None else None
        pending = [e.id for e in self.queue.pending]
        is_pending = entry is not None and entry.state == PENDING
        self.buttons["up"].setEnabled(is_pending and pending.index(entry.id) > 0)
        self.buttons["down"].setEnabled(is_pending and pending.index(entry.id) < len(pending) - 1)
        self.buttons["cancel"].setEnabled(entry is not None and entry.state in (PENDING, RUNNING))
        self.buttons["cancel_all"].setEnabled(self.queue.busy())
        self.buttons["clear"].setEnabled(bool(self.queue.finished))

    def _move(self, delta: int) -> None:
        entry_id = self.selected_id()
        if entry_id is not None:
            self.queue.move(entry_id, delta)

    def _cancel(self) -> None:
        entry_id = self.selected_id()
        if entry_id is not None:
            self.queue.cancel(entry_id)


def runs_tabs(queue_panel: QueuePanel, history_panel: QWidget) -> QTabWidget:
    """Queue and History as tabs; the Queue tab says how many runs wait."""
    tabs = QTabWidget()
    tabs.setDocumentMode(True)
    tabs.addTab(queue_panel, "Queue")
    tabs.addTab(history_panel, "History")
    queue = queue_panel.queue

    def label() -> None:
        waiting = len(queue.pending)
        tabs.setTabText(0, f"Queue ({waiting} waiting)" if waiting else "Queue")

    queue.changed.connect(label)
    return tabs


def run_toolbar(window) -> QToolBar:
    """Run, the batch count beside it, Cancel and Sweep…; ``window.batch_spin`` is the count."""
    bar = QToolBar("Run")
    bar.setObjectName("toolbar_run")
    bar.setMovable(False)
    names = window.actions_by_name
    bar.addAction(names["run"])
    spin = QSpinBox()
    spin.setRange(1, 1000)
    spin.setPrefix("× ")
    spin.setToolTip("Batch count: each Run runs this many times, the seed controls (increment, "
                    "randomize…) applied between runs")
    spin.valueChanged.connect(lambda value: setattr(window.runs, "batch_count", int(value)))
    bar.addWidget(spin)
    window.batch_spin = spin
    bar.addAction(names["cancel"])
    bar.addSeparator()
    if "sweep" in names:
        bar.addAction(names["sweep"])
    window.queue_label = QLabel()
    window.queue_label.setContentsMargins(8, 0, 0, 0)
    bar.addWidget(window.queue_label)
    queue = window.runs.queue

    def show_waiting() -> None:
        waiting = len(queue.pending)
        window.queue_label.setText(f"{waiting} queued" if waiting else "")

    queue.changed.connect(show_waiting)
    return bar

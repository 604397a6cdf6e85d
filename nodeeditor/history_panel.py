"""The History dock and the service behind it.

``HistoryService`` (one per history folder, shared by every window showing it) owns the
Qt-free ``history.HistoryStore`` and the one thread that touches the disk: loading at start,
storing each run that ends (thumbnails encoded, a line appended, old runs dropped) all happen
there, and results come back to the GUI thread by a queued signal. The GUI thread only builds a
``RunRecord`` from what it already holds and hands it over.

``HistoryPanel`` lists the runs, newest first, with thumbnails, time, the params changed since
the run before and the files written. Double-click (or Open) opens a run's graph in a new window;
Re-run queues it again in this window.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from graphs import WorkflowError, workflow

from .history import HistoryRun, HistoryStore, RunRecord

ICON = 72
ID_ROLE = Qt.ItemDataRole.UserRole
_windows: set[Any] = set()  # windows opened from the history (kept alive until closed)


class HistoryService(QObject):
    loaded = Signal()
    changed = Signal()  # a run was added (and maybe old ones dropped)
    _done = Signal(object, object)  # (callback, future), from the history thread
    _open: dict[str, HistoryService] = {}

    @classmethod
    def for_folder(cls, folder: str) -> HistoryService:
        """The service of ``folder`` (shared while a window uses it); call ``release`` when done."""
        key = os.path.realpath(folder)
        service = cls._open.get(key)
        if service is None:
            service = cls._open[key] = cls(folder, key)
        service.users += 1
        return service

    def __init__(self, folder: str, key: str) -> None:
        super().__init__()
        self.key = key
        self.store = HistoryStore(folder)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="latentgraph-history")
        self.runs: list[HistoryRun] = []  # oldest first, as on disk
        self.thumbs: dict[str, list[QImage]] = {}
        self.ready = False
        self.users = 0
        self.last_error = ""
        self._done.connect(self._deliver)
        self._submit(lambda: [(run, self._read_thumbs(run)) for run in self.store.load()], self._loaded)

    # ----- the history thread -------------------------------------------------------------
    def _submit(self, job: Callable[[], Any], callback: Callable[[Any], None]) -> None:
        self.pool.submit(job).add_done_callback(lambda future: self._done.emit(callback, future))

    def _read_thumbs(self, run: HistoryRun) -> list[QImage]:  # QImage (not QPixmap): fine off the GUI thread
        images = [QImage(str(self.store.thumb_path(name))) for name in run.thumbs]
        return [image for image in images if not image.isNull()]

    def _store(self, record: RunRecord):
        run = self.store.add_record(record)
        return run, self._read_thumbs(run), {r.id for r in self.store.runs}

    # ----- the GUI thread -------------------------------------------------------------------
    def _deliver(self, callback: Callable[[Any], None], future: Future) -> None:
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - a history that cannot be written must not stop runs
            self.last_error = f"history: {type(exc).__name__}: {exc}"
            print(f"latentgraph: {self.last_error}", file=sys.stderr)
            return
        callback(result)

    def _loaded(self, loaded) -> None:
        self.runs = [run for run, _thumbs in loaded] + self.runs  # runs stored meanwhile come after
        self.thumbs.update({run.id: thumbs for run, thumbs in loaded})
        self.ready = True
        self.loaded.emit()

    def record(self, record: RunRecord) -> None:
        """Store a run that ended (on the history thread); ``changed`` follows."""
        self._submit(lambda: self._store(record), self._stored)

    def _stored(self, stored) -> None:
        run, thumbs, kept = stored
        self.runs = [r for r in self.runs if r.id in kept] + [run]
        self.thumbs = {k: v for k, v in self.thumbs.items() if k in kept}
        self.thumbs[run.id] = thumbs
        self.changed.emit()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until what was handed over is on disk (tests, closing)."""
        self.pool.submit(lambda: None).result(timeout)

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            HistoryService._open.pop(self.key, None)
            self.pool.shutdown(wait=True)  # the last writes land before the app goes


class HistoryPanel(QWidget):
    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.list = QListWidget()
        self.list.setIconSize(QSize(ICON, ICON))
        self.list.setWordWrap(True)
        self.list.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.list.itemDoubleClicked.connect(lambda item: self.open_run(self.run_of(item)))
        layout.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open in new window")
        self.open_button.setToolTip("the run's graph in a new window (double-click a row); this one stays as it is")
        self.open_button.clicked.connect(lambda: self.open_run(self.selected()))
        self.rerun_button = QPushButton("Re-run")
        self.rerun_button.setToolTip("queue the run's graph again, as it was")
        self.rerun_button.clicked.connect(lambda: self.rerun(self.selected()))
        self.where = QLabel()
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.open_button)
        row.addWidget(self.rerun_button)
        row.addWidget(self.where, 1)
        layout.addLayout(row)
        self._icons: dict[str, QIcon] = {}
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.service: HistoryService | None = None

    def attach(self, service: HistoryService) -> None:
        self.service = service
        self.where.setText(f"  {service.store.folder}")
        service.loaded.connect(self.refresh)
        service.changed.connect(self.refresh)
        self.refresh()

    # ----- showing ----------------------------------------------------------------------------
    def refresh(self) -> None:
        service = self.service
        keep = self.selected().id if self.selected() else None
        self.list.clear()
        if service is None:
            return
        if not service.ready:
            self.list.addItem("loading…")
        for run in reversed(service.runs):
            item = QListWidgetItem(self._icon(run), self.describe(run))
            item.setData(ID_ROLE, run.id)
            item.setToolTip(self._tooltip(run))
            self.list.addItem(item)
            if run.id == keep:
                self.list.setCurrentItem(item)
        self._icons = {k: v for k, v in self._icons.items() if any(r.id == k for r in service.runs)}
        self._update_buttons()

    def _icon(self, run: HistoryRun) -> QIcon:
        icon = self._icons.get(run.id)
        if icon is None:
            thumbs = self.service.thumbs.get(run.id) or []
            icon = self._icons[run.id] = QIcon(QPixmap.fromImage(thumbs[0])) if thumbs else QIcon()
        return icon

    @staticmethod
    def describe(run: HistoryRun) -> str:
        state = "finished" if run.status == "finished" else "FAILED"
        lines = [f"{run.when()} · {run.label} · {state} in {run.seconds:.1f}s"]
        lines.append("; ".join(run.changes[:3]) + (" …" if len(run.changes) > 3 else "")
                     if run.changes else "no params changed since the run before")
        if run.files:
            more = f" (+{len(run.files) - 1})" if len(run.files) > 1 else ""
            lines.append(f"→ {os.path.basename(run.files[0])}{more}")
        if run.error:
            lines.append(run.error[:120])
        return "\n".join(lines)

    @staticmethod
    def _tooltip(run: HistoryRun) -> str:
        parts = [f"{run.label}, {run.when()}, {run.status} in {run.seconds:.2f}s"]
        if run.changes:
            parts += ["Changed since the run before:"] + [f"  {c}" for c in run.changes]
        if run.files:
            parts += ["Files:"] + [f"  {f}" for f in run.files]
        if run.error:
            parts.append(run.error)
        return "\n".join(parts)

    def run_of(self, item: QListWidgetItem | None) -> HistoryRun | None:
        run_id = item.data(ID_ROLE) if item is not None else None
        return next((r for r in self.service.runs if r.id == run_id), None) if run_id and self.service else None

    def selected(self) -> HistoryRun | None:
        return self.run_of(self.list.currentItem())

    def _update_buttons(self) -> None:
        enabled = self.selected() is not None
        self.open_button.setEnabled(enabled)
        self.rerun_button.setEnabled(enabled)

    # ----- acting ---------------------------------------------------------------------------
    def _graph(self, run: HistoryRun):
        try:
            return workflow.loads(run.workflow_text(), self.window.registry)
        except WorkflowError as exc:
            self.window.status(f"Cannot open the run of {run.when()}: {exc}", 0)
            return None

    def open_run(self, run: HistoryRun | None):
        """A new window on the run's graph (its params as they were); this window's graph stays."""
        if run is None or (graph := self._graph(run)) is None:
            return None
        window = self.window
        recovery = os.path.join(os.path.dirname(window.document.recovery_path), f"recovery-run-{run.id}.json")
        # another window of this window's own class (importing it here would tie the two modules in a circle)
        child = type(window)(registry=window.registry, output_dir=window.output_dir, settings=window.settings,
                           recovery_path=recovery, history_path=self.service.key)
        child.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        child.document.load_graph(graph)
        child.document.base_dir = run.settings.get("base_dir") or window.document.base_dir
        child.document.display_name = f"Run of {run.when()}"
        child.update_title()
        child.move(window.pos() + QPoint(40, 40))
        child.show()
        _windows.add(child)
        child.destroyed.connect(lambda *_: _windows.discard(child))
        return child

    def rerun(self, run: HistoryRun | None):
        """Queue the run's graph again in this window, with the settings it ran with."""
        if run is None or (graph := self._graph(run)) is None:
            return None
        settings = {**self.window._run_settings(), **run.settings}
        return self.window.runs.enqueue(graph, run.targets, settings, f"Re-run of {run.when()[11:]}")

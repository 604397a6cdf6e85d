"""The output gallery dock: the images in the output folder (those there when the app started and
every one written since), as thumbnails, newest first.

The folder is listed on a pool thread (``os.scandir``, so thousands of PNGs never block the GUI)
and the rows go into the model in batches; a thumbnail is decoded on a pool thread the first time
its row is painted, and kept in a bounded in-memory cache. Images a run writes (a node's
``paths`` output: Save image) appear as soon as their node finishes; after each run the folder is
listed again for anything else written there. A click shows the image in the image viewer, a drag
onto the canvas opens its workflow (the view opens dropped PNGs), and "Open graph" restores the
graph that made it.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QObject,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import QDockWidget, QListView, QMenu, QVBoxLayout, QWidget

from graphs import events as ev

IMAGE_SUFFIXES = (".png", ".webp")
THUMB = 80  # px, the longer side
CACHE_MAX = 600  # thumbnails kept in memory
BATCH = 400  # rows added per event-loop turn while a large folder fills in
PATH_ROLE = Qt.ItemDataRole.UserRole


def list_images(folder: str) -> list[tuple[float, str]]:
    """``(mtime, path)`` of the images in ``folder`` (not its subfolders), newest first."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.lower().endswith(IMAGE_SUFFIXES):
                    try:
                        if entry.is_file():
                            found.append((entry.stat().st_mtime, entry.path))
                    except OSError:
                        continue
    except OSError:
        return []
    found.sort(key=lambda e: (-e[0], e[1]))
    return found


def load_thumbnail(path: str, size: int = THUMB) -> QImage:
    """A ``size``-px thumbnail (QImage: safe off the GUI thread), null if unreadable."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    full = reader.size()
    if full.isValid() and full.width() > 0 and full.height() > 0:
        reader.setScaledSize(full.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if not image.isNull() and max(image.width(), image.height()) > size:
        image = image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image


class _Sink(QObject):
    listed = Signal(int, object)  # generation, [(mtime, path)]
    thumbnail = Signal(str, object)  # path, QImage


class _ListJob(QRunnable):
    def __init__(self, folder: str, generation: int, sink: _Sink) -> None:
        super().__init__()
        self.folder, self.generation, self.sink = folder, generation, sink

    def run(self) -> None:
        self.sink.listed.emit(self.generation, list_images(self.folder))


class _ThumbJob(QRunnable):
    def __init__(self, path: str, sink: _Sink) -> None:
        super().__init__()
        self.path, self.sink = path, sink

    def run(self) -> None:
        self.sink.thumbnail.emit(self.path, load_thumbnail(self.path))


class GalleryModel(QAbstractListModel):
    """Rows: image paths, newest first (``entries``: ``(mtime, path)``)."""

    def __init__(self, folder, parent: QObject | None = None) -> None:
        """``folder()`` names the output folder (asked at each listing)."""
        super().__init__(parent)
        self.folder = folder
        self.entries: list[tuple[float, str]] = []
        self.known: set[str] = set()
        self.thumbs: OrderedDict[str, QPixmap] = OrderedDict()  # LRU
        self.pending: set[str] = set()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)  # one decoder: the run thread needs the cores
        self._sink = _Sink(self)
        self._sink.listed.connect(self._listed)
        self._sink.thumbnail.connect(self._thumbnail_ready)
        self._generation = 0
        self._backlog: list[tuple[float, str]] = []
        self.placeholder = QPixmap(THUMB, THUMB)
        self.placeholder.fill(QColor("#2b2e33"))
        self.listing = False

    # ----- listing ------------------------------------------------------------------
    def refresh(self) -> None:
        """List the folder again on a pool thread; new files are merged in, vanished ones dropped."""
        self._generation += 1
        self.listing = True
        self.pool.start(_ListJob(str(self.folder()), self._generation, self._sink), 1)

    def _listed(self, generation: int, found: list) -> None:
        if generation != self._generation:
            return
        names = {path for _, path in found}
        gone = [i for i, (_, path) in enumerate(self.entries) if path not in names]
        for i in reversed(gone):
            self.beginRemoveRows(QModelIndex(), i, i)
            self.known.discard(self.entries.pop(i)[1])
            self.endRemoveRows()
        new = [e for e in found if e[1] not in self.known]
        if not self.entries and len(new) > BATCH:  # a large folder: fill in a batch per turn
            self._backlog = new
            self._next_batch()
            return
        for entry in new:
            self._insert(entry)
        self.listing = False

    def _next_batch(self) -> None:
        batch, self._backlog = self._backlog[:BATCH], self._backlog[BATCH:]
        batch = [e for e in batch if e[1] not in self.known]
        if batch:
            first = len(self.entries)
            self.beginInsertRows(QModelIndex(), first, first + len(batch) - 1)
            self.entries.extend(batch)
            self.known.update(path for _, path in batch)
            self.endInsertRows()
        if self._backlog:
            QTimer.singleShot(0, self._next_batch)
        else:
            self.listing = False

    def _insert(self, entry: tuple[float, str]) -> None:
        if entry[1] in self.known:
            return
        keys = [-m for m, _ in self.entries]  # descending mtimes as an ascending key
        row = bisect.bisect_left(keys, -entry[0])
        self.beginInsertRows(QModelIndex(), row, row)
        self.entries.insert(row, entry)
        self.known.add(entry[1])
        self.endInsertRows()

    def add_paths(self, paths) -> None:
        """Files just written (a run's Save image): shown at once."""
        for path in paths:
            path = os.path.abspath(str(path))
            if not path.lower().endswith(IMAGE_SUFFIXES) or path in self.known:
                continue
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            self._insert((mtime, path))

    # ----- the model ----------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.entries)

    def path(self, row: int) -> str:
        return self.entries[row][1]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.entries):
            return None
        path = self.entries[index.row()][1]
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{path}\n(drag onto the canvas to open its workflow)"
        if role == PATH_ROLE:
            return path
        return None

    def flags(self, index):
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return ["text/uri-list"]

    def mimeData(self, indexes) -> QMimeData:  # noqa: N802
        """File URLs: the canvas opens a dropped PNG's workflow."""
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(self.path(i.row())) for i in indexes if i.isValid()])
        return mime

    # ----- thumbnails ---------------------------------------------------------------
    def thumbnail(self, path: str) -> QPixmap:
        pixmap = self.thumbs.get(path)
        if pixmap is not None:
            self.thumbs.move_to_end(path)
            return pixmap
        if path not in self.pending:
            self.pending.add(path)
            self.pool.start(_ThumbJob(path, self._sink))
        return self.placeholder

    def _thumbnail_ready(self, path: str, image: QImage) -> None:
        self.pending.discard(path)
        if path not in self.known:
            return
        pixmap = QPixmap.fromImage(image) if not image.isNull() else self.placeholder
        self.thumbs[path] = pixmap
        while len(self.thumbs) > CACHE_MAX:
            self.thumbs.popitem(last=False)
        row = next((i for i, (_, p) in enumerate(self.entries) if p == path), None)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class Gallery(QWidget):
    """The list view over :class:`GalleryModel`, with the window's viewer and document."""

    def __init__(self, window, parent=None) -> None:
        super().__init__(parent)
        self.window = window
        self.model = GalleryModel(lambda: window.output_dir, self)
        self.list = QListView(self)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 8, THUMB + 8))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setUniformItemSizes(True)
        self.list.setLayoutMode(QListView.LayoutMode.Batched)
        self.list.setBatchSize(200)
        self.list.setDragEnabled(True)
        self.list.setDragDropMode(QListView.DragDropMode.DragOnly)
        self.list.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setModel(self.model)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list)
        self.list.clicked.connect(lambda index: self.show_image(self.model.path(index.row())))
        self.list.customContextMenuRequested.connect(self._context_menu)
        window.worker.events.connect(self._on_event)
        window.worker.run_done.connect(lambda _result: self.model.refresh())
        self.model.refresh()

    def _on_event(self, event) -> None:
        if isinstance(event, ev.NodeFinished) and isinstance(event.outputs, dict):
            paths = event.outputs.get("paths")
            if isinstance(paths, (list, tuple)):
                self.model.add_paths(paths)

    def show_image(self, path: str) -> bool:
        """In the image viewer, with the workflow it carries (Save as… keeps it)."""
        from PIL import Image

        from graphs.pngmeta import WORKFLOW_KEY, read_text_chunks

        try:
            with Image.open(path) as image:
                image.load()
                pil = image.copy()
        except (OSError, ValueError) as exc:
            self.window.status(f"Cannot show {path}: {exc}")
            return False
        try:
            workflow_text = read_text_chunks(path).get(WORKFLOW_KEY)
        except (OSError, ValueError):
            workflow_text = None
        self.window.image_viewer.show_image(pil, Path(path).name, workflow_text)
        dock = self.window.docks.get("image")
        if dock is not None:
            dock.show()
            dock.raise_()
        return True

    def open_graph(self, path: str) -> bool:
        """The graph that made the image (its embedded workflow), as an untitled document."""
        return self.window.document.open_path(path)

    def _context_menu(self, pos) -> None:
        index = self.list.indexAt(pos)
        menu = QMenu(self)
        if index.isValid():
            path = self.model.path(index.row())
            menu.addAction("Open graph", lambda: self.open_graph(path))
            menu.addAction("Show in image viewer", lambda: self.show_image(path))
            menu.addSeparator()
        menu.addAction("Refresh", self.model.refresh)
        menu.exec(self.list.viewport().mapToGlobal(pos))


def install_gallery(window) -> Gallery:
    """Add the gallery dock (left, below the node library) and its View menu toggle."""
    gallery = Gallery(window)
    dock = QDockWidget("Gallery", window)
    dock.setObjectName("dock_gallery")
    dock.setWidget(gallery)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock, Qt.Orientation.Vertical)
    library = window.docks.get("library")
    if library is not None:
        window.resizeDocks([library, dock], [3, 2], Qt.Orientation.Vertical)
    window.docks["gallery"] = dock
    window.gallery = gallery
    menu = view_menu(window)
    if menu is not None:
        menu.addAction(dock.toggleViewAction())
    return gallery


def view_menu(window) -> QMenu | None:
    for action in window.menuBar().actions():
        if action.menu() is not None and action.text().replace("&", "") == "View":
            return action.menu()
    return None

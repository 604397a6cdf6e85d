"""The open document: which file the graph came from, whether it has unsaved changes
(the undo stack's clean state), opening, saving, recent files, autosave and recovery.

It replaces the graph's contents in one go and says so through signals (``replacing``
before, ``replaced`` after, ``cleared`` for New); the window refreshes the canvas and
panels. Dialogs are attributes so tests (and scripts) can replace them:
``ask_unsaved() -> "save" | "discard" | "cancel"``, ``show_error(title, text)``,
``ask_recover() -> bool``, ``ask_open_path(title, filters)``, ``ask_save_path()``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from graphs import Graph, View, WorkflowError, workflow

OPENABLE_IMAGES = (".png", ".webp")  # images whose text carries a workflow, ours or ComfyUI's

APP_NAME = "LatentGraph"
MAX_RECENT = 10



def templates_dir() -> Path:
    from .theme import resources_dir

    return resources_dir() / "workflows"


def is_template(path: str) -> bool:
    """Whether ``path`` is one of the bundled workflows (or anywhere in their folder)."""
    try:
        return Path(path).resolve().is_relative_to(templates_dir().resolve())
    except (OSError, ValueError):
        return False


def templates() -> list[tuple[Path, str, str]]:
    """The bundled workflows: (file, title, one-line description), as their metadata says."""
    found = []
    for file in sorted(templates_dir().glob("*.json")):
        try:
            meta = json.loads(file.read_text(encoding="utf-8")).get("metadata", {})
        except (OSError, ValueError, AttributeError):
            continue
        found.append((file, str(meta.get("title", file.stem)), str(meta.get("description", ""))))
    return found

class Document(QObject):
    changed = Signal()  # the title changes: name or modified state
    replacing = Signal()  # the graph is about to be replaced (open, recover)
    replaced = Signal()  # ... and has been: rebuild what shows it
    cleared = Signal()  # New: the graph was emptied
    imported = Signal(object)  # a ComfyUI file was opened: its ImportReport

    def __init__(self, graph: Graph, undo_stack: QUndoStack, bridge, settings: QSettings,
                 recovery_path: str, view_state: Callable[[], tuple[float, tuple[float, float]]],
                 status: Callable[[str], None], parent: QWidget) -> None:
        super().__init__(parent)
        self.graph, self.registry, self.undo_stack = graph, graph.registry, undo_stack
        self.bridge, self.settings, self.recovery_path = bridge, settings, recovery_path
        self.view_state, self.status, self.widget = view_state, status, parent
        self.path: str | None = None
        self.base_dir: str | None = None  # relative paths in the workflow are looked up here
        self.display_name = "Untitled"
        self.last_error: str | None = None
        self.ask_unsaved = self._ask_unsaved
        self.show_error = self._show_error
        self.ask_recover = self._ask_recover
        self.ask_open_path = self._ask_open_path
        self.ask_save_path = self._ask_save_path
        undo_stack.cleanChanged.connect(self._stack_changed)
        undo_stack.indexChanged.connect(self._stack_changed)

    # ----- state ----------------------------------------------------------------------
    def is_modified(self) -> bool:
        return not self.undo_stack.isClean()

    def title(self) -> str:
        return f"{self.display_name}{'*' if self.is_modified() else ''} — {APP_NAME}"

    def _stack_changed(self, *_args) -> None:
        self.changed.emit()

    def error(self, title: str, text: str) -> None:
        self.last_error = text
        self.status(text)
        self.show_error(title, text)

    # ----- dialogs (replaceable) ------------------------------------------------------
    def _ask_unsaved(self) -> str:
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(self.widget, APP_NAME, f"Save changes to {self.display_name}?",
                                      buttons.Save | buttons.Discard | buttons.Cancel, buttons.Save)
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(answer, "cancel")

    def _show_error(self, title: str, text: str) -> None:
        QMessageBox.warning(self.widget, title, text)

    def _ask_recover(self) -> bool:
        buttons = QMessageBox.StandardButton
        return QMessageBox.question(
            self.widget, APP_NAME, "LatentGraph did not close cleanly. Recover the unsaved workflow?",
            buttons.Yes | buttons.No) == buttons.Yes

    def _ask_open_path(self, title: str, filters: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self.widget, title, os.path.dirname(self.path or ""), filters)
        return path or None

    def _ask_save_path(self) -> str | None:
        # an imported image or a template copy suggests its own name
        suggestion = self.path or (f"{Path(self.display_name).stem}.json" if self.display_name != "Untitled"
                                   else "workflow.json")
        path, _ = QFileDialog.getSaveFileName(self.widget, "Save workflow", suggestion,
                                              "Workflows (*.json)")
        return path or None

    # ----- recent files ---------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str) -> None:
        path = os.path.abspath(path)
        recent = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", [path] + recent[:MAX_RECENT - 1])

    # ----- new / open -----------------------------------------------------------------
    def maybe_save(self) -> bool:
        """True when it is fine to drop the current graph."""
        if not self.is_modified():
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self.save()
        return answer == "discard"

    def new_file(self) -> None:
        if not self.maybe_save():
            return
        self.replacing.emit()
        self.graph.clear()
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self.path, self.display_name = None, "Untitled"
        self.cleared.emit()
        self.changed.emit()

    def open_dialog(self) -> None:
        path = self.ask_open_path("Open workflow", "Workflows and images (*.json *.png *.webp);;Workflows, "
                                                   "ours or ComfyUI's (*.json);;Images with a workflow (*.png *.webp)")
        if path:
            self.open_path(path)

    def import_image(self) -> None:
        path = self.ask_open_path("Import image with workflow", "Images with a workflow (*.png *.webp)")
        if path:
            self.open_path(path)

    def read_workflow(self, path: str):
        """``(graph, import report or None)`` of a workflow .json or an image carrying one, ours
        or ComfyUI's; raises WorkflowError."""
        from nodes.comfyui import load_any

        return load_any(path, self.registry)

    def open_path(self, path: str, ask: bool = True) -> bool:
        try:
            loaded, report = self.read_workflow(path)
        except WorkflowError as exc:
            self.error("Cannot open workflow", str(exc))
            return False
        if ask and not self.maybe_save():
            return False
        is_image = Path(path).suffix.lower() in OPENABLE_IMAGES
        template = is_template(path)
        if template:  # its saved view was made for another window: the canvas shows it whole instead
            loaded.view = View()
        self.load_graph(loaded)
        # A bundled template, an image or a ComfyUI file opens as an untitled copy: Save asks where,
        # never over the app's files or the other program's.
        untitled = is_image or template or report is not None
        self.path = None if untitled else os.path.abspath(path)
        self.base_dir = os.path.dirname(os.path.abspath(path))  # its input images are found there
        self.display_name = Path(path).stem if untitled else Path(path).name
        if not untitled:
            self._add_recent(path)
        self.changed.emit()
        self.status(f"Opened {path}" if report is None else f"Imported {path}")
        if report is not None:
            self.imported.emit(report)
        return True

    def load_graph(self, loaded: Graph) -> None:
        """Replace the graph with ``loaded`` in one go (the canvas rebuilds once, on ``replaced``)."""
        self.replacing.emit()
        self.bridge.suspended = True
        try:
            self.graph.replace_with(loaded)
        finally:
            self.bridge.suspended = False
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self.replaced.emit()

    # ----- save -----------------------------------------------------------------------
    def store_view(self) -> None:
        zoom, center = self.view_state()
        if (zoom, tuple(center)) != (self.graph.view.zoom, tuple(self.graph.view.center)):
            self.graph.set_view(zoom, center)

    def save(self) -> bool:
        if not self.path:
            return self.save_as()
        return self.save_to(self.path)

    def save_as(self) -> bool:
        path = self.ask_save_path()
        if not path:
            return False
        if not path.lower().endswith(".json"):
            path += ".json"
        return self.save_to(path)

    def save_to(self, path: str) -> bool:
        if is_template(path):
            self.error("Cannot save", f"{path}: the bundled templates are part of the app; save your copy elsewhere")
            return False
        self.store_view()
        try:
            workflow.save(self.graph, path)
        except OSError as exc:
            self.error("Cannot save", f"{path}: {exc.strerror or exc}")
            return False
        self.path = os.path.abspath(path)
        if self.base_dir is None:  # a new workflow's relative paths (a painted mask) are found beside its file
            self.base_dir = os.path.dirname(self.path)
        self.display_name = Path(path).name
        self.undo_stack.setClean()
        self._add_recent(path)
        self.remove_recovery()
        self.changed.emit()
        self.status(f"Saved {path}")
        return True

    # ----- autosave / recovery --------------------------------------------------------
    def autosave(self) -> bool:
        if not self.is_modified():
            return False
        try:
            os.makedirs(os.path.dirname(self.recovery_path), exist_ok=True)
            workflow.atomic_write_text(Path(self.recovery_path), workflow.dumps(self.graph))
            workflow.atomic_write_text(Path(self.recovery_path + ".meta"),
                                       json.dumps({"path": self.path, "name": self.display_name}))
        except OSError as exc:
            self.status(f"Autosave failed: {exc}")
            return False
        return True

    def remove_recovery(self) -> None:
        for path in (self.recovery_path, self.recovery_path + ".meta"):
            try:
                os.remove(path)
            except OSError:
                pass

    def offer_recovery(self) -> bool:
        """If a recovery file exists (a crash), offer to load it; True if it was loaded."""
        if not os.path.exists(self.recovery_path):
            return False
        if not self.ask_recover():
            self.remove_recovery()
            return False
        try:
            loaded = workflow.load(self.recovery_path, self.registry)
        except WorkflowError as exc:
            self.error("Cannot recover", str(exc))
            self.remove_recovery()
            return False
        meta: dict = {}
        try:
            meta = json.loads(Path(self.recovery_path + ".meta").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        self.load_graph(loaded)
        self.path = meta.get("path")
        self.display_name = meta.get("name") or "Recovered"
        self.undo_stack.resetClean()  # recovered work is unsaved
        self.changed.emit()
        return True

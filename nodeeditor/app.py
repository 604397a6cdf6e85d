"""The main window: canvas, docks, menus, files, runs, autosave; and ``run_app``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
)

from graphs import (
    Executor,
    Graph,
    Registry,
    View,
    WorkflowError,
    default_registry,
    pngmeta,
    snapshot,
    workflow,
)

from . import (
    theme,
)
from .controller import Controller
from .panels import ImageViewer, LatentInspector, PropertiesPanel, RunLog, pil_to_qimage
from .plugins_dialog import PluginsDialog
from .scene import GraphScene
from .view import GraphView
from .worker import RunWorker

APP_NAME = "LatentGraph"
MAX_RECENT = 10
AUTOSAVE_MS = 60_000

SHORTCUTS = [
    ("Add node (search)", "Tab, Shift+A, double-click canvas"),
    ("Connect", "drag socket to socket (drop on empty canvas: add a connected node)"),
    ("Cut links", "Ctrl+right-drag"),
    ("Reroute", "double-click a link"),
    ("Insert node into link", "drop it on the link (Alt: don't)"),
    ("Bypass / mute", "Ctrl+B / Ctrl+M"),
    ("Group in frame", "Ctrl+G"),
    ("Frame selection or all / all", "F / Home"),
    ("Pan / zoom", "middle-drag, Space+drag, right-drag / wheel"),
    ("Copy / paste / duplicate", "Ctrl+C / Ctrl+V / Ctrl+D (Ctrl+Shift+V keeps input links)"),
    ("Delete", "Delete / Backspace"),
    ("Undo / redo", "Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y"),
    ("Run / cancel", "Ctrl+Enter / Ctrl+Alt+Enter, Esc while running"),
    ("Open / save", "Ctrl+O / Ctrl+S; drop a .json or an output .png"),
]


def default_workflow_path() -> Path:
    return theme.resources_dir() / "workflows" / "txt2img.json"


def _load_nodes() -> bool:
    """Register the diffusion node types (if the node library is importable)."""
    try:
        import nodes

        nodes.load_plugins()  # a failing plugin is skipped and listed in Help → Plugins
    except Exception as exc:  # noqa: BLE001 - the editor still works with what is registered
        print(f"latentgraph: node library unavailable: {exc}", file=sys.stderr)
        return False
    return True


class MainWindow(QMainWindow):
    def __init__(self, registry: Registry | None = None, executor: Executor | None = None,
                 output_dir: str | None = None, settings: QSettings | None = None,
                 recovery_path: str | None = None) -> None:
        super().__init__()
        self.registry = registry or default_registry()
        self.graph = Graph(self.registry)
        self.path: str | None = None
        self.base_dir: str | None = None
        self.display_name = "Untitled"
        self.output_dir = output_dir or os.path.join(os.getcwd(), "out")
        self.settings = settings or QSettings(APP_NAME, APP_NAME)
        self.recovery_path = recovery_path or os.path.join(
            QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation),
            "recovery.json")
        # Overridable for tests: ask_unsaved() -> "save" | "discard" | "cancel";
        # show_error(title, text); ask_recover() -> bool; ask_save_path(), ask_open_path().
        self.ask_unsaved = self._ask_unsaved
        self.show_error = self._show_error
        self.ask_recover = self._ask_recover
        self.ask_open_path = self._ask_open_path
        self.ask_save_path = self._ask_save_path
        self.last_error: str | None = None
        self.running = False
        self.run_workflow_text: str | None = None
        self.node_images: dict[str, Any] = {}  # node id -> last PIL image shown on it

        self.undo_stack = QUndoStack(self)
        self.scene = GraphScene(self.graph, self)
        self.controller = Controller(self.graph, self.undo_stack, self.scene, self)
        self.view = GraphView(self.scene, self.controller, self)
        self.controller.view = self.view
        self.controller.status = self.status
        self.controller.on_run = self.run
        self.controller.on_open = self.open_path
        self.setCentralWidget(self.view)
        self.worker = RunWorker(executor or Executor(self.registry), self)
        if "nodes" in sys.modules:  # out of memory: the executor frees the loaded models too
            self.worker.executor.release_hooks.append(sys.modules["nodes"].release_models)
        self.worker.events.connect(self.on_executor_event)
        self.worker.run_done.connect(self.on_run_done)

        self._build_panels()
        self._build_status()
        self._build_actions()
        self._build_menus()
        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.bridge.event.connect(self.properties.on_model_event)
        self.undo_stack.cleanChanged.connect(self._stack_changed)
        self.undo_stack.indexChanged.connect(self._stack_changed)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        self.resize(1500, 900)
        self.setStyleSheet(theme.stylesheet())
        icon = theme.resources_dir() / "icons" / "latentgraph.png"
        if icon.exists():
            self.setWindowIcon(QIcon(str(icon)))
        self._restore_settings()
        self.update_title()

    # ----- construction ---------------------------------------------------------------
    def _build_panels(self) -> None:
        self.properties = PropertiesPanel(self)
        self.image_viewer = ImageViewer(self)
        self.inspector = LatentInspector(self)
        self.run_log = RunLog()
        self.docks: dict[str, QDockWidget] = {}
        for key, title, widget, area in (
                ("properties", "Properties", self.properties, Qt.DockWidgetArea.RightDockWidgetArea),
                ("image", "Image", self.image_viewer, Qt.DockWidgetArea.RightDockWidgetArea),
                ("inspector", "Latent inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea),
                ("log", "Run log", self.run_log, Qt.DockWidgetArea.BottomDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        self.tabifyDockWidget(self.docks["image"], self.docks["inspector"])
        self.docks["image"].raise_()
        self.resizeDocks([self.docks["properties"]], [360], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["properties"], self.docks["image"]], [420, 360],
                         Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["log"]], [120], Qt.Orientation.Vertical)

    def _build_status(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.zoom_label = QLabel("100%")
        self.statusBar().addPermanentWidget(self.zoom_label)
        self.statusBar().addPermanentWidget(self.progress)
        self.view.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))

    def _action(self, name: str, text: str, slot, shortcuts=(), on_view: bool = False) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        if shortcuts:
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.triggered.connect(lambda _checked=False: slot())
        if on_view:
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.view.addAction(action)
        else:
            self.addAction(action)
        self.actions_by_name[name] = action
        return action

    def _build_actions(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        c, v = self.controller, self.view
        a = self._action
        a("new", "&New", self.new_file, ["Ctrl+N"])
        a("open", "&Open…", self.open_dialog, ["Ctrl+O"])
        a("save", "&Save", self.save, ["Ctrl+S"])
        a("save_as", "Save &as…", self.save_as, ["Ctrl+Shift+S"])
        a("import_image", "&Import image with workflow…", self.import_image)
        a("quit", "&Quit", self.close, ["Ctrl+Q"])
        undo = self.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcuts([QKeySequence("Ctrl+Z")])
        redo = self.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for name, action in (("undo", undo), ("redo", redo)):
            action.setObjectName(name)
            self.addAction(action)
            self.actions_by_name[name] = action
        a("cut", "Cu&t", c.cut, ["Ctrl+X"], on_view=True)
        a("copy", "&Copy", c.copy, ["Ctrl+C"], on_view=True)
        a("paste", "&Paste", lambda: c.paste(), ["Ctrl+V"], on_view=True)
        a("paste_links", "Paste with input links", lambda: c.paste(keep_input_links=True),
          ["Ctrl+Shift+V"], on_view=True)
        a("duplicate", "&Duplicate", c.duplicate, ["Ctrl+D"], on_view=True)
        a("delete", "De&lete", c.delete_selected, ["Delete", "Backspace"], on_view=True)
        a("select_all", "Select &all", c.select_all, ["Ctrl+A"], on_view=True)
        a("add_node", "Add node…", lambda: v.open_search(), ["Shift+A"], on_view=True)
        a("bypass", "&Bypass", lambda: c.toggle_flag("bypass"), ["Ctrl+B"], on_view=True)
        a("mute", "&Mute", lambda: c.toggle_flag("mute"), ["Ctrl+M"], on_view=True)
        a("group", "&Group in frame", c.group, ["Ctrl+G"], on_view=True)
        a("frame_selected", "&Frame selection", v.frame_selection_or_all, ["F"], on_view=True)
        a("frame_all", "Frame &all", v.frame_all, ["Home"], on_view=True)
        a("zoom_in", "Zoom &in", v.zoom_in, ["Ctrl++", "Ctrl+="])
        a("zoom_out", "Zoom &out", v.zoom_out, ["Ctrl+-"])
        a("run", "&Run", self.run, ["Ctrl+Return", "Ctrl+Enter"])
        a("run_selected", "Run to &selected node", self.run_selected, ["Ctrl+Shift+Return"])
        a("cancel", "&Cancel", self.cancel, ["Ctrl+Alt+Return", "Ctrl+Alt+Enter"])
        esc = a("cancel_esc", "Cancel (Esc)", self.cancel, ["Esc"])
        esc.setEnabled(False)
        self.actions_by_name["cancel"].setEnabled(False)
        a("shortcuts", "&Keyboard shortcuts", self.show_shortcuts, ["F1"])
        a("about", "&About", self.show_about)
        a("plugins", "&Plugins", lambda: PluginsDialog(self.registry, self).exec())
        # Tab: Qt uses it for focus, so bind it with a shortcut on the view.
        self.tab_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Tab), self.view)
        self.tab_shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
        self.tab_shortcut.activated.connect(v.tab_pressed)

    def _build_menus(self) -> None:
        n = self.actions_by_name
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for name in ("new", "open"):
            file_menu.addAction(n[name])
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        for name in ("save", "save_as", "import_image"):
            file_menu.addAction(n[name])
        file_menu.addSeparator()
        file_menu.addAction(n["quit"])
        edit = bar.addMenu("&Edit")
        for name in ("undo", "redo", None, "cut", "copy", "paste", "paste_links", "duplicate",
                     "delete", "select_all", None, "add_node", "bypass", "mute", "group"):
            edit.addSeparator() if name is None else edit.addAction(n[name])
        view_menu = bar.addMenu("&View")
        for name in ("frame_all", "frame_selected", "zoom_in", "zoom_out"):
            view_menu.addAction(n[name])
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        run_menu = bar.addMenu("&Run")
        for name in ("run", "run_selected", "cancel"):
            run_menu.addAction(n[name])
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(n["shortcuts"])
        help_menu.addAction(n["plugins"])
        help_menu.addAction(n["about"])

    # ----- settings -------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str) -> None:
        path = os.path.abspath(path)
        recent = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", [path] + recent[:MAX_RECENT - 1])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_files():
            self.recent_menu.addAction(path, lambda p=path: self.open_path(p))
        if not self.recent_menu.actions():
            self.recent_menu.addAction("(none)").setEnabled(False)

    # ----- title, status --------------------------------------------------------------
    def is_modified(self) -> bool:
        return not self.undo_stack.isClean()

    def _stack_changed(self, *_args) -> None:
        try:
            self.update_title()
        except RuntimeError:  # the stack is being destroyed with the window
            pass

    def update_title(self) -> None:
        mark = "*" if self.is_modified() else ""
        self.setWindowTitle(f"{self.display_name}{mark} — {APP_NAME}")

    def status(self, message: str, timeout_ms: int = 6000) -> None:
        if message:
            self.statusBar().showMessage(message, timeout_ms)
        else:
            self.statusBar().clearMessage()

    def _selection_changed(self) -> None:
        ids = self.scene.selected_node_ids()
        self.properties.show_node(ids[0] if len(ids) == 1 else None)
        if len(ids) == 1 and ids[0] in self.node_images:  # the viewer follows the selection
            self.image_viewer.show_image(self.node_images[ids[0]], self._title(ids[0]),
                                         self.run_workflow_text)

    # ----- dialogs (replaceable) ------------------------------------------------------
    def _ask_unsaved(self) -> str:
        answer = QMessageBox.question(
            self, APP_NAME, f"Save changes to {self.display_name}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(answer, "cancel")

    def _show_error(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

    def _ask_recover(self) -> bool:
        return QMessageBox.question(
            self, APP_NAME, "LatentGraph did not close cleanly. Recover the unsaved workflow?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No) == QMessageBox.StandardButton.Yes

    def _ask_open_path(self, title: str, filters: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, title, os.path.dirname(self.path or ""), filters)
        return path or None

    def _ask_save_path(self) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save workflow", self.path or "workflow.json",
                                              "Workflows (*.json)")
        return path or None

    def error(self, title: str, text: str) -> None:
        self.last_error = text
        self.status(text)
        self.show_error(title, text)

    # ----- files ----------------------------------------------------------------------
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
        self.scene.clearSelection()
        self.graph.clear()
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self.path, self.display_name = None, "Untitled"
        self.view.resetTransform()
        self.view.centerOn(0, 0)
        self.update_title()

    def open_dialog(self) -> None:
        path = self.ask_open_path("Open workflow", "Workflows (*.json);;Images with workflow (*.png)")
        if path:
            self.open_path(path)

    def import_image(self) -> None:
        path = self.ask_open_path("Import image with workflow", "PNG images (*.png)")
        if path:
            self.open_path(path)

    def read_workflow(self, path: str) -> Graph:
        """Load a .json workflow or a PNG carrying one; raises WorkflowError."""
        if Path(path).suffix.lower() == ".png":
            try:
                text = pngmeta.workflow_text(path)
            except (OSError, ValueError) as exc:
                raise WorkflowError("", str(exc), path) from None
            if text is None:
                raise WorkflowError("", "this image carries no LatentGraph workflow", path)
            return workflow.loads(text, self.registry, file=path)
        return workflow.load(path, self.registry)

    def open_path(self, path: str, ask: bool = True) -> bool:
        try:
            loaded = self.read_workflow(path)
        except WorkflowError as exc:
            self.error("Cannot open workflow", str(exc))
            return False
        if ask and not self.maybe_save():
            return False
        self.load_graph(loaded)
        is_png = Path(path).suffix.lower() == ".png"
        self.path = None if is_png else os.path.abspath(path)
        # Relative paths in the workflow (e.g. Load image) are looked up next to the file.
        self.base_dir = os.path.dirname(os.path.abspath(path))
        self.display_name = Path(path).stem if is_png else Path(path).name
        if not is_png:
            self._add_recent(path)
        self.update_title()
        self.status(f"Opened {path}")
        return True

    def load_graph(self, loaded: Graph) -> None:
        """Replace the canvas with ``loaded`` in one go (the scene rebuilds once)."""
        self.scene.clearSelection()
        self.scene.bridge.suspended = True
        try:
            self.graph.replace_with(loaded)
        finally:
            self.scene.bridge.suspended = False
        self.scene.rebuild()
        self.properties.show_node(None)
        self.node_images.clear()
        self.undo_stack.clear()
        self.undo_stack.setClean()
        if self.graph.view == View() and self.graph.nodes:
            self.view.frame_all()
        else:
            self.view.apply_model_view(self.graph.view)
        self.view.schedule_widgets()

    def store_view(self) -> None:
        zoom, center = self.view.current_view()
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
        self.store_view()
        try:
            workflow.save(self.graph, path)
        except OSError as exc:
            self.error("Cannot save", f"{path}: {exc.strerror or exc}")
            return False
        self.path = os.path.abspath(path)
        self.display_name = Path(path).name
        self.undo_stack.setClean()
        self._add_recent(path)
        self.remove_recovery()
        self.update_title()
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
        self.update_title()
        return True

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.maybe_save():
            event.ignore()
            return
        self._save_settings()
        self.autosave_timer.stop()
        self.worker.shutdown()
        self.remove_recovery()
        self.scene.bridge.detach()
        event.accept()

    # ----- running --------------------------------------------------------------------
    def run(self, targets: list[str] | None = None) -> bool:
        if self.worker.busy:
            self.status("A run is already in progress")
            return False
        snap = snapshot(self.graph)
        self.run_workflow_text = workflow.dumps(snap)
        for item in self.scene.node_items.values():
            item.set_badge(None)
        self.running = True
        self._set_running_ui(True)
        self.run_log.log("run requested" + (f" to {len(targets)} node(s)" if targets else ""))
        settings = {"output_dir": self.output_dir, "base_dir": self.base_dir}
        return self.worker.request(snap, targets, settings)

    def run_selected(self) -> bool:
        ids = self.scene.selected_node_ids()
        if not ids:
            self.status("Select the node to run to")
            return False
        return self.run(targets=ids)

    def cancel(self) -> None:
        if self.worker.busy:
            self.worker.cancel()
            self.status("Cancelling…")

    def _set_running_ui(self, running: bool) -> None:
        self.actions_by_name["cancel"].setEnabled(running)
        self.actions_by_name["cancel_esc"].setEnabled(running)
        self.actions_by_name["run"].setEnabled(True)
        self.progress.setVisible(running)
        self.progress.setValue(0)

    def _title(self, node_id: str) -> str:
        node = self.graph.nodes.get(node_id)
        return node.title if node else node_id[:8]

    def _badge(self, node_id: str, state: str, text: str, tooltip: str = "") -> None:
        item = self.scene.node_items.get(node_id)
        if item is not None:
            item.set_badge(state, text, tooltip)

    def _node_image(self, node_id: str, image: Any) -> None:
        item = self.scene.node_items.get(node_id)
        self.node_images[node_id] = image
        if item is not None:
            item.set_image(pil_to_qimage(image))

    def on_executor_event(self, name: str, p: dict) -> None:
        node_id = p.get("node_id")
        if name == "run_started":
            self._total_nodes = max(1, len(p["node_ids"]))
            self._done_nodes = 0
            for n in p["node_ids"]:
                self._badge(n, "queued", "queued")
            self.run_log.log(f"run started: {len(p['node_ids'])} node(s)")
        elif name == "node_started":
            self._badge(node_id, "running", "running")
            self.status(f"Running {self._title(node_id)}…", 0)
        elif name == "node_cached":
            self._badge(node_id, "cached", "cached")
            self._step_done()
        elif name == "progress":
            total = max(1, int(p["total"]))
            pct = int(100 * p["step"] / total)
            self._badge(node_id, "running", f"{pct}%")
            self.progress.setValue(pct)
            self.progress.setFormat(f"{self._title(node_id)} {p['step']}/{total}")
        elif name == "preview":
            self._node_image(node_id, p["image"])
        elif name == "images":
            images = p.get("images") or []
            if images:
                self._node_image(node_id, images[0])
                self.image_viewer.show_image(images[0], self._title(node_id), self.run_workflow_text)
        elif name == "status":
            line = f"{self._title(node_id)}: {p.get('message')}"
            self.status(line, 0)
            self.run_log.log(line)
        elif name == "warning":
            self.run_log.log(f"warning: {self._title(node_id)}: {p.get('message')}")
        elif name == "node_finished":
            self._badge(node_id, "done", f"{p['seconds']:.2f}s")
            self.run_log.log(f"{self._title(node_id)} done in {p['seconds']:.2f}s")
            self._step_done()
        elif name == "node_failed":
            message = f"{p['error_type']}: {p['message']}"
            self._badge(node_id, "failed", "failed", f"{p['title']} failed\n{message}")
            self.run_log.log(f"FAILED {p['title']}: {message}")
            self.status(f"{p['title']} failed: {message}", 0)
        elif name == "node_skipped":
            self._badge(node_id, "skipped", "skipped", p.get("reason", ""))
        elif name == "run_cancelled":
            if node_id:
                self._badge(node_id, "cancelled", "cancelled")
            self.run_log.log("run cancelled")
        elif name == "run_finished":
            result = p["result"]
            for item in self.scene.node_items.values():
                if item.badge and item.badge[0] in ("queued", "running"):
                    item.set_badge(None)
            self.run_log.log(f"run {result.status} in {result.seconds:.2f}s "
                             f"({len(result.executed)} ran, {len(result.cached)} cached)")
            if result.status == "finished":
                self.status(f"Finished in {result.seconds:.2f}s", 8000)
            elif result.status == "cancelled":
                self.status("Run cancelled", 8000)
            elif result.error is not None and not result.error.node_id:
                self.status(f"Run failed: {result.error}", 0)

    def _step_done(self) -> None:
        self._done_nodes = getattr(self, "_done_nodes", 0) + 1

    def on_run_done(self, result) -> None:
        self.running = False
        self._set_running_ui(False)
        for node_id, updates in (result.param_updates or {}).items():
            if node_id in self.graph.nodes:
                for name, value in updates.items():
                    try:
                        self.graph.set_param(node_id, name, value)  # not undoable, by design
                    except (ValueError, KeyError):
                        pass
        # UNet denoise nodes (UNET_TYPE) output "trace"; any node that does is inspectable.
        traces = {n: out["trace"] for n, out in result.outputs.items()
                  if isinstance(out, dict) and out.get("trace") is not None}
        if traces:
            self.inspector.set_traces(traces, {n: self._title(n) for n in traces})
        self.last_result = result

    # ----- help -----------------------------------------------------------------------
    def shortcuts_text(self) -> str:
        return "\n".join(f"{what}: {keys}" for what, keys in SHORTCUTS)

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", self.shortcuts_text())

    def show_about(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}",
                          f"{APP_NAME} {workflow.APP_VERSION}\nA node editor for Stable Diffusion pipelines.")


def open_main_window(workflow_path: str | None = None, output_dir: str | None = None) -> MainWindow:
    """Show the main window with ``workflow_path`` (or the bundled txt2img workflow, or a
    recovered autosave). Needs a QApplication."""
    app = QApplication.instance()
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    have_nodes = _load_nodes()
    window = MainWindow(output_dir=output_dir)
    window.show()
    if have_nodes:  # the imports a first run needs, done while the user looks around
        from nodes.models import import_libraries

        window.worker.prepare(import_libraries)
    recovered = window.offer_recovery()
    if not recovered:
        if workflow_path:
            window.open_path(workflow_path, ask=False)
        elif default_workflow_path().exists():
            window.open_path(str(default_workflow_path()), ask=False)
            window.path = None  # Save asks where: never overwrite the bundled example
            window.update_title()
            QTimer.singleShot(0, window.view.frame_all)
    app.aboutToQuit.connect(window.worker.shutdown)  # never leave the run thread behind
    return window


def run_app(workflow_path: str | None = None, output_dir: str | None = None) -> int:
    """Create the QApplication, open the main window and run the event loop; the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    run_app.window = open_main_window(workflow_path, output_dir)  # for scripting
    return app.exec()

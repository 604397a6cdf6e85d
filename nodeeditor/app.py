"""The main window: composes the canvas (scene, view, controller), the docks, the menus,
the document (file, dirty state, recovery: ``document.py``) and the run presenter (run
events -> badges, log, status bar: ``run_presenter.py``); and ``run_app``."""

from __future__ import annotations

import json
import os
import sys

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import QApplication, QDockWidget, QLabel, QMainWindow, QMessageBox, QProgressBar

from graphs import Executor, Graph, Registry, View, default_registry, workflow
from graphs.run_settings import DEFAULT_OUTPUT_DIR

from . import theme, widgets
from .context_menu import ContextMenus
from .controller import Controller
from .document import APP_NAME, Document
from .gallery import install_gallery
from .history_panel import HistoryPanel, HistoryService
from .library import NodeLibrary
from .minimap import install_minimap
from .panels import ImageViewer, LatentInspector, PropertiesPanel, RunLog
from .plugins_dialog import PluginsDialog
from .queue_panel import QueuePanel, run_toolbar, runs_tabs
from .run_presenter import RunPresenter
from .run_queue import RunQueue
from .scene import GraphScene
from .sweep_dialog import open_sweep_dialog
from .ui_scale import install_ui_scale
from .view import GraphView
from .worker import RunWorker

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
    ("Run (queues while running) / cancel", "Ctrl+Enter / Ctrl+Alt+Enter, Esc while running"),
    ("Open / save", "Ctrl+O / Ctrl+S; drop a .json or an output .png"),
]


def default_workflow_path():
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
    """``document`` (file, dirty state, recovery), ``runs`` (the run queue and its display),
    ``history`` (past runs, shared by the windows using its folder: by default ``history/``
    beside the recovery file), ``controller`` (edits), ``scene``/``view`` (the canvas)."""

    def __init__(self, registry: Registry | None = None, executor: Executor | None = None,
                 output_dir: str | None = None, settings: QSettings | None = None,
                 recovery_path: str | None = None, history_path: str | None = None) -> None:
        super().__init__()
        self.registry = registry or default_registry()
        self.graph = Graph(self.registry)
        self.output_dir = output_dir or os.path.join(os.getcwd(), DEFAULT_OUTPUT_DIR)
        self.settings = settings or QSettings(APP_NAME, APP_NAME)
        recovery_path = recovery_path or os.path.join(
            QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation),
            "recovery.json")
        self.history = HistoryService.for_folder(history_path or os.path.join(os.path.dirname(recovery_path),
                                                                               "history"))

        self.undo_stack = QUndoStack(self)
        self.scene = GraphScene(self.graph, self)
        self.view = GraphView(self.scene, self)
        self.setCentralWidget(self.view)
        self.controller = Controller(self.graph, self.undo_stack, self.scene, self.view,
                                     status=self.status, parent=self)
        self.controller.model_settings = self._model_folder_settings
        self.document = Document(self.graph, self.undo_stack, self.scene.bridge, self.settings,
                                 recovery_path, self.view.current_view, self.status, self)
        self.worker = RunWorker(executor or Executor(), self)
        if "nodes" in sys.modules:  # out of memory: the executor frees the loaded models too
            self.worker.executor.release_hooks.append(sys.modules["nodes"].release_models)
        self._build_panels()
        self._build_status()
        self.runs = RunPresenter(self.graph, self.scene, self.worker, self.run_log, self.image_viewer,
                                 self.inspector, self.progress, self.status, self._run_settings, self,
                                 self.run_queue)
        self.runs.run_ended.connect(self.history.record)
        self.history_panel.attach(self.history)
        self.context_menus = ContextMenus(self.view, self.controller, self.runs.run, self, self.document)
        self._build_actions()
        self._build_menus()
        self.addToolBar(run_toolbar(self))
        install_ui_scale(self)  # before any node is laid out
        install_gallery(self)
        install_minimap(self)

        self.view.file_dropped.connect(self.document.open_path)
        self.document.imported.connect(self.show_import_report)
        self.import_dialog: QMessageBox | None = None
        self.view.status_message.connect(self.status)
        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.bridge.event.connect(self.properties.on_model_event)
        self.document.changed.connect(self.update_title)
        self.document.replacing.connect(self.scene.clearSelection)
        self.document.replaced.connect(self._graph_replaced)
        self.document.cleared.connect(self._graph_cleared)
        self.runs.running_changed.connect(self._set_running_ui)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.document.autosave)
        self.autosave_timer.start()
        self.resize(1500, 900)
        self.setStyleSheet(theme.stylesheet())
        icon = theme.resources_dir() / "icons" / "latentgraph.png"
        if icon.exists():
            self.setWindowIcon(QIcon(str(icon)))
        self._restore_settings()
        widgets.model_folder_settings = self._model_folder_settings  # file params list model files
        self.update_title()

    def _run_settings(self) -> dict:
        return {"output_dir": self.output_dir, "base_dir": self.document.base_dir,
                "models_dir": self.models_dir()}

    def _model_folder_settings(self) -> dict:
        return {"models_dir": self.models_dir(), "base_dir": self.document.base_dir}

    def models_dir(self) -> str:
        """The models folder (ComfyUI's layout) file params may name files in; kept in settings."""
        return str(self.settings.value("models/dir", "") or "")

    def set_models_dir(self, folder: str) -> None:
        self.settings.setValue("models/dir", folder)
        self.statusBar().showMessage(f"Models folder: {folder or '(none)'}", 5000)

    def choose_models_dir(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(
            self, "Models folder (with checkpoints/, loras/, vae/, embeddings/...)", self.models_dir())
        if folder:
            self.set_models_dir(folder)

    def open_settings(self) -> None:
        from .settings_dialog import SettingsDialog  # here: most sessions never open it

        SettingsDialog(self).exec()

    # ----- construction ---------------------------------------------------------------
    def _build_panels(self) -> None:
        self.properties = PropertiesPanel(self)
        self.image_viewer = ImageViewer(self)
        self.inspector = LatentInspector(self)
        self.run_log = RunLog()
        self.run_queue = RunQueue(self)
        self.queue_panel = QueuePanel(self.run_queue)
        self.history_panel = HistoryPanel(self)
        self.library = NodeLibrary(self.registry, self._add_at_centre)
        self.docks: dict[str, QDockWidget] = {}
        for key, title, widget, area in (
                ("library", "Node library", self.library, Qt.DockWidgetArea.LeftDockWidgetArea),
                ("properties", "Properties", self.properties, Qt.DockWidgetArea.RightDockWidgetArea),
                ("image", "Image", self.image_viewer, Qt.DockWidgetArea.RightDockWidgetArea),
                ("inspector", "Latent inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea),
                ("log", "Run log", self.run_log, Qt.DockWidgetArea.BottomDockWidgetArea),
                ("runs", "Queue and history", runs_tabs(self.queue_panel, self.history_panel),
                 Qt.DockWidgetArea.BottomDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        self.tabifyDockWidget(self.docks["image"], self.docks["inspector"])
        self.splitDockWidget(self.docks["log"], self.docks["runs"], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["log"], self.docks["runs"]], [2, 3], Qt.Orientation.Horizontal)
        self.docks["image"].raise_()
        self.resizeDocks([self.docks["properties"]], [360], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["properties"], self.docks["image"]], [420, 360],
                         Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["log"]], [170], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["library"]], [210], Qt.Orientation.Horizontal)

    def _add_at_centre(self, type_id: str) -> None:
        centre = self.view.center()
        self.view.add_node_requested.emit(type_id, (centre.x(), centre.y()), None)

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
        d, r = self.document, self.runs
        a("new", "&New", d.new_file, ["Ctrl+N"])
        a("open", "&Open…", d.open_dialog, ["Ctrl+O"])
        a("save", "&Save", d.save, ["Ctrl+S"])
        a("save_as", "Save &as…", d.save_as, ["Ctrl+Shift+S"])
        a("import_image", "&Import image with workflow…", d.import_image)
        a("models_dir", "&Models folder…", self.choose_models_dir)
        a("settings", "Settin&gs…", self.open_settings, ["Ctrl+,"])
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
        a("run", "&Run", r.run, ["Ctrl+Return", "Ctrl+Enter"])
        a("run_selected", "Run to &selected node", r.run_selected, ["Ctrl+Shift+Return"])
        a("cancel", "&Cancel", r.cancel, ["Ctrl+Alt+Return", "Ctrl+Alt+Enter"])
        a("sweep", "S&weep…", lambda: open_sweep_dialog(self))
        esc = a("cancel_esc", "Cancel (Esc)", r.cancel, ["Esc"])
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
        self.templates_menu = file_menu.addMenu("&Templates")
        self.templates_menu.setToolTipsVisible(True)
        self._fill_templates()
        for name in ("save", "save_as", "import_image", None, "models_dir", "settings"):
            file_menu.addSeparator() if name is None else file_menu.addAction(n[name])
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
        for name in ("run", "run_selected", "cancel", None, "sweep"):
            run_menu.addSeparator() if name is None else run_menu.addAction(n[name])
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
        try:  # how often each node type was added from the search: it ranks them
            usage = json.loads(str(self.settings.value("search/usage", "{}")))
            self.view.search_usage.update({str(k): int(v) for k, v in usage.items()})
        except (ValueError, TypeError, AttributeError):
            pass

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("search/usage", json.dumps(self.view.search_usage))
        self.settings.sync()

    def _fill_templates(self) -> None:
        """The bundled workflows; each opens as an untitled copy."""
        from .document import templates
        from .template_icons import workflow_icon

        self.templates_menu.clear()
        for file, title, description in templates():
            action = self.templates_menu.addAction(workflow_icon(file), f"{title} — {description}" if description
                                                   else title, lambda path=str(file): self.document.open_path(path))
            action.setToolTip(description or title)
        if self.templates_menu.isEmpty():
            self.templates_menu.addAction("(none)").setEnabled(False)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.document.recent_files():
            self.recent_menu.addAction(path, lambda p=path: self.document.open_path(p))
        if not self.recent_menu.actions():
            self.recent_menu.addAction("(none)").setEnabled(False)

    # ----- title, status, selection ----------------------------------------------------
    def show_import_report(self, report) -> None:
        """What an imported ComfyUI file became: in the run log, and in a dialog that stays out of
        the way (not modal: the graph can be looked at while it is open). The other program's
        layout is shown whole."""
        self.view.frame_all()
        for line in report.lines():
            self.run_log.log(line)
        dialog = QMessageBox(QMessageBox.Icon.Information if report.clean else QMessageBox.Icon.Warning,
                             "ComfyUI import", report.lines()[0], QMessageBox.StandardButton.Close, self)
        if not report.clean:
            dialog.setInformativeText("Some nodes or values need a look: see Details, or the Run log.")
            dialog.setDetailedText(report.text())
        dialog.setModal(False)
        dialog.show()
        self.import_dialog = dialog

    def update_title(self) -> None:
        try:
            self.setWindowTitle(self.document.title())
        except RuntimeError:  # the undo stack is being destroyed with the window
            pass

    def status(self, message: str, timeout_ms: int = 6000) -> None:
        if message:
            self.statusBar().showMessage(message, timeout_ms)
        else:
            self.statusBar().clearMessage()

    def _selection_changed(self) -> None:
        ids = self.scene.selected_node_ids()
        self.properties.show_node(ids[0] if len(ids) == 1 else None)
        images = self.runs.node_images
        if len(ids) == 1 and ids[0] in images:  # the viewer follows the selection
            self.image_viewer.show_image(images[ids[0]], self.runs.title(ids[0]), self.runs.workflow_of(ids[0]))

    def _set_running_ui(self, running: bool) -> None:
        self.actions_by_name["cancel"].setEnabled(running)
        self.actions_by_name["cancel_esc"].setEnabled(running)
        self.actions_by_name["run"].setEnabled(True)

    # ----- the document's graph was replaced -------------------------------------------
    def _graph_replaced(self) -> None:
        self.scene.rebuild()
        self.properties.show_node(None)
        self.runs.clear_images()
        if self.graph.view == View() and self.graph.nodes:
            self.view.frame_all()
        else:
            self.view.apply_model_view(self.graph.view)
        self.view.schedule_widgets()

    def _graph_cleared(self) -> None:
        self.view.reset_view()
        self.image_viewer.clear()
        self.inspector.set_traces({}, {})
        self.runs.clear_images()
        self.view.setFocus()  # Tab opens the search at once, without a click on the canvas first

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.document.maybe_save():
            event.ignore()
            return
        self._save_settings()
        if widgets.model_folder_settings == self._model_folder_settings:
            widgets.model_folder_settings = dict
        self.autosave_timer.stop()
        if getattr(self, "sweep_dialog", None) is not None:
            self.sweep_dialog.shutdown()
        self.worker.shutdown()
        self.history.release()
        self.document.remove_recovery()
        self.scene.bridge.detach()
        event.accept()

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
    document = window.document
    recovered = document.offer_recovery()
    if not recovered:
        if workflow_path:
            document.open_path(workflow_path, ask=False)
        elif default_workflow_path().exists():
            document.open_path(str(default_workflow_path()), ask=False)
            document.path = None  # Save asks where: never overwrite the bundled example
            window.update_title()
            QTimer.singleShot(0, window.view.frame_all)
    app.aboutToQuit.connect(window.worker.shutdown)  # never leave the run thread behind
    return window


def run_app(workflow_path: str | None = None, output_dir: str | None = None) -> int:
    """Create the QApplication, open the main window and run the event loop; the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    run_app.window = open_main_window(workflow_path, output_dir)  # for scripting
    return app.exec()

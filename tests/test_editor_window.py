# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""Window behaviour: title and modified mark, closing with unsaved changes, autosave and
recovery, recent files, panels, lazy inline widgets, and the package layering."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest_editor import build_chain, dumps, image_workflow, registry, window  # noqa: F401
from PySide6.QtCore import QSettings
from PySide6.QtGui import QCloseEvent

from graphs import Graph, workflow


def test_import_nodeeditor_does_not_load_pyside():
    code = "import sys, nodeeditor; print('PySide6' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_app_entry_point_exists():
    from nodeeditor.app import run_app
    assert callable(run_app)


def test_title_modified_mark(window, registry, tmp_path):
    assert window.windowTitle() == "Untitled — LatentGraph"
    window.document.load_graph(image_workflow(registry))
    window.controller.set_param("c0nst", "value", 3)
    assert window.windowTitle() == "Untitled* — LatentGraph"
    window.undo_stack.undo()
    assert window.windowTitle() == "Untitled — LatentGraph"


def test_close_with_unsaved_changes_asks(window, registry, tmp_path):
    window.document.load_graph(image_workflow(registry))
    window.controller.set_param("c0nst", "value", 3)
    asked = []
    window.document.ask_unsaved = lambda: asked.append(1) or "cancel"
    event = QCloseEvent()
    window.closeEvent(event)
    assert asked and not event.isAccepted()
    path = str(tmp_path / "saved.json")
    window.document.ask_unsaved = lambda: "save"
    window.document.ask_save_path = lambda: path
    event = QCloseEvent()
    window.closeEvent(event)
    assert event.isAccepted()
    assert workflow.load(path, registry).nodes["c0nst"].params["value"] == 3


def test_autosave_and_recovery(window, qtbot, registry, tmp_path):
    from nodeeditor.app import MainWindow
    window.document.load_graph(image_workflow(registry))
    assert not window.document.autosave()  # nothing to save while clean
    window.controller.set_param("c0nst", "value", 11)
    assert window.document.autosave()
    assert os.path.exists(window.document.recovery_path)
    expected = dumps(window.graph)
    other = MainWindow(registry=registry, settings=QSettings(str(tmp_path / "o.ini"),
                                                            QSettings.Format.IniFormat),
                       recovery_path=window.document.recovery_path)
    qtbot.addWidget(other)
    other.document.ask_recover = lambda: True
    other.document.ask_unsaved = lambda: "discard"
    assert other.document.offer_recovery()
    assert dumps(other.graph) == expected
    assert other.windowTitle().endswith("* — LatentGraph")
    other.close()  # a clean exit removes the recovery file
    assert not os.path.exists(window.document.recovery_path)
    other.worker.shutdown()


def test_recent_files_and_settings(window, registry, tmp_path):
    for name in ("a.json", "b.json"):
        workflow.save(image_workflow(registry), tmp_path / name)
        window.document.open_path(str(tmp_path / name))
    assert window.document.recent_files()[:2] == [str(tmp_path / "b.json"), str(tmp_path / "a.json")]
    window._fill_recent()
    assert [a.text() for a in window.recent_menu.actions()][:2] == window.document.recent_files()[:2]
    window._save_settings()
    assert window.settings.value("window/geometry") is not None


def test_properties_panel_edits_through_commands(window, registry):
    window.document.load_graph(image_workflow(registry))
    window.scene.select_nodes(["1mage"])
    panel = window.properties
    assert panel.node_id == "1mage"
    panel.editors["steps"].widget.setValue(12)
    assert window.graph.nodes["1mage"].params["steps"] == 12
    panel.title_edit.setText("Imager")
    panel.title_edit.editingFinished.emit()
    assert window.graph.nodes["1mage"].title == "Imager"
    panel.flag_boxes["mute"].setChecked(True)
    assert window.graph.nodes["1mage"].flags["mute"]
    assert window.undo_stack.count() == 3
    window.undo_stack.undo()
    assert not panel.flag_boxes["mute"].isChecked()
    window.undo_stack.undo()
    assert panel.title_edit.text() == "Make image"


def test_lazy_widgets_and_level_of_detail(window, registry):
    g = Graph(registry)
    for i in range(60):
        g.add_node(g.create_node("test.text", (i % 10 * 300, i // 10 * 400)))
    window.document.load_graph(g)
    window.view.set_zoom(1.0)
    window.view.centerOn(0, 0)
    window.view.materialize_visible(None)
    with_widgets = sum(1 for item in window.scene.node_items.values() if item.has_widgets())
    assert 0 < with_widgets < 60
    window.view.set_zoom(0.3)
    assert not window.scene.widgets_visible
    assert window.view.materialize_visible(None) == 0
    assert all(not item.proxy.isVisible() for item in window.scene.node_items.values() if item.proxy)
    window.view.set_zoom(1.0)
    assert window.scene.widgets_visible


def test_node_sizes_fit_widgets(window, registry):
    g = Graph(registry)
    node = g.add_node(g.create_node("test.text", (0, 0)))
    window.document.load_graph(g)
    window.view.set_zoom(1.0)
    window.view.centerOn(100, 150)
    window.view.materialize_visible(None)
    item = window.scene.node_items[node.id]
    proxy_rect = item.proxy.mapRectToParent(item.proxy.boundingRect())
    assert item.body_rect().contains(proxy_rect)
    editors = item.editors
    for editor in editors.values():
        widget = editor.widget
        assert widget.width() >= 60, editor.param.name
    bottom = 0
    for editor in editors.values():  # rows do not overlap
        top = editor.widget.mapTo(item.proxy.widget(), editor.widget.rect().topLeft()).y()
        assert top >= bottom - 1 or editor.param.name == "control"
        bottom = max(bottom, top + editor.widget.height())


def test_collapse_hides_widgets_and_sockets_follow(window, registry):
    g = Graph(registry)
    ids = build_chain(g, 2)
    window.document.load_graph(g)
    window.view.materialize_visible(None)
    window.controller.toggle_collapse([ids[1]])
    item = window.scene.node_items[ids[1]]
    assert item.body_rect().height() == 26
    link = next(iter(item.links))
    assert link.path().pointAtPercent(1.0) == item.inputs["a"].scenePos()
    assert item.proxy is None or not item.proxy.isVisible()


def test_open_main_window_opens_the_file(qtbot, tmp_path, registry, monkeypatch):
    from PySide6.QtCore import QStandardPaths

    import nodeeditor.app as app_module
    QStandardPaths.setTestModeEnabled(True)
    graph = image_workflow(registry)
    path = tmp_path / "start.json"
    workflow.save(graph, path)
    monkeypatch.setattr(app_module, "default_registry", lambda: registry)
    monkeypatch.setattr(app_module, "_load_nodes", lambda: None)
    win = app_module.open_main_window(str(path), str(tmp_path / "out"))
    qtbot.addWidget(win)
    assert win.windowTitle() == "start.json — LatentGraph"
    assert sorted(win.graph.nodes) == sorted(graph.nodes)
    win.document.ask_unsaved = lambda: "discard"


def test_latentgraph_command_opens_and_quits(tmp_path):
    """`latentgraph` (no subcommand) runs the event loop with the bundled workflow; a timer
    quits it. Run in a subprocess: a finished QApplication.exec cannot be reused."""
    import os
    import subprocess
    import sys as _sys

    code = ("import sys\n"
            "from PySide6.QtCore import QTimer\n"
            "from PySide6.QtWidgets import QApplication\n"
            "app = QApplication(sys.argv[:1])\n"
            "from nodeeditor import app as a, cli\n"
            "def stop():\n"
            "    w = a.run_app.window\n"
            "    print('TITLE', w.windowTitle(), len(w.graph.nodes))\n"
            "    w.document.ask_unsaved = lambda: 'discard'\n"
            "    w.close(); app.quit()\n"
            "QTimer.singleShot(1500, stop)\n"
            "sys.exit(cli.main([]))\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run([_sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TITLE txt2img — LatentGraph" in proc.stdout and " 11" in proc.stdout  # an untitled copy


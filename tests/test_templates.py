# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""Bundled workflows are templates: File → Templates opens them as untitled copies, and nothing the
editor does writes into the app's own files; a run with unconnected inputs does not start."""

from __future__ import annotations

import pytest
from conftest_editor import build_chain, image_workflow, open_window, registry, wait_run, window  # noqa: F401

import nodes  # noqa: F401
from graphs import Graph, default_registry
from nodeeditor.document import templates, templates_dir


@pytest.fixture
def sd_window(qtbot, tmp_path):
    win = open_window(qtbot, tmp_path, default_registry())
    yield win
    win.worker.shutdown()


def test_templates_menu_opens_untitled_copies_that_never_save_into_the_app(sd_window, tmp_path, monkeypatch):
    win = sd_window
    found = {title: (file, description) for file, title, description in templates()}
    assert {"Text to image", "Image to image", "Hires fix", "SDXL text to image", "SDXL base + refiner", "Inpaint",
            "ControlNet (Canny)"} <= set(found)
    assert all(description for _, description in found.values())
    actions = {a.text().split(" — ")[0]: a for a in win.templates_menu.actions()}
    icons = {title: action.icon().pixmap(96, 60).toImage() for title, action in actions.items()}
    assert all(not image.isNull() for image in icons.values())  # each with a picture of its layout
    assert icons["Hires fix"] != icons["Text to image"]  # drawn from each file's own nodes
    before = {f: f.read_bytes() for f in templates_dir().glob("*")}
    actions["Hires fix"].trigger()
    assert win.document.path is None and win.document.display_name == "hires_fix"
    visible = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert all(visible.contains(item.sceneBoundingRect()) for item in win.scene.node_items.values())
    assert "hires_fix.json" not in " ".join(win.document.recent_files())
    assert any(n.type_id == "sd.upscale_latent" for n in win.graph.nodes.values())
    # Save asks where (here: the bundled file itself, as a user might pick it) and refuses
    monkeypatch.setattr(win.document, "ask_save_path", lambda: str(found["Hires fix"][0]))
    assert not win.document.save()
    assert win.errors and "bundled templates are part of the app" in win.errors[-1]
    monkeypatch.setattr(win.document, "ask_save_path", lambda: str(tmp_path / "mine.json"))
    assert win.document.save() and (tmp_path / "mine.json").exists()
    assert {f: f.read_bytes() for f in templates_dir().glob("*")} == before


def test_a_run_with_unconnected_inputs_does_not_start_and_marks_the_nodes(window, qtbot, registry):
    g = image_workflow(registry)  # const -> make image -> show: complete
    lonely = [g.add_node(g.create_node("test.show", (600, 300 * i))) for i in (1, 2)]
    window.document.load_graph(g)
    window.runs.run()
    wait_run(qtbot, window)
    items = window.scene.node_items
    for node in lonely:
        assert items[node.id].badge[0] == "failed"
        assert "'image' (IMAGE) is not connected" in items[node.id].toolTip()
    assert items["c0nst"].badge is None and items["sh0w"].badge is None  # nothing ran


def test_small_things_new_clears_the_image_dialogs_suggest_and_bypass_is_logged(window, qtbot, registry,
                                                                               monkeypatch, tmp_path):
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog

    # New clears the image panel and the inspector
    window.image_viewer.show_image(Image.new("RGB", (8, 8)), "old")
    window.document.new_file()
    assert window.image_viewer.image is None and window.image_viewer.caption.text() == "No image yet"
    assert window.inspector.current_trace() is None
    # The Open dialog shows workflows and images together first
    asked = []
    monkeypatch.setattr(window.document, "ask_open_path", lambda title, filters: asked.append(filters))
    window.document.open_dialog()
    assert asked[0].startswith("Workflows and images (*.json *.png *.webp)")
    # Save of an imported or template copy suggests its own name
    suggested = []
    def fake_dialog(parent, title, path, filters):
        suggested.append(path)
        return "", ""
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake_dialog))
    window.document.display_name = "portrait_00012"
    window.document._ask_save_path()
    assert suggested == ["portrait_00012.json"]
    # A bypassed node says so in the log and on its badge
    g = Graph(registry)
    ids = build_chain(g, 3)
    image = g.add_node(g.create_node("test.image", (900, 0)))
    show = g.add_node(g.create_node("test.show", (1200, 0)))
    g.connect(ids[-1], "sum", image.id, "value")
    g.connect(image.id, "image", show.id, "image")
    g.set_flag(ids[1], "bypass", True)
    window.document.load_graph(g)
    window.runs.run()
    wait_run(qtbot, window)
    assert window.runs.last_result.status == "finished"
    assert window.scene.node_items[ids[1]].badge == ("skipped", "bypassed")
    assert "bypassed" in window.run_log.toPlainText()


def test_canvas_help_menus_with_shortcuts_and_an_add_submenu(window, qtbot, registry):
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest

    window.document.new_file()
    # Tab right after New opens the search, without a click on the canvas first
    QTest.keyClick(window.view, Qt.Key.Key_Tab)
    assert window.view.search_popup is not None and window.view.search_popup.isVisible()
    window.view.search_popup.close()
    # the empty canvas says how to start: light text over the dark grid in the middle
    image = window.view.viewport().grab().toImage()
    middle = [image.pixelColor(x, image.height() // 2).lightness() for x in range(image.width())]
    assert max(middle) > 120
    # right-click on the empty canvas: Add by category, and the keys beside the actions
    menu = window.context_menus.show_at(QPoint(20, 20))
    texts = [a.text() for a in menu.actions()]
    assert "Add node…\tTab" in texts and "Paste\tCtrl+V" in texts
    add = next(a.menu() for a in menu.actions() if a.text() == "Add")
    test_menu = next(a.menu() for a in add.actions() if a.text() == "test")
    math = next(a.menu() for a in test_menu.actions() if a.text() == "math")
    next(a for a in math.actions() if a.text() == "Const").trigger()
    assert [n.type_id for n in window.graph.nodes.values()] == ["test.const"]
    menu.close()
    node = next(iter(window.scene.node_items.values()))
    menu = window.context_menus.show_at(window.view.mapFromScene(node.sceneBoundingRect().center()))
    assert "Bypass\tCtrl+B" in [a.text() for a in menu.actions()]
    menu.close()
    # the add-node popup opened at the window's bottom-right corner stays inside the window
    corner = window.view.mapToScene(window.view.viewport().rect().bottomRight() - QPoint(2, 2))
    popup = window.view.open_search(QPointF(corner))
    asked = window.view.viewport().mapToGlobal(window.view.mapFromScene(corner))
    assert popup.y() < asked.y()  # moved up from the bottom edge, where it would have run off
    assert window.geometry().adjusted(-4, -4, 4, 4).contains(popup.geometry())  # (a window frame's slack)
    popup.close()


def test_edited_nodes_say_changed_and_the_zoom_label_follows_new(window, qtbot, registry):
    window.document.load_graph(image_workflow(registry))
    window.runs.run()
    wait_run(qtbot, window)
    item = window.scene.node_items["c0nst"]
    assert item.badge[0] == "done"
    window.graph.set_param("c0nst", "value", 7)
    assert item.badge == ("changed", "changed") and "edited since the last run" in item.toolTip()
    window.view.set_zoom(0.5)
    assert window.zoom_label.text() == "50%"
    window.document.new_file()
    assert window.zoom_label.text() == "100%"

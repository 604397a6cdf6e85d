# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""The canvas minimap (nodeeditor/minimap.py): node rects, View toggle kept in settings, click to go."""

from __future__ import annotations

from conftest_editor import open_window, registry, window  # noqa: F401
from PySide6.QtCore import QPointF, QRectF, Qt

from graphs import Graph


def _spread_graph(registry, n=12):
    g = Graph(registry)
    for i in range(n):
        g.add_node(g.create_node("test.const", (i * 400.0, (i % 4) * 300.0)))
    return g


def test_minimap_draws_the_nodes_and_the_visible_part(window, qtbot, registry):
    window.document.load_graph(_spread_graph(registry))
    minimap = window.minimap
    qtbot.waitUntil(lambda: len(minimap.rects) == 12, timeout=3000)
    window.view.set_zoom(0.1)
    window.view.centerOn(window.scene.items_rect().center())
    assert not minimap.isVisible()  # the whole graph is on screen: it would only cover it
    window.view.set_zoom(1.0)
    assert minimap.isVisible()
    assert minimap.parent() is window.view and minimap.geometry().bottom() < window.view.height()
    qtbot.waitUntil(lambda: len(minimap.rects) == 12, timeout=3000)
    assert minimap.bounds.contains(window.scene.items_rect().adjusted(12, 12, -12, -12))  # bodies: no socket margins
    # an edit redraws the cached rects once, a little later (throttled)
    before = minimap.rebuilds
    for _ in range(5):
        window.controller.add_node("test.const", (9000.0, 0.0))
    qtbot.waitUntil(lambda: len(minimap.rects) == 17, timeout=3000)
    assert minimap.rebuilds - before <= 2
    assert minimap.bounds.right() >= 9000


def test_minimap_toggles_from_view_and_is_remembered(qtbot, tmp_path, registry):
    win = open_window(qtbot, tmp_path, registry)
    action = win.actions_by_name["minimap"]
    view_menu = next(a.menu() for a in win.menuBar().actions() if a.text().replace("&", "") == "View")
    assert action in view_menu.actions() and action.isChecked()
    win.document.load_graph(_spread_graph(registry))
    win.view.set_zoom(1.0)
    qtbot.waitUntil(lambda: win.minimap.isVisible(), timeout=3000)
    action.trigger()
    assert not win.minimap.isVisible()
    win.close()
    win.worker.shutdown()
    again = open_window(qtbot, tmp_path, registry)  # the same settings file
    try:
        assert not again.actions_by_name["minimap"].isChecked() and not again.minimap.enabled
        again.document.load_graph(_spread_graph(registry))
        again.view.set_zoom(1.0)
        assert not again.minimap.isVisible()
        again.actions_by_name["minimap"].trigger()
        assert again.minimap.isVisible()
    finally:
        again.worker.shutdown()


def test_clicking_the_minimap_centres_the_view_there(window, qtbot, registry):
    window.document.load_graph(_spread_graph(registry))
    window.view.set_zoom(1.0)
    window.view.centerOn(0, 0)
    minimap = window.minimap
    minimap.rebuild()
    target = QPointF(4000.0, 600.0)
    at = minimap.to_map(QRectF(target, target)).topLeft().toPoint()
    qtbot.mouseClick(minimap, Qt.MouseButton.LeftButton, pos=at)
    tolerance = 2 / minimap.scale  # a minimap pixel is this many scene units
    centre = window.view.center()
    assert abs(centre.x() - target.x()) <= tolerance and abs(centre.y() - target.y()) <= tolerance
    # dragging follows the mouse
    to = minimap.to_map(QRectF(QPointF(2000, 300), QPointF(2000, 300))).topLeft().toPoint()
    qtbot.mousePress(minimap, Qt.MouseButton.LeftButton, pos=at)
    qtbot.mouseMove(minimap, to)
    qtbot.mouseRelease(minimap, Qt.MouseButton.LeftButton, pos=to)
    assert abs(window.view.center().x() - 2000) <= tolerance

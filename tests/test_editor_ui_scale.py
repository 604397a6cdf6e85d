# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""View → UI scale (nodeeditor/ui_scale.py): node text size, kept in QSettings, applied live."""

from __future__ import annotations

import pytest
from conftest_editor import open_window, registry  # noqa: F401

from graphs import Graph
from nodeeditor import theme, ui_scale


@pytest.fixture(autouse=True)
def _default_scale():
    yield
    theme.set_ui_scale(ui_scale.DEFAULT_PERCENT / 100)  # the scale is process-wide


def _graph(registry):
    g = Graph(registry)
    g.add_node(g.create_node("test.text", (0, 0), node_id="txt"))
    g.add_node(g.create_node("test.add", (400, 0), node_id="add"))
    return g


def test_ui_scale_changes_node_text_and_is_kept_for_a_new_window(qtbot, tmp_path, registry):
    win = open_window(qtbot, tmp_path, registry)
    default = ui_scale.DEFAULT_PERCENT
    assert win.ui_scale_actions[default].isChecked() and theme.UI_SCALE == default / 100
    win.document.load_graph(_graph(registry))
    win.view.set_zoom(1.0)
    win.view.materialize_visible(None)
    item = win.scene.node_items["txt"]
    font_before = theme.font(8.5).pointSizeF()
    height_before = item.layout.height
    assert f"{8.5 * theme.UI_SCALE:.2f}pt" in item.proxy.widget().styleSheet()
    # View → UI scale → 150%
    view_menu = next(a.menu() for a in win.menuBar().actions() if a.text().replace("&", "") == "View")
    sub = next(a.menu() for a in view_menu.actions() if a.menu() and "scale" in a.text().lower())
    assert [a.text() for a in sub.actions()] == ["90%", "100%", "110%", "125%", "150%"]
    win.ui_scale_actions[150].trigger()
    assert theme.UI_SCALE == 1.5 and win.ui_scale_actions[150].isChecked()
    assert theme.font(8.5).pointSizeF() == pytest.approx(8.5 * 1.5)
    assert theme.font(8.5).pointSizeF() > font_before
    item = win.scene.node_items["txt"]  # the canvas was rebuilt at the new size
    assert item.layout.height > height_before
    win.view.materialize_visible(None)
    assert "12.75pt" in item.proxy.widget().styleSheet()
    assert int(win.settings.value(ui_scale.SETTING)) == 150
    win.close()
    win.worker.shutdown()
    theme.set_ui_scale(1.0)
    again = open_window(qtbot, tmp_path, registry)  # the same settings file
    try:
        assert theme.UI_SCALE == 1.5 and again.ui_scale_actions[150].isChecked()
        again.ui_scale_actions[100].trigger()
        assert theme.UI_SCALE == 1.0 and theme.font(8.5).pointSizeF() == pytest.approx(8.5)
    finally:
        again.worker.shutdown()


def test_up_to_the_default_the_geometry_stays(qtbot, tmp_path, registry):
    """Text grows into the rows' room, so saved layouts keep their spacing at the default."""
    win = open_window(qtbot, tmp_path, registry)
    try:
        win.document.load_graph(_graph(registry))
        sizes = {}
        for percent in (90, 100, 110, 125):
            win.ui_scale_actions[percent].trigger()
            lay = win.scene.node_items["txt"].layout
            sizes[percent] = (lay.width, lay.height)
        assert len(set(sizes.values())) == 1
        assert theme.LABEL_W > 86  # the label column widens with its text
    finally:
        win.worker.shutdown()

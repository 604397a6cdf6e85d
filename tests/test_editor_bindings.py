# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""Every binding of DESIGN.md §6, driven with real key and mouse events where practical."""

from __future__ import annotations

import pytest
from conftest_editor import build_chain, dumps, image_workflow, registry, wait_run, window  # noqa: F401
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QKeySequence, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from graphs import REROUTE, Graph

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
ALT = Qt.KeyboardModifier.AltModifier
NONE = Qt.KeyboardModifier.NoModifier
LEFT, RIGHT, MIDDLE = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton


@pytest.fixture
def win(window, qtbot, registry):
    g = Graph(registry)
    build_chain(g, 3)
    g.add_node(g.create_node("test.const", (0, 250), node_id="lonely"))
    window.document.load_graph(g)
    window.view.set_zoom(1.0)
    window.view.centerOn(QPointF(350, 100))
    window.activateWindow()
    window.view.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.view, timeout=3000)
    return window


def chain_ids(win):
    return sorted((n for n in win.graph.nodes if n != "lonely"), key=lambda n: win.graph.nodes[n].pos[0])


def vp(win, scene_pos) -> QPoint:
    return win.view.mapFromScene(QPointF(*scene_pos) if isinstance(scene_pos, tuple) else scene_pos)


def drag(win, start: QPoint, end: QPoint, button=LEFT, mods=NONE, steps=6):
    viewport = win.view.viewport()
    QTest.mousePress(viewport, button, mods, start)
    for i in range(1, steps + 1):
        p = start + (end - start) * (i / steps)
        QTest.mouseMove(viewport, p)
    QTest.mouseRelease(viewport, button, mods, end)


def key(win, k, mods=NONE):
    QTest.keyClick(win.view, k, mods)


def shortcut_of(win, name):
    return [s.toString() for s in win.actions_by_name[name].shortcuts()]


def test_tab_shift_a_double_click_open_search(win, qtbot):
    key(win, Qt.Key.Key_Tab)
    popup = win.view.search_popup
    assert popup is not None and popup.isVisible()
    QTest.keyClicks(popup.query, "add")
    assert popup.results()[0] == "test.add"
    n = len(win.graph.nodes)
    QTest.keyClick(popup.query, Qt.Key.Key_Return)
    assert len(win.graph.nodes) == n + 1
    win.view.setFocus()
    key(win, Qt.Key.Key_A, SHIFT)
    assert win.view.search_popup is not popup and win.view.search_popup.isVisible()
    win.view.search_popup.close()
    empty = vp(win, (300, 600))
    QTest.mouseDClick(win.view.viewport(), LEFT, NONE, empty)
    popup = win.view.search_popup
    assert popup.isVisible()
    popup.choose("test.const")
    new = [n for n in win.graph.nodes.values() if abs(n.pos[1] - 600) < 2]
    assert len(new) == 1 and abs(new[0].pos[0] - 300) < 2


def test_drag_socket_to_socket_connects_and_dims(win, qtbot):
    a, b, c = chain_ids(win)
    src = win.scene.node_items["lonely"].outputs["out"]
    dst = win.scene.node_items[c].inputs["b"]
    viewport = win.view.viewport()
    start, end = vp(win, src.scenePos()), vp(win, dst.scenePos())
    QTest.mousePress(viewport, LEFT, NONE, start)
    QTest.mouseMove(viewport, (start + end) / 2)
    assert dst.state == "hot"
    assert win.scene.node_items[c].outputs["sum"].state == "dim"
    QTest.mouseMove(viewport, end)
    QTest.mouseRelease(viewport, LEFT, NONE, end)
    assert win.graph.inbound(c, "b").src_node == "lonely"
    assert dst.state == "normal"
    # the linked param's widget is disabled
    win.view.materialize_visible(None)
    assert not win.scene.node_items[c].editors["b"].widget.isEnabled()


def test_refused_connection_says_why(win):
    a, b, c = chain_ids(win)
    # c's output into a's input would close a cycle (a feeds c)
    src = win.scene.node_items[c].outputs["sum"]
    dst = win.scene.node_items[b].inputs["b"]
    drag(win, vp(win, src.scenePos()), vp(win, dst.scenePos()))
    assert win.graph.inbound(b, "b") is None
    assert "cycle" in win.statusBar().currentMessage()


def test_wire_dropped_on_empty_canvas_opens_filtered_search(win):
    a, b, c = chain_ids(win)
    src = win.scene.node_items["lonely"].outputs["out"]
    drag(win, vp(win, src.scenePos()), vp(win, (200, 500)))
    popup = win.view.search_popup
    assert popup.isVisible()
    results = popup.results()
    # types with an INT input (a param socket counts) but no IMAGE-only ones
    assert "test.add" in results and "test.show" not in results and "test.const" in results
    popup.choose("test.add")
    new = [n for n in win.graph.nodes.values() if n.type_id == "test.add" and n.id not in (b, c)][0]
    assert win.graph.inbound(new.id, "a").src_node == "lonely"


def test_drag_from_connected_input_detaches(win):
    a, b, c = chain_ids(win)
    dst = win.scene.node_items[b].inputs["a"]
    drag(win, vp(win, dst.scenePos()), vp(win, (150, 450)))
    assert win.graph.inbound(b, "a") is None
    win.undo_stack.undo()
    assert win.graph.inbound(b, "a") is not None


def test_ctrl_right_drag_cuts_links(win):
    a, b, c = chain_ids(win)
    link = win.scene.link_items[win.graph.inbound(b, "a").id]
    mid = link.path().pointAtPercent(0.5)
    drag(win, vp(win, (mid.x(), mid.y() - 60)), vp(win, (mid.x(), mid.y() + 60)), RIGHT, CTRL)
    assert win.graph.inbound(b, "a") is None
    assert win.context_menus.menu is None  # a drag never opens the menu


def test_double_click_link_inserts_reroute(win):
    a, b, c = chain_ids(win)
    link = win.scene.link_items[win.graph.inbound(b, "a").id]
    mid = link.path().pointAtPercent(0.5)
    QTest.mouseDClick(win.view.viewport(), LEFT, NONE, vp(win, mid))
    reroutes = [n for n in win.graph.nodes.values() if n.type_id == REROUTE]
    assert len(reroutes) == 1
    r = reroutes[0].id
    assert win.graph.inbound(r, "in").src_node == a
    assert win.graph.inbound(b, "a").src_node == r
    assert win.graph.output_type(r, "out") == "INT"
    win.undo_stack.undo()
    assert win.graph.inbound(b, "a").src_node == a


def _drag_node_to(win, node_id, scene_target, mods=NONE):
    item = win.scene.node_items[node_id]
    grab = item.scenePos() + QPointF(120, 12)  # on the header, away from the collapse arrow
    center = item.sceneBoundingRect().center()
    drag(win, vp(win, grab), vp(win, scene_target + (grab - center)), LEFT, mods)


def test_drop_node_on_link_inserts_it_alt_suppresses(win):
    a, b, c = chain_ids(win)
    link = win.scene.link_items[win.graph.inbound(c, "a").id]
    mid = link.path().pointAtPercent(0.5)
    before = dumps(win.graph)
    _drag_node_to(win, "lonely", mid, ALT)
    assert win.graph.inbound(c, "a").src_node == b and not win.graph.links_of("lonely")
    win.undo_stack.undo()
    assert dumps(win.graph) == before
    new_id = win.controller.add_node("test.add", (0, 400))
    _drag_node_to(win, new_id, mid)
    assert win.graph.inbound(c, "a").src_node == new_id
    assert win.graph.inbound(new_id, "a").src_node == b
    win.undo_stack.undo()  # the move and the splice are one step
    assert win.graph.inbound(c, "a").src_node == b
    assert win.graph.nodes[new_id].pos == (0.0, 400.0)


def test_move_node_is_one_undo_step(win):
    before = dumps(win.graph)
    _drag_node_to(win, "lonely", QPointF(600, 500))
    assert win.graph.nodes["lonely"].pos != (0.0, 250.0)
    win.undo_stack.undo()
    assert dumps(win.graph) == before
    assert win.scene.node_items["lonely"].pos().toTuple() == (0.0, 250.0)


def test_rubber_band_selects(win):
    drag(win, vp(win, (-60, 230)), vp(win, (280, 400)))
    assert win.scene.selected_node_ids() == ["lonely"]


def test_bypass_mute_group_keys(win):
    a, b, c = chain_ids(win)
    win.scene.select_nodes([b])
    key(win, Qt.Key.Key_B, CTRL)
    assert win.graph.nodes[b].flags["bypass"]
    key(win, Qt.Key.Key_M, CTRL)
    assert win.graph.nodes[b].flags["mute"]
    win.scene.select_nodes([a, b])
    key(win, Qt.Key.Key_G, CTRL)
    assert len(win.graph.frames) == 1
    assert shortcut_of(win, "bypass") == ["Ctrl+B"] and shortcut_of(win, "group") == ["Ctrl+G"]


def test_frame_keys_and_zoom(win):
    a, b, c = chain_ids(win)
    win.view.set_zoom(3.0)
    key(win, Qt.Key.Key_Home)
    all_rect = win.scene.items_rect()
    visible = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert visible.contains(all_rect)
    win.scene.select_nodes([c])
    key(win, Qt.Key.Key_F)
    visible = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert visible.contains(win.scene.node_items[c].sceneBoundingRect())
    assert not visible.contains(win.scene.node_items["lonely"].sceneBoundingRect())
    win.scene.clearSelection()
    key(win, Qt.Key.Key_F)  # nothing selected: frame all
    visible = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert visible.contains(win.scene.items_rect())


def _wheel(win, pos: QPoint, delta: int):
    event = QWheelEvent(QPointF(pos), QPointF(win.view.viewport().mapToGlobal(pos)), QPoint(0, 0),
                        QPoint(0, delta), Qt.MouseButton.NoButton, NONE, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(win.view.viewport(), event)


def test_wheel_zooms_under_cursor_clamped(win):
    item = win.scene.node_items["lonely"]
    anchor_scene = item.sceneBoundingRect().center()
    pos = vp(win, anchor_scene)
    _wheel(win, pos, 120)
    assert win.view.zoom() == pytest.approx(1.15)
    assert (win.view.mapFromScene(anchor_scene) - pos).manhattanLength() <= 2
    for _ in range(40):
        _wheel(win, pos, 120)
    assert win.view.zoom() == pytest.approx(4.0)
    for _ in range(80):
        _wheel(win, pos, -120)
    assert win.view.zoom() == pytest.approx(0.1)
    assert not win.scene.widgets_visible  # level of detail: inline widgets hidden


def test_middle_and_space_drag_pan(win, qtbot):
    c0 = win.view.center()
    drag(win, QPoint(400, 300), QPoint(300, 250), MIDDLE)
    c1 = win.view.center()
    assert c1.x() == pytest.approx(c0.x() + 100, abs=2) and c1.y() == pytest.approx(c0.y() + 50, abs=2)
    QTest.keyPress(win.view, Qt.Key.Key_Space)
    assert win.view.space_held
    drag(win, QPoint(400, 300), QPoint(500, 300), LEFT)
    QTest.keyRelease(win.view, Qt.Key.Key_Space)
    c2 = win.view.center()
    assert c2.x() == pytest.approx(c1.x() - 100, abs=2)
    assert not win.scene.selected_node_ids()


def test_context_menu_on_right_click_not_right_drag(win):
    drag(win, QPoint(400, 300), QPoint(300, 300), RIGHT)
    assert win.context_menus.menu is None
    item = win.scene.node_items["lonely"]
    pos = vp(win, item.scenePos() + QPointF(100, 10))
    QTest.mouseClick(win.view.viewport(), RIGHT, NONE, pos)
    menu = win.context_menus.menu
    assert menu is not None and menu.isVisible()
    assert "Bypass\tCtrl+B" in [a.text() for a in menu.actions()]  # its shortcut shown beside it
    menu.close()


def test_clipboard_keys(win):
    a, b, c = chain_ids(win)
    win.scene.select_nodes([b])
    QTest.mouseMove(win.view.viewport(), vp(win, (100, 300)))
    key(win, Qt.Key.Key_C, CTRL)
    n = len(win.graph.nodes)
    key(win, Qt.Key.Key_V, CTRL)
    assert len(win.graph.nodes) == n + 1
    pasted = win.scene.selected_node_ids()[0]
    assert win.graph.nodes[pasted].pos == pytest.approx((100, 300), abs=2)  # at the cursor
    assert win.graph.inbound(pasted, "a") is None
    key(win, Qt.Key.Key_V, CTRL | SHIFT)
    kept = win.scene.selected_node_ids()[0]
    assert win.graph.inbound(kept, "a").src_node == a  # input links kept
    win.scene.select_nodes([c])
    key(win, Qt.Key.Key_D, CTRL)
    dup = win.scene.selected_node_ids()[0]
    assert dup != c and win.graph.nodes[dup].type_id == "test.add"
    assert shortcut_of(win, "paste_links") == ["Ctrl+Shift+V"]


def test_delete_backspace_undo_redo_keys(win):
    a, b, c = chain_ids(win)
    before = dumps(win.graph)
    win.scene.select_nodes([c])
    key(win, Qt.Key.Key_Delete)
    assert c not in win.graph.nodes
    win.scene.select_nodes([b])
    key(win, Qt.Key.Key_Backspace)
    assert b not in win.graph.nodes
    key(win, Qt.Key.Key_Z, CTRL)
    key(win, Qt.Key.Key_Z, CTRL)
    assert dumps(win.graph) == before
    key(win, Qt.Key.Key_Z, CTRL | SHIFT)
    assert c not in win.graph.nodes
    key(win, Qt.Key.Key_Y, CTRL)
    assert b not in win.graph.nodes
    assert shortcut_of(win, "redo") == ["Ctrl+Shift+Z", "Ctrl+Y"]


def test_run_and_cancel_keys(win, qtbot, registry):
    g = Graph(registry)
    s = g.add_node(g.create_node("test.sleep", (0, 0), params={"seconds": 20.0}))
    sh = g.add_node(g.create_node("test.image", (300, 0)))
    g.connect(s.id, "out", sh.id, "value")
    show = g.add_node(g.create_node("test.show", (600, 0)))
    g.connect(sh.id, "image", show.id, "image")
    win.document.load_graph(g)
    win.view.setFocus()
    key(win, Qt.Key.Key_Return, CTRL)
    assert win.worker.busy
    qtbot.waitUntil(lambda: (win.scene.node_items[s.id].badge or ("",))[0] == "running", timeout=5000)
    key(win, Qt.Key.Key_Escape)
    wait_run(qtbot, win)
    assert win.runs.last_result.status == "cancelled"
    key(win, Qt.Key.Key_Enter, CTRL)
    assert win.worker.busy
    key(win, Qt.Key.Key_Return, CTRL | ALT)
    wait_run(qtbot, win)
    assert win.runs.last_result.status == "cancelled"
    assert shortcut_of(win, "cancel") == ["Ctrl+Alt+Return", "Ctrl+Alt+Enter"]


def test_open_save_keys(win, tmp_path):
    path = str(tmp_path / "k.json")
    win.document.ask_save_path = lambda: path
    key(win, Qt.Key.Key_S, CTRL)
    assert win.document.path == path and "k.json — LatentGraph" == win.windowTitle()
    win.controller.set_param("lonely", "value", 9)
    assert win.windowTitle() == "k.json* — LatentGraph"
    key(win, Qt.Key.Key_S, CTRL)  # saves to the same file, no dialog
    assert win.windowTitle() == "k.json — LatentGraph"
    win.document.new_file()
    win.document.ask_open_path = lambda title, filters: path
    key(win, Qt.Key.Key_O, CTRL)
    assert win.graph.nodes["lonely"].params["value"] == 9
    assert shortcut_of(win, "open") == [QKeySequence("Ctrl+O").toString()]


def test_typing_in_node_widgets_does_not_trigger_canvas_keys(win, qtbot):
    a, b, c = chain_ids(win)
    win.view.materialize_visible(None)
    item = win.scene.node_items[b]
    spin = item.editors["b"].widget
    zoom = win.view.zoom()
    item.proxy.setFocus()
    spin.setFocus()
    spin.lineEdit().selectAll()
    QTest.keyClicks(win.view, "42")
    assert spin.lineEdit().text() == "42"
    key(win, Qt.Key.Key_F)  # not a digit: ignored by the spin box, still not "frame"
    key(win, Qt.Key.Key_Backspace)
    assert b in win.graph.nodes  # Backspace edited the field, it did not delete the node
    key(win, Qt.Key.Key_Tab)
    assert win.view.search_popup is None or not win.view.search_popup.isVisible()
    assert win.view.zoom() == zoom


def test_frame_title_drag_moves_nodes_inside_and_grip_resizes(win):
    a, b, c = chain_ids(win)
    win.scene.select_nodes([a, b])
    key(win, Qt.Key.Key_G, CTRL)
    frame_id = next(iter(win.graph.frames))
    win.scene.clearSelection()
    before = dumps(win.graph)
    x, y, w, h = win.graph.frames[frame_id].rect
    pos_a = win.graph.nodes[a].pos
    drag(win, vp(win, (x + w / 2, y + 12)), vp(win, (x + w / 2 + 50, y + 12 + 40)))
    assert win.graph.frames[frame_id].rect[:2] == pytest.approx((x + 50, y + 40), abs=2)
    assert win.graph.nodes[a].pos == pytest.approx((pos_a[0] + 50, pos_a[1] + 40), abs=2)
    assert win.graph.nodes[c].pos == (600.0, 0.0)  # outside the frame: untouched
    win.undo_stack.undo()
    assert dumps(win.graph) == before
    x, y, w, h = win.graph.frames[frame_id].rect
    drag(win, vp(win, (x + w - 5, y + h - 5)), vp(win, (x + w + 95, y + h + 45)))
    assert win.graph.frames[frame_id].rect[2:] == pytest.approx((w + 100, h + 50), abs=3)


def test_header_arrow_click_collapses(win):
    item = win.scene.node_items["lonely"]
    QTest.mouseClick(win.view.viewport(), LEFT, NONE, vp(win, item.scenePos() + QPointF(14, 13)))
    assert win.graph.nodes["lonely"].flags["collapsed"]
    win.undo_stack.undo()
    assert not win.graph.nodes["lonely"].flags["collapsed"]


def test_wire_dropped_on_node_body_uses_first_compatible_socket(win):
    a, b, c = chain_ids(win)
    src = win.scene.node_items["lonely"].outputs["out"]
    body = win.scene.node_items[c].sceneBoundingRect().center()
    drag(win, vp(win, src.scenePos()), vp(win, body))
    # "a" is taken (by b), so the free param socket "b" gets it
    assert win.graph.inbound(c, "b").src_node == "lonely"
    assert win.graph.inbound(c, "a").src_node == b


def test_fuzzy_search_ranking():
    from nodeeditor.search import fuzzy_score
    assert fuzzy_score("vae", "VAE decode") > fuzzy_score("dec", "VAE decode") > 0
    assert fuzzy_score("vdec", "VAE decode") is not None
    assert fuzzy_score("ksam", "KSampler") is not None
    assert fuzzy_score("vae", "values.integer") is None  # scattered letters do not match
    assert fuzzy_score("emptylat", "Empty latent") is not None


def test_resize_grip_and_rename_by_double_click(win):
    item = win.scene.node_items["lonely"]
    before = dumps(win.graph)
    grip = item.scenePos() + item.grip_rect().center()
    drag(win, vp(win, grip), vp(win, grip + QPointF(80, 30)))
    w, h = win.graph.nodes["lonely"].size
    assert w == pytest.approx(330, abs=3) and h >= item.body_rect().height() - 1
    assert item.body_rect().width() == pytest.approx(w)
    win.undo_stack.undo()
    assert dumps(win.graph) == before and item.body_rect().width() == 250
    win.controller.ask_text = lambda title, label, current: "Renamed"
    QTest.mouseDClick(win.view.viewport(), LEFT, NONE, vp(win, item.scenePos() + QPointF(100, 12)))
    assert win.graph.nodes["lonely"].title == "Renamed"


def test_copy_goes_through_the_system_clipboard(window, qtbot):
    """Copied nodes land on the OS clipboard as workflow JSON; another window (or a pasted
    workflow text) can paste them."""
    import json

    from PySide6.QtGui import QGuiApplication

    from nodeeditor.controller import Controller

    win = window
    ids = build_chain(win.graph, 2)
    win.scene.select_nodes(ids)
    assert win.controller.copy()
    text = QGuiApplication.clipboard().text()
    assert json.loads(text)["format"] == "latentgraph"
    Controller._clipboard = None  # as if another process had copied
    before = len(win.graph.nodes)
    pasted = win.controller.paste(at=(0, 500))
    assert len(pasted) == 2 and len(win.graph.nodes) == before + 2
    assert any(win.graph.inbound(p, "a") is not None for p in pasted)  # the inner link came too
    Controller._clipboard = None
    QGuiApplication.clipboard().setText("not a workflow")
    assert win.controller.paste() == []

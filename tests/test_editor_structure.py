# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""The editor's wiring: moves merge, Group owns its rect, failures reach the status bar,
gestures reach the model only through request signals, one output folder."""

from __future__ import annotations

import os

import pytest
from conftest_editor import build_chain, dumps, registry, window  # noqa: F401
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from test_editor_bindings import CTRL, LEFT, _drag_node_to, chain_ids, drag, key, vp

from graphs import Graph, SetParam
from graphs.run_settings import DEFAULT_OUTPUT_DIR


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


def test_consecutive_drags_of_the_same_node_merge_into_one_undo_step(win):
    before = dumps(win.graph)
    _drag_node_to(win, "lonely", QPointF(600, 500))
    _drag_node_to(win, "lonely", QPointF(700, 550))
    assert win.undo_stack.count() == 1  # MoveNodes.merge ran
    first = win.graph.nodes["lonely"].pos
    assert first != (0.0, 250.0)
    win.undo_stack.undo()
    assert dumps(win.graph) == before
    win.undo_stack.redo()
    assert win.graph.nodes["lonely"].pos == first


def test_dragging_another_node_is_a_separate_step(win):
    a, b, c = chain_ids(win)
    _drag_node_to(win, "lonely", QPointF(600, 500))
    _drag_node_to(win, c, QPointF(900, 400))
    assert win.undo_stack.count() == 2
    win.undo_stack.undo()
    assert win.graph.nodes[c].pos == (600.0, 0.0) and win.graph.nodes["lonely"].pos != (0.0, 250.0)


def test_a_move_never_merges_into_the_saved_state(win, tmp_path):
    _drag_node_to(win, "lonely", QPointF(600, 500))
    assert win.document.save_to(str(tmp_path / "w.json"))
    _drag_node_to(win, "lonely", QPointF(700, 550))
    assert win.undo_stack.count() == 2 and win.document.is_modified()
    win.undo_stack.undo()
    assert not win.document.is_modified()


def test_ctrl_g_frame_encloses_the_nodes_as_drawn(win):
    a, b, c = chain_ids(win)
    win.scene.select_nodes([a, b])
    key(win, Qt.Key.Key_G, CTRL)
    (frame,) = win.graph.frames.values()
    x, y, w, h = frame.rect
    for node_id in (a, b):
        r = win.scene.node_items[node_id].sceneBoundingRect()
        assert x < r.left() and y < r.top() and r.right() < x + w and r.bottom() < y + h
    # the rect is the command's own: undo/redo gives the same frame back
    win.undo_stack.undo()
    win.undo_stack.redo()
    assert win.graph.frames[frame.id].rect == (x, y, w, h)


def test_a_redo_that_fails_leaves_the_graph_and_says_why(win):
    a, b, c = chain_ids(win)
    assert win.controller.set_param(a, "value", 7)
    win.undo_stack.undo()
    win.graph.remove_node(a)  # not undoable (as after-run updates are): the redo now fails
    before = dumps(win.graph)
    QTest.keyClick(win.view, Qt.Key.Key_Z, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert dumps(win.graph) == before
    assert "Refused" in win.statusBar().currentMessage()
    assert win.undo_stack.count() == 0  # Qt dropped the command that failed


def test_a_refused_first_do_is_reported_and_not_stacked(win):
    a, b, c = chain_ids(win)
    before = dumps(win.graph)
    command = SetParam(win.graph, a, "value", 5000)  # outside -1000..1000
    assert not win.controller.push(command)
    assert dumps(win.graph) == before and win.undo_stack.count() == 0
    assert win.statusBar().currentMessage().startswith("Refused: set value")


def test_a_macro_failing_part_way_is_rolled_back_in_the_model_and_on_the_canvas(win):
    """The first step of the macro changes the graph (and the canvas follows its events); the
    second is refused: the model, the scene and the undo stack end as they began."""
    from graphs import Macro, MoveNodes

    a, b, c = chain_ids(win)
    before, start = dumps(win.graph), win.scene.node_items["lonely"].pos()
    macro = Macro([MoveNodes({"lonely": (win.graph.nodes["lonely"].pos, (900.0, 900.0))}),
                   SetParam(win.graph, a, "value", 5000)], text="move and set")
    assert not win.controller.push(macro)
    assert dumps(win.graph) == before and win.undo_stack.count() == 0
    assert win.scene.node_items["lonely"].pos() == start
    assert win.statusBar().currentMessage().startswith("Refused: move and set")


def test_gestures_reach_the_model_through_request_signals(win):
    a, b, c = chain_ids(win)
    seen = []
    win.view.disconnect_requested.connect(lambda ids: seen.append(("cut", ids)))
    win.scene.move_requested.connect(lambda moves, frames: seen.append(("move", set(moves))))
    link = win.scene.link_items[win.graph.inbound(b, "a").id]
    mid = link.path().pointAtPercent(0.5)
    drag(win, vp(win, (mid.x(), mid.y() - 60)), vp(win, (mid.x(), mid.y() + 60)),
         Qt.MouseButton.RightButton, CTRL)
    _drag_node_to(win, "lonely", QPointF(600, 500))
    assert seen == [("cut", [link.link_id]), ("move", {"lonely"})]
    assert win.graph.inbound(b, "a") is None
    assert not hasattr(win.view, "controller") and not hasattr(win.scene, "controller")
    assert win.view.mode is None  # no drag is active once the mouse is released
    QTest.mousePress(win.view.viewport(), LEFT, Qt.KeyboardModifier.NoModifier,
                     vp(win, win.scene.node_items[a].outputs["out"].scenePos()))
    assert type(win.view.mode).__name__ == "EdgeDragMode"
    QTest.mouseRelease(win.view.viewport(), LEFT, Qt.KeyboardModifier.NoModifier,
                       vp(win, win.scene.node_items[a].outputs["out"].scenePos()))


def test_one_default_output_folder(qtbot, tmp_path, registry):
    from PySide6.QtCore import QSettings

    from nodeeditor.app import MainWindow
    from nodeeditor.cli import build_parser
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    win = MainWindow(registry=registry, settings=settings, recovery_path=str(tmp_path / "r.json"))
    qtbot.addWidget(win)
    assert win.output_dir == os.path.join(os.getcwd(), DEFAULT_OUTPUT_DIR) and DEFAULT_OUTPUT_DIR == "output"
    assert build_parser().parse_args(["run", "w.json"]).output_dir == DEFAULT_OUTPUT_DIR
    win.worker.shutdown()

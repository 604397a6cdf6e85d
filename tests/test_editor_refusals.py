"""A refused connection is said at the cursor, where the wire was let go, not only in the status bar."""

from __future__ import annotations

from conftest_editor import registry, window  # noqa: F401
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QToolTip

from graphs import Graph


def test_dragging_a_wire_onto_a_socket_of_another_type_says_why_at_the_cursor(window, registry, qtbot):  # noqa: F811
    g = Graph(registry)
    const = g.add_node(g.create_node("test.const", (0, 0)))
    show = g.add_node(g.create_node("test.show", (400, 0)))
    window.document.load_graph(g)
    qtbot.wait(50)
    view, scene = window.view, window.scene
    start = view.mapFromScene(scene.node_items[const.id].outputs["out"].scenePos())
    end = view.mapFromScene(scene.node_items[show.id].inputs["image"].scenePos())
    viewport = view.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for step in range(1, 6):
        QTest.mouseMove(viewport, start + (end - start) * step / 5)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    assert not window.graph.links
    assert view.last_cursor_message.startswith("Cannot connect") and "type mismatch" in view.last_cursor_message
    assert "type mismatch" in window.statusBar().currentMessage()
    assert QToolTip.text() == view.last_cursor_message  # shown by the cursor

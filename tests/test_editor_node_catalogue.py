"""Every node type the library registers can be added in the editor: it draws its sockets and
its param widgets, and undo takes it away again."""

from __future__ import annotations

from conftest_editor import open_window

import nodes  # noqa: F401
from graphs import default_registry


def test_each_node_type_adds_with_its_sockets_and_widgets(qtbot, tmp_path):
    win = open_window(qtbot, tmp_path, default_registry())
    try:
        for node_type in nodes.ALL_NODE_TYPES:
            before = set(win.graph.nodes)
            win.controller.add_node(node_type.type_id, (0.0, 0.0))
            (node_id,) = set(win.graph.nodes) - before
            item = win.scene.node_items[node_id]
            assert set(item.inputs) >= {s.name for s in node_type.inputs}, node_type.type_id
            assert set(item.outputs) == {s.name for s in node_type.outputs}, node_type.type_id
            item.ensure_widgets()
            rows = {r.param.name for r in item.layout.rows} | {
                r.companion.name for r in item.layout.rows if r.companion is not None}
            assert rows and set(item.editors) == rows or not node_type.params, node_type.type_id
            win.undo_stack.undo()
            assert node_id not in win.graph.nodes and node_id not in win.scene.node_items, node_type.type_id
    finally:
        win.worker.shutdown()

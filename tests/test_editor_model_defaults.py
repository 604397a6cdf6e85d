"""A node added to a graph takes its model's settings: on the bundled model (CFG 2.5, Euler, 20
steps per its latentgraph.json) a new UNet denoise and Scheduler start there, not at 7.5."""

from __future__ import annotations

from conftest_editor import open_window

import nodes  # noqa: F401
from graphs import default_registry
from nodeeditor.document import templates_dir


def test_new_nodes_take_the_graphs_model_settings(qtbot, tmp_path):
    win = open_window(qtbot, tmp_path, default_registry())
    try:
        assert win.document.open_path(str(templates_dir() / "txt2img.json"), ask=False)
        unet = win.graph.nodes[win.controller.add_node("sd.unet_denoise", (0, 0))]
        scheduler = win.graph.nodes[win.controller.add_node("sd.scheduler", (0, 300))]
        assert unet.params["cfg"] == 2.5
        assert scheduler.params["name"] == "Euler" and scheduler.params["steps"] == 20
        win.undo_stack.undo()
        win.undo_stack.undo()
        load = next(n for n in win.graph.nodes.values() if n.type_id == "sd.load_model")
        win.controller.set_param(load.id, "source", str(tmp_path / "not-there.safetensors"))
        unet = win.graph.nodes[win.controller.add_node("sd.unet_denoise", (0, 0))]
        assert unet.params.get("cfg", 7.5) == 7.5  # a model that is not there: the generic default
    finally:
        win.worker.shutdown()

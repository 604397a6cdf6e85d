# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""Plugins and placeholders in the editor (pytest-qt): the example plugin's node added
through the registry and run; a workflow with a type nobody provides opens with a node drawn
as missing, refuses to run and saves back unchanged; Help → Plugins; declarations the
editor reads (seed control pairing, the inspector's ranges)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest_editor import open_window, wait_run
from PIL import Image

import nodes
from graphs import NodeType, Param, base_registry
from graphs import workflow as wf
from graphs.plugins import load_plugins

EXAMPLE = "latentgraph_example.invert"


@pytest.fixture
def registry():
    registry = nodes.register(base_registry())
    load_plugins(registry)
    return registry


@pytest.fixture
def window(qtbot, tmp_path, registry):
    win = open_window(qtbot, tmp_path, registry)
    yield win
    win.worker.shutdown()


def test_plugin_node_added_through_the_registry_runs(window, qtbot, tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    graph, controller = window.graph, window.controller
    load = controller.add_node("image.load", (0, 0))
    inv = controller.add_node(EXAMPLE, (300, 0))  # what the add-node search does
    show = controller.add_node("image.preview", (600, 0))
    assert inv is not None and graph.nodes[inv].type_id == EXAMPLE
    assert window.scene.node_items[inv].missing_label() == ""
    graph.set_param(load, "path", str(tmp_path / "in.png"))
    graph.set_param(inv, "strength", 1.0)
    graph.connect(load, "image", inv, "image")
    graph.connect(inv, "image", show, "image")
    assert window.runs.run()
    wait_run(qtbot, window)
    assert window.runs.last_result.status == "finished", window.runs.last_result.error
    shown = np.asarray(window.runs.node_images[show]).astype(int)
    assert np.abs(shown - (255 - pixels.astype(int))).max() <= 1


def test_missing_type_opens_as_placeholder_refuses_to_run_and_saves_unchanged(window, qtbot, tmp_path,
                                                                             registry):
    from graphs import Graph

    g = Graph(registry)
    load = g.add_node(g.create_node("image.load", (0, 0), params={"path": "x.png"}, node_id="load"))
    inv = g.add_node(g.create_node(EXAMPLE, (300, 0), node_id="inv"))
    show = g.add_node(g.create_node("image.preview", (600, 0), node_id="show"))
    g.connect(load.id, "image", inv.id, "image")
    g.connect(inv.id, "image", show.id, "image")
    data = json.loads(wf.dumps(g))
    node = next(n for n in data["nodes"] if n["id"] == "inv")
    node["type"], node["type_version"] = "nobody.invert", 4
    node["params"] = {"mode": {"k": [1, 2]}, "strength": 0.25}
    path = tmp_path / "missing.json"
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    assert window.document.open_path(str(path), ask=False), window.errors
    item = window.scene.node_items["inv"]
    assert item.missing_label() == "missing: nobody.invert"
    assert set(item.inputs) >= {"image"} and set(item.outputs) == {"image"}
    window.grab()  # paints the placeholder
    assert window.runs.run()
    wait_run(qtbot, window)
    result = window.runs.last_result
    assert result.status == "failed" and "node type 'nobody.invert' is not installed" in result.error.message
    assert result.executed == []
    assert window.document.save_to(str(tmp_path / "saved.json"))
    saved = json.loads((tmp_path / "saved.json").read_text())
    for key in ("nodes", "links", "frames", "format", "version"):
        assert saved[key] == data[key], key
    assert wf.dumps(wf.load(tmp_path / "saved.json", registry)) == wf.dumps(window.graph)


def test_help_plugins_lists_the_plugins(window, registry):
    from nodeeditor.plugins_dialog import PluginsDialog, plugin_rows

    action = window.actions_by_name["plugins"]
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    assert action in help_menu.actions()
    rows = plugin_rows(registry)
    assert ("example", "latentgraph-example", "0.1.0", "loaded", EXAMPLE) in rows
    dialog = PluginsDialog(registry, window)
    texts = [dialog.table.item(r, 4).text() for r in range(dialog.table.rowCount())]
    assert EXAMPLE in texts


def test_seed_control_is_the_declared_one():
    from nodeeditor.widgets import random_seed, seed_control

    def run(ctx, seed, after, mode):
        return {}
    node_type = NodeType("x.s", "S", "t", run, params=(
        Param("seed", "seed", 0, min=0, max=2**64 - 1),
        Param("mode", "choice", "a", choices=("a", "increment")),  # looks like one; is not
        Param("after", "choice", "keep", choices=("keep", "next"), drives="seed")))
    assert seed_control(node_type, node_type.param("seed")).name == "after"
    assert seed_control(node_type, node_type.param("mode")) is None
    assert max(random_seed(node_type.param("seed")) for _ in range(16)) > 2**32


def test_inspector_offers_the_nodes_declared_ranges(window):
    from nodes.inspect import LATENT_INSPECT

    inspector = window.inspector
    assert inspector.channel.maximum() == LATENT_INSPECT.param("channel").max
    assert [inspector.mode.itemText(i) for i in range(inspector.mode.count())] == \
        list(LATENT_INSPECT.param("view").choices)
    assert [inspector.which.itemText(i) for i in range(inspector.which.count())] == \
        list(LATENT_INSPECT.param("which").choices)


def test_image_viewer_saves_under_the_pngmeta_key(window, tmp_path):
    from graphs import pngmeta

    window.image_viewer.show_image(Image.new("RGB", (8, 8)), "x", workflow_text='{"a": 1}')
    path = window.image_viewer.save_as(str(tmp_path / "v.png"))
    assert Image.open(path).text[pngmeta.WORKFLOW_KEY] == '{"a": 1}'
    assert Path(path).is_file()

# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""Editor canvas: opening, mirroring the model, connecting, undo/redo exactness, files."""

from __future__ import annotations

import json

import pytest
from conftest_editor import build_chain, dumps, image_workflow, registry, window  # noqa: F401
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from graphs import REROUTE, Graph, Group, workflow


def assert_mirrors(win):
    scene, graph = win.scene, win.graph
    assert set(scene.node_items) == set(graph.nodes)
    assert set(scene.link_items) == set(graph.links)
    assert set(scene.frame_items) == set(graph.frames)
    for node_id, item in scene.node_items.items():
        assert item.pos().toTuple() == pytest.approx(graph.nodes[node_id].pos)


def load(win, graph):
    win.document.load_graph(graph)
    assert_mirrors(win)


def test_open_workflow_file(window, tmp_path, registry):
    g = image_workflow(registry)
    g.add_frame(__import__("graphs").Frame("fr1", "My frame", (-50, -80, 900, 300)))
    path = tmp_path / "wf.json"
    workflow.save(g, path)
    assert window.document.open_path(str(path))
    assert_mirrors(window)
    assert len(window.scene.node_items) == 3 and len(window.scene.link_items) == 2
    assert window.windowTitle() == "wf.json — LatentGraph"
    assert str(path) in window.document.recent_files()


def test_bad_file_refused_whole(window, tmp_path, registry):
    load(window, image_workflow(registry))
    before = dumps(window.graph)
    bad = json.loads(dumps(image_workflow(registry)))
    bad["nodes"][1]["params"]["steps"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert not window.document.open_path(str(path))
    assert window.errors and "steps" in window.errors[-1]
    assert dumps(window.graph) == before


def test_connect_and_refuse_with_reason(window, registry):
    g = Graph(registry)
    c = g.add_node(g.create_node("test.const", (0, 0)))
    im = g.add_node(g.create_node("test.image", (300, 0)))
    sh = g.add_node(g.create_node("test.show", (600, 0)))
    load(window, g)
    ctl = window.controller
    assert ctl.connect(c.id, "out", im.id, "value")
    assert len(window.scene.link_items) == 1
    assert not ctl.connect(c.id, "out", sh.id, "image")
    assert "type mismatch" in window.statusBar().currentMessage()
    assert len(window.graph.links) == 1
    assert_mirrors(window)


def _roundtrip_undo(win, action):
    before = dumps(win.graph)
    assert action() not in (False, None, [])
    after = dumps(win.graph)
    assert after != before
    assert_mirrors(win)
    win.undo_stack.undo()
    assert dumps(win.graph) == before
    assert_mirrors(win)
    win.undo_stack.redo()
    assert dumps(win.graph) == after
    assert_mirrors(win)
    win.undo_stack.undo()
    win.undo_stack.redo()
    assert dumps(win.graph) == after


def test_undo_redo_every_command_kind(window, registry):
    g = Graph(registry)
    ids = build_chain(g, 3)
    g.add_node(g.create_node("test.const", (0, 300), node_id="spare"))
    load(window, g)
    ctl, scene = window.controller, window.scene
    link_id = next(iter(window.graph.links))
    first_link = window.graph.inbound(ids[1], "a").id
    _roundtrip_undo(window, lambda: ctl.add_node("test.add", (100, 500)))
    _roundtrip_undo(window, lambda: ctl.connect("spare", "out", ids[2], "a"))  # displaces a link
    _roundtrip_undo(window, lambda: ctl.connect("spare", "out", ids[1], "b"))  # param socket
    _roundtrip_undo(window, lambda: ctl.disconnect([link_id]))
    _roundtrip_undo(window, lambda: ctl.move({ids[0]: ((0.0, 0.0), (40.0, 70.0))}, {}))
    _roundtrip_undo(window, lambda: ctl.set_param(ids[0], "value", 7))
    _roundtrip_undo(window, lambda: ctl.toggle_flag("bypass", [ids[1]]))
    _roundtrip_undo(window, lambda: ctl.toggle_flag("mute", [ids[1], ids[2]]))
    _roundtrip_undo(window, lambda: ctl.toggle_collapse([ids[2]]))
    _roundtrip_undo(window, lambda: ctl.rename_node(ids[0], "Renamed"))
    assert first_link not in window.graph.links  # removed by the disconnect above
    spare_link = window.graph.inbound(ids[2], "a").id
    _roundtrip_undo(window, lambda: ctl.insert_reroute(spare_link, (150.0, 40.0)))
    scene.select_nodes([ids[1], ids[2]])
    _roundtrip_undo(window, ctl.delete_selected)
    ids = [ids[0], "spare"]  # the others are deleted now
    scene.select_nodes([ids[1]])
    _roundtrip_undo(window, ctl.duplicate)
    scene.select_nodes([ids[0], ids[1]])
    assert ctl.copy()
    _roundtrip_undo(window, lambda: ctl.paste(at=(500.0, 500.0)))
    _roundtrip_undo(window, lambda: ctl.paste(at=(500.0, 800.0), keep_input_links=True))
    scene.select_nodes(ids)
    _roundtrip_undo(window, ctl.group)
    frame_id = ctl.group()
    _roundtrip_undo(window, lambda: ctl.rename_frame(frame_id, "Named"))
    _roundtrip_undo(window, lambda: ctl.set_frame_color(frame_id, "#7a3434"))
    _roundtrip_undo(window, lambda: ctl.set_color("#35623f", ids))
    _roundtrip_undo(window, lambda: ctl.move({}, {frame_id: (tuple(window.graph.frames[frame_id].rect),
                                                             (0.0, 0.0, 500.0, 400.0))}))
    scene.clearSelection()
    window.scene.frame_items[frame_id].setSelected(True)
    _roundtrip_undo(window, ctl.delete_selected)


def test_param_edits_merge_into_one_step(window, registry):
    g = Graph(registry)
    ids = build_chain(g, 1)
    load(window, g)
    window.view.materialize_visible(None)
    item = window.scene.node_items[ids[0]]
    assert item.has_widgets()
    spin = item.editors["value"].widget
    before = dumps(window.graph)
    for value in (5, 6, 7):
        spin.setValue(value)
    assert window.graph.nodes[ids[0]].params["value"] == 7
    assert window.undo_stack.count() == 1
    window.undo_stack.undo()
    assert dumps(window.graph) == before
    assert spin.value() == 1  # the widget mirrors the model


def test_save_open_roundtrip_identical(window, tmp_path, registry):
    g = image_workflow(registry)
    g.add_node(g.create_node(REROUTE, (450, 200), node_id="rr1"))
    link = g.inbound("sh0w", "image")
    g.remove_link(link.id)
    g.connect("1mage", "image", "rr1", "in")
    g.connect("rr1", "out", "sh0w", "image")
    g.set_flag("c0nst", "collapsed", True)
    g.set_flag("1mage", "bypass", True)
    g.set_param("1mage", "steps", 9)
    g.set_size("sh0w", (320.0, 200.0))
    g.set_color("c0nst", "#7a3434")
    g.add_frame(__import__("graphs").Frame("fr1", "Frame", (-60, -90, 1000, 400), "#445566"))
    load(window, g)
    window.view.set_zoom(0.8)
    window.view.centerOn(QPointF(300, 100))
    first = tmp_path / "a.json"
    assert window.document.save_to(str(first))
    assert window.windowTitle() == "a.json — LatentGraph"
    text1 = dumps(window.graph)
    zoom, center = window.view.zoom(), window.view.center()
    assert window.document.open_path(str(first))
    assert json.loads(dumps(window.graph)) == json.loads(text1)
    assert window.view.zoom() == pytest.approx(zoom, rel=1e-3)
    assert window.view.center().x() == pytest.approx(center.x(), abs=2)
    second = tmp_path / "b.json"
    window.document.save_to(str(second))
    strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k != "metadata"}  # noqa: E731
    assert strip(first) == strip(second)


def test_save_after_undo_redo_equals_before(window, tmp_path, registry):
    load(window, image_workflow(registry))
    window.controller.set_param("c0nst", "value", 5)
    window.controller.add_node("test.const", (0, 400))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    window.document.save_to(str(a))
    window.undo_stack.undo()
    window.undo_stack.undo()
    window.undo_stack.redo()
    window.undo_stack.redo()
    window.document.save_to(str(b))
    strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k != "metadata"}  # noqa: E731
    assert strip(a) == strip(b)


def _drop(win, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    win.view.dropEvent(event)


def test_png_and_json_drop_restore_graph(window, tmp_path, registry):
    g = image_workflow(registry)
    g.set_param("c0nst", "value", 42)
    text = workflow.dumps(g)
    info = PngInfo()
    info.add_text("latentgraph_workflow", text)
    png = tmp_path / "out.png"
    Image.new("RGB", (8, 8)).save(png, pnginfo=info)
    _drop(window, png)
    assert dumps(window.graph) == text
    assert_mirrors(window)
    assert window.windowTitle().startswith("out")
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    _drop(window, plain)
    assert "carries no LatentGraph or ComfyUI workflow" in window.errors[-1]
    assert dumps(window.graph) == text
    other = image_workflow(registry)
    other.set_param("c0nst", "value", 3)
    path = tmp_path / "drop.json"
    workflow.save(other, path)
    _drop(window, path)
    assert window.graph.nodes["c0nst"].params["value"] == 3


def test_group_frame_covers_nodes(window, registry):
    g = Graph(registry)
    ids = build_chain(g, 3)
    load(window, g)
    window.scene.select_nodes(ids)
    frame_id = window.controller.group()
    x, y, w, h = window.graph.frames[frame_id].rect
    for node_id in ids:
        r = window.scene.node_items[node_id].sceneBoundingRect()
        assert x <= r.left() and r.right() <= x + w and y <= r.top() and r.bottom() <= y + h
    assert isinstance(window.undo_stack.command(0).command, Group)


def test_a_long_choice_keeps_the_node_widgets_inside_the_node(window, registry):
    from graphs import NodeType, Param, Socket
    from nodeeditor import theme

    long = "regional compile + CUDA graphs, a choice much wider than a node"
    registry.nodes.register(NodeType("test.long_choice", "Long choice", "test/widgets",
                                     lambda ctx, mode: {"out": mode}, outputs=(Socket("out", "STRING"),),
                                     params=(Param("mode", "choice", long, choices=("short", long)),)))
    g = Graph(registry)
    node = g.add_node(g.create_node("test.long_choice", (0, 0)))
    load(window, g)
    item = window.scene.node_items[node.id]
    item.ensure_widgets()  # built lazily, when the node first shows
    assert item.proxy is not None
    assert item.proxy.size().width() <= item.boundingRect().width() - 2 * theme.PAD + 0.5

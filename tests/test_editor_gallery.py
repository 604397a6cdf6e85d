# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""The output gallery dock (nodeeditor/gallery.py), and the latent inspector after a cancelled run."""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

import pytest
from conftest_editor import open_window, wait_run
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from graphs import Graph, NodeType, Param, Socket, SocketType, safe_io
from graphs.pngmeta import WORKFLOW_KEY


def _save(ctx, image, prefix="gal"):
    """A Save image for the test kit: a PNG carrying the run's workflow, its path as ``paths``."""
    from PIL.PngImagePlugin import PngInfo

    folder = ctx.settings["output_dir"]
    os.makedirs(folder, exist_ok=True)
    info = PngInfo()
    info.add_itxt(WORKFLOW_KEY, json.dumps(ctx.workflow()), zip=True)
    path = safe_io.write_unique(folder, (f"{prefix}_{i:05d}.png" for i in range(1, 10_000)),
                                lambda handle: image.save(handle, format="PNG", pnginfo=info))
    return {"paths": [str(path)]}


@pytest.fixture
def registry():
    from conftest_editor import make_registry

    reg = make_registry()
    reg.nodes.register(NodeType("test.save", "Save", "test/image", _save, inputs=(Socket("image", "IMAGE"),),
                                params=(Param("prefix", "string", "gal"),), output_node=True, always_run=True))
    return reg


def _png(path, color, mtime):
    Image.new("RGB", (40, 30), color).save(path)
    os.utime(path, (mtime, mtime))


def _save_graph(registry, color="green"):
    g = Graph(registry)
    im = g.add_node(g.create_node("test.image", (0, 0), params={"color": color, "steps": 1}))
    sv = g.add_node(g.create_node("test.save", (300, 0)))
    g.connect(im.id, "image", sv.id, "image")
    return g


def _gallery_paths(win):
    return [win.gallery.model.path(i) for i in range(win.gallery.model.rowCount())]


def test_gallery_lists_the_folder_newest_first_then_adds_a_run_output(qtbot, tmp_path, registry):
    from nodeeditor import gallery as gallery_module

    out = tmp_path / "out"
    out.mkdir()
    now = time.time()
    for name, age in (("old.png", 300), ("newest.png", 10), ("middle.png", 100)):
        _png(out / name, "blue", now - age)
    (out / "notes.txt").write_text("not an image")
    win = open_window(qtbot, tmp_path, registry)
    try:
        qtbot.waitUntil(lambda: win.gallery.model.rowCount() == 3, timeout=5000)
        assert [os.path.basename(p) for p in _gallery_paths(win)] == ["newest.png", "middle.png", "old.png"]
        # the thumbnails are made off the GUI thread and then painted
        qtbot.waitUntil(lambda: len(win.gallery.model.thumbs) == 3, timeout=5000)
        assert win.gallery.model.thumbs[str(out / "old.png")].width() == gallery_module.THUMB
        win.document.load_graph(_save_graph(registry))
        assert win.runs.run()
        wait_run(qtbot, win)
        assert win.runs.last_result.status == "finished"
        qtbot.waitUntil(lambda: win.gallery.model.rowCount() == 4, timeout=5000)
        written = _gallery_paths(win)[0]
        assert os.path.basename(written).startswith("gal_") and os.path.dirname(written) == str(out)
        # a click shows it in the image viewer
        rect = win.gallery.list.visualRect(win.gallery.model.index(0))
        qtbot.mouseClick(win.gallery.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        assert win.image_viewer.image is not None and win.image_viewer.image.size == (64, 48)
        assert os.path.basename(written) in win.image_viewer.caption.text()
        assert win.image_viewer.workflow_text  # Save as… from the viewer keeps the workflow
    finally:
        win.worker.shutdown()


def test_open_graph_restores_the_graph_that_made_the_image(qtbot, tmp_path, registry):
    win = open_window(qtbot, tmp_path, registry)
    try:
        made = _save_graph(registry, color="blue")
        win.document.load_graph(made)
        types = sorted(n.type_id for n in win.graph.nodes.values())
        win.runs.run()
        wait_run(qtbot, win)
        qtbot.waitUntil(lambda: win.gallery.model.rowCount() == 1, timeout=5000)
        win.document.new_file()
        assert not win.graph.nodes
        gallery = win.gallery

        def choose_open_graph():
            menu = QApplication.activePopupWidget()
            action = next(a for a in menu.actions() if a.text() == "Open graph")
            menu.close()
            action.trigger()

        QTimer.singleShot(200, choose_open_graph)
        rect = gallery.list.visualRect(gallery.model.index(0))
        gallery.list.customContextMenuRequested.emit(rect.center())  # what a right click sends
        assert sorted(n.type_id for n in win.graph.nodes.values()) == types
        image_node = next(n for n in win.graph.nodes.values() if n.type_id == "test.image")
        assert image_node.params["color"] == "blue"
        assert win.document.path is None  # an image opens as an untitled copy
    finally:
        win.worker.shutdown()


def test_drag_data_is_the_file_the_canvas_opens(qtbot, tmp_path, registry):
    out = tmp_path / "out"
    out.mkdir()
    _png(out / "a.png", "red", time.time())
    win = open_window(qtbot, tmp_path, registry)
    try:
        qtbot.waitUntil(lambda: win.gallery.model.rowCount() == 1, timeout=5000)
        mime = win.gallery.model.mimeData([win.gallery.model.index(0)])
        assert [u.toLocalFile() for u in mime.urls()] == [str(out / "a.png")]
        assert Qt.ItemFlag.ItemIsDragEnabled & win.gallery.model.flags(win.gallery.model.index(0))

        class Drop:  # what the canvas reads from a drop
            def mimeData(self):
                return mime
        assert win.view._dropped_path(Drop()) == str(out / "a.png")
    finally:
        win.worker.shutdown()


def test_a_large_folder_fills_in_batches_without_blocking(qtbot, tmp_path, registry):
    from nodeeditor import gallery as gallery_module

    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (8, 8), "red").save(out / "seed.png")
    data = (out / "seed.png").read_bytes()
    for i in range(2500):
        (out / f"img_{i:05d}.png").write_bytes(data)
    win = open_window(qtbot, tmp_path, registry)
    try:
        model = win.gallery.model
        qtbot.waitUntil(lambda: model.rowCount() == 2501 and not model.listing, timeout=20_000)
        assert len(model.thumbs) <= gallery_module.CACHE_MAX
        # the view asks for the thumbnails it shows, not for 2,500
        QApplication.processEvents()
        assert len(model.pending) + len(model.thumbs) < 400
    finally:
        win.worker.shutdown()


# ----- the latent inspector after a cancelled run (issue 26, item 5) -------------------------
def test_a_cancelled_run_leaves_no_stale_trace(qtbot, tmp_path, registry):
    registry.sockets.register(SocketType("LATENT_TRACE", "#ce93d8"))
    registry.nodes.register(NodeType("test.trace", "Trace", "test",
                                     lambda ctx, x=0: {"trace": SimpleNamespace(num_steps=3)},
                                     inputs=(Socket("x", "INT", optional=True),),
                                     outputs=(Socket("trace", "LATENT_TRACE"),), output_node=True))
    win = open_window(qtbot, tmp_path, registry)
    try:
        g = Graph(registry)
        s = g.add_node(g.create_node("test.sleep", (0, 0), params={"seconds": 0.0}))
        t = g.add_node(g.create_node("test.trace", (300, 0)))
        g.connect(s.id, "out", t.id, "x")
        win.document.load_graph(g)
        win.runs.run()
        wait_run(qtbot, win)
        assert t.id in win.inspector.traces
        win.controller.set_param(s.id, "seconds", 30.0)  # the trace node must run again
        win.runs.run()
        qtbot.waitUntil(lambda: win.progress.value() > 0, timeout=5000)
        win.actions_by_name["cancel"].trigger()
        wait_run(qtbot, win, timeout=5000)
        assert win.runs.last_result.status == "cancelled"
        assert win.inspector.traces == {} and win.inspector.current_trace() is None
        assert win.inspector.source.count() == 0
        assert "cancelled" in win.inspector.picture.text()
    finally:
        win.worker.shutdown()

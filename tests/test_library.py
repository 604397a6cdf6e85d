"""The node library dock: categories, a filter that finds what the search finds, double-click to
add at the centre, drag onto the canvas to add where it is dropped."""

from __future__ import annotations

import pytest
from conftest_editor import open_window
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDropEvent

import nodes  # noqa: F401
from graphs import default_registry
from nodeeditor.library import NODE_MIME


@pytest.fixture
def win(qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, default_registry())
    window.document.new_file()
    yield window
    window.worker.shutdown()


def test_the_library_lists_every_node_by_category_and_filters(win):
    library = win.library
    top = [library.tree.topLevelItem(i).text(0) for i in range(library.tree.topLevelItemCount())]
    assert {"loaders", "sampling", "conditioning", "latent", "image"} <= set(top)
    assert {"sd.load_model", "sd.unet_denoise", "sd.load_lora", "image.scale"} <= set(library.type_items())
    item = library.type_items()["sd.text_encode"]
    assert "prompt" in item.toolTip(0).lower()
    library.query.setText("KSampler")
    shown = library.type_items()
    assert "sd.unet_denoise" in shown and "sd.load_model" not in shown and len(shown) <= 3
    assert library.type_items()["sd.unet_denoise"].parent().isExpanded()
    assert "Node library" in [a.text() for a in win.menuBar().actions()[2].menu().actions()]


def test_double_click_adds_at_the_centre_and_a_drop_adds_where_it_lands(win, qtbot):
    library = win.library
    library._activated(library.type_items()["sd.noise"])
    (noise,) = [n for n in win.graph.nodes.values() if n.type_id == "sd.noise"]
    centre = win.view.center()
    assert abs(noise.pos[0] - centre.x()) < 1 and abs(noise.pos[1] - centre.y()) < 1
    mime = QMimeData()
    mime.setData(NODE_MIME, b"sd.vae_decode")
    at = QPoint(120, 90)
    drop = QDropEvent(QPointF(at), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    win.view.dropEvent(drop)
    (decode,) = [n for n in win.graph.nodes.values() if n.type_id == "sd.vae_decode"]
    expected = win.view.mapToScene(at)
    assert abs(decode.pos[0] - expected.x()) < 1 and abs(decode.pos[1] - expected.y()) < 1
    win.undo_stack.undo()  # an ordinary, undoable add
    assert not [n for n in win.graph.nodes.values() if n.type_id == "sd.vae_decode"]

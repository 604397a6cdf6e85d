# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""The mask editor (pytest-qt): opened from a Load image node's context menu, strokes drawn with
the mouse on its canvas, saved into masks/ beside the workflow, referenced by the node (undoable
in the editor), reopened, and read back by the node itself through the executor."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest_editor import open_window
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

import nodes
from graphs import Executor, Graph, base_registry
from graphs import workflow as wf

LEFT = Qt.MouseButton.LeftButton
W, H = 240, 160


@pytest.fixture
def registry():
    return nodes.register(base_registry())


@pytest.fixture
def window(qtbot, tmp_path, registry):
    win = open_window(qtbot, tmp_path, registry)
    yield win
    win.worker.shutdown()


def make_photo(path, alpha=False):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (H, W, 4 if alpha else 3), dtype=np.uint8)
    if alpha:
        pixels[:, :, 3] = 255
        pixels[:40, :60, 3] = 0  # the top-left corner is transparent: masked to start with
    Image.fromarray(pixels).save(path)
    return path


def saved_workflow(window, tmp_path, registry, nodes_params=({"path": "photo.png"},)):
    """A workflow file with Load image nodes (relative image paths), opened in the window."""
    g = Graph(registry)
    ids = [g.add_node(g.create_node("image.load", (0, 300 * i), params=dict(p), node_id=f"load{i}")).id
           for i, p in enumerate(nodes_params)]
    wf.save(g, tmp_path / "wf.json")
    assert window.document.open_path(str(tmp_path / "wf.json"), ask=False), window.errors
    return ids


def menu_action(window, node_id):
    item = window.scene.node_items[node_id]
    window.view.centerOn(item)
    menu = window.context_menus.show_at(window.view.mapFromScene(item.sceneBoundingRect().center()))
    menu.close()
    return next(a for a in menu.actions() if a.text() == "Edit mask…")


def open_editor(window, qtbot, node_id):
    action = menu_action(window, node_id)
    assert action.isEnabled(), action.toolTip()
    action.trigger()
    dialog = window.context_menus.mask_editor
    assert dialog is not None, window.errors
    qtbot.waitExposed(dialog)
    dialog.errors = []
    dialog.show_error = lambda title, text: dialog.errors.append(text)
    dialog.ask_discard = lambda: True
    return dialog


def drag(canvas, points, button=LEFT):
    """Press, move through ``points`` (image pixels) and release, as a user's mouse does."""
    where = [canvas.image_to_widget(QPointF(x, y)).toPoint() for x, y in points]
    QTest.mousePress(canvas, button, Qt.KeyboardModifier.NoModifier, where[0])
    for point in where[1:]:
        QTest.mouseMove(canvas, point)
    QTest.mouseRelease(canvas, button, Qt.KeyboardModifier.NoModifier, where[-1])


def set_brush(dialog, size, hardness):
    dialog.size_slider.setValue(size)
    dialog.hardness_slider.setValue(hardness)


def mask_file_values(path):
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image).copy()


def test_paint_erase_undo_save_reference_and_run(window, qtbot, tmp_path, registry):
    make_photo(tmp_path / "photo.png")
    (load,) = saved_workflow(window, tmp_path, registry)
    dialog = open_editor(window, qtbot, load)
    assert dialog.windowTitle() == "Edit mask — photo.png"
    canvas = dialog.canvas
    assert canvas.mask.format() == canvas.mask.Format.Format_Grayscale8
    assert (canvas.mask.width(), canvas.mask.height()) == (W, H)
    assert not canvas.values().any()  # no alpha: nothing masked yet

    set_brush(dialog, 20, 100)
    drag(canvas, [(20, 40), (220, 40)])  # one fast move: the stroke still has no gap
    mask = canvas.values()
    assert (mask[37:44, 25:216] == 255).all()
    assert not mask[60:, :].any() and not mask[:, 234:].any()
    assert dialog.undo_stack.count() == 1

    before_second = mask.copy()
    drag(canvas, [(120, 100), (130, 104), (140, 108)])
    assert (canvas.values()[100:108, 122:138] == 255).all()
    dialog.undo_stack.undo()  # one stroke, one step
    assert np.array_equal(canvas.values(), before_second)
    dialog.undo_stack.redo()
    assert (canvas.values()[100:108, 122:138] == 255).all()

    dialog.erase_button.click()
    assert canvas.erasing
    drag(canvas, [(100, 20), (100, 60)])  # erases across the first stroke
    assert not canvas.values()[30:50, 95:106].any()
    assert (canvas.values()[37:44, 25:80] == 255).all()

    assert dialog.save()
    file = tmp_path / "masks" / "photo_mask.png"
    saved = mask_file_values(file)
    assert np.array_equal(saved, canvas.values())
    assert window.graph.nodes[load].params["mask"] == "masks/photo_mask.png"
    assert dialog.saved_file == file
    assert window.document.is_modified()  # the reference is an edit of the workflow

    result = Executor().run(window.graph, targets=[load], settings=window._run_settings())
    assert result.status == "finished", result.error
    node_mask = result.outputs[load]["mask"].numpy()[0]
    assert np.array_equal(node_mask == 1.0, saved == 255)
    assert np.allclose(node_mask, saved / 255.0)

    window.undo_stack.undo()  # Ctrl+Z in the editor takes the reference back
    assert window.graph.nodes[load].params["mask"] == ""
    window.undo_stack.redo()
    assert window.graph.nodes[load].params["mask"] == "masks/photo_mask.png"

    again = open_editor(window, qtbot, load)  # reopening shows the saved mask
    assert np.array_equal(again.canvas.values(), saved)
    drag(again.canvas, [(200, 130), (210, 130)])
    assert again.save()  # its own file is replaced, under the same name
    assert sorted(os.listdir(tmp_path / "masks")) == ["photo_mask.png"]
    assert mask_file_values(file)[130, 205] == 255


def test_hardness_zero_leaves_a_soft_edge(window, qtbot, tmp_path, registry):
    make_photo(tmp_path / "photo.png")
    (load,) = saved_workflow(window, tmp_path, registry)
    dialog = open_editor(window, qtbot, load)
    set_brush(dialog, 40, 0)
    drag(dialog.canvas, [(60, 80), (180, 80)])
    column = dialog.canvas.values()[55:106, 120].astype(int)
    assert column.max() >= 250 and column[0] == 0 and column[-1] == 0
    edge = column[(column > 0) & (column < 255)]
    assert len(edge) >= 10  # a falloff, not a step
    assert len(set(edge.tolist())) >= 8
    set_brush(dialog, 40, 100)
    dialog.clear()
    drag(dialog.canvas, [(60, 80), (180, 80)])
    column = dialog.canvas.values()[55:106, 120]
    assert ((column > 0) & (column < 255)).sum() <= 4  # a hard brush: only the anti-aliased rim


def test_keys_undo_and_tools(window, qtbot, tmp_path, registry):
    make_photo(tmp_path / "photo.png")
    (load,) = saved_workflow(window, tmp_path, registry)
    dialog = open_editor(window, qtbot, load)
    dialog.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog)
    canvas = dialog.canvas
    set_brush(dialog, 20, 100)
    QTest.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert dialog.size_slider.value() > 20
    QTest.keyClick(canvas, Qt.Key.Key_BracketLeft)
    QTest.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert dialog.size_slider.value() < 20
    empty = canvas.values().copy()
    drag(canvas, [(40, 40), (160, 40)])
    assert canvas.values().any()
    steps = dialog.undo_stack.count()
    start = canvas.image_to_widget(QPointF(40, 120)).toPoint()
    QTest.mousePress(canvas, LEFT, Qt.KeyboardModifier.NoModifier, start)
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # ignored mid-stroke
    QTest.mouseRelease(canvas, LEFT, Qt.KeyboardModifier.NoModifier, start)
    assert dialog.undo_stack.count() == steps + 1 and canvas.values()[120, 40] == 255
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(canvas.values(), empty)
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert canvas.values().any()
    QTest.keyClick(canvas, Qt.Key.Key_E)
    assert canvas.erasing and dialog.erase_button.isChecked()
    QTest.keyClick(canvas, Qt.Key.Key_B)
    assert not canvas.erasing and dialog.paint_button.isChecked()
    painted = canvas.values().copy()
    dialog.invert()
    assert canvas.values()[40, 100] == 0 and canvas.values()[120, 100] == 255
    dialog.undo_stack.undo()
    assert np.array_equal(canvas.values(), painted)
    dialog.clear()
    assert not canvas.values().any()
    dialog.undo_stack.undo()
    assert np.array_equal(canvas.values(), painted)
    dialog.show_button.click()
    assert not canvas.show_mask
    QTest.keyClick(canvas, Qt.Key.Key_H)
    assert canvas.show_mask
    drag(canvas, [(100, 20), (100, 60)], Qt.MouseButton.RightButton)  # the right button erases
    assert not canvas.values()[35:46, 96:105].any() and canvas.values()[40, 60] == 255
    # the wheel zooms at the cursor: that image point stays put, and strokes land where the mouse is
    anchor = canvas.image_to_widget(QPointF(200, 120))
    scale = canvas.scale()
    wheel = QWheelEvent(anchor, canvas.mapToGlobal(anchor), QPoint(), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas, wheel)
    assert canvas.scale() == pytest.approx(scale * 1.25**2)
    assert canvas.widget_to_image(anchor).x() == pytest.approx(200, abs=0.01)
    drag(canvas, [(195, 125), (205, 125)])
    assert (canvas.values()[122:129, 197:204] == 255).all() and canvas.values()[125, 215] == 0


def test_starts_from_the_images_transparency(window, qtbot, tmp_path, registry):
    make_photo(tmp_path / "photo.png", alpha=True)
    (load,) = saved_workflow(window, tmp_path, registry)
    mask = open_editor(window, qtbot, load).canvas.values()
    assert (mask[:40, :60] == 255).all() and not mask[40:, :].any() and not mask[:, 60:].any()


def test_a_mask_of_another_size_is_stretched(window, qtbot, tmp_path, registry):
    make_photo(tmp_path / "photo.png")
    small = np.zeros((16, 24), np.uint8)
    small[:, 12:] = 255
    Image.fromarray(small).save(tmp_path / "half.png")
    (load,) = saved_workflow(window, tmp_path, registry, ({"path": "photo.png", "mask": "half.png"},))
    dialog = open_editor(window, qtbot, load)
    mask = dialog.canvas.values()
    assert mask.shape == (H, W) and (mask[:, 130:] == 255).all() and not mask[:, :110].any()
    assert "stretched" in dialog.note.text()


def test_names_used_by_another_nodes_mask_are_not_reused(window, qtbot, tmp_path, registry):
    make_photo(tmp_path / "photo.png")
    a, b = saved_workflow(window, tmp_path, registry, ({"path": "photo.png"}, {"path": "photo.png"}))
    first = open_editor(window, qtbot, a)
    drag(first.canvas, [(20, 20), (60, 20)])
    assert first.save()
    second = open_editor(window, qtbot, b)
    drag(second.canvas, [(20, 120), (60, 120)])
    assert second.save()
    params = {n: window.graph.nodes[n].params["mask"] for n in (a, b)}
    assert params == {a: "masks/photo_mask.png", b: "masks/photo_mask_2.png"}
    assert mask_file_values(tmp_path / "masks" / "photo_mask.png")[120, 40] == 0
    # a duplicate shares its mask file: painting it writes a file of its own
    window.controller.set_param(b, "mask", "masks/photo_mask.png")
    third = open_editor(window, qtbot, b)
    drag(third.canvas, [(200, 120), (220, 120)])
    assert third.save()
    assert window.graph.nodes[b].params["mask"] == "masks/photo_mask_3.png"
    assert mask_file_values(tmp_path / "masks" / "photo_mask.png")[120, 210] == 0


def test_a_linked_masks_folder_is_refused(window, qtbot, tmp_path, registry):
    make_photo(tmp_path / "photo.png")
    (load,) = saved_workflow(window, tmp_path, registry)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "masks")
    dialog = open_editor(window, qtbot, load)
    drag(dialog.canvas, [(20, 20), (60, 20)])
    assert not dialog.save()
    assert dialog.errors and "symbolic link" in dialog.errors[-1]
    assert dialog.isVisible()  # still open: the painting is not lost
    assert os.listdir(elsewhere) == []
    assert window.graph.nodes[load].params["mask"] == ""
    # a link planted at the mask's name is never written through: the mask takes the next name
    (tmp_path / "masks").unlink()
    (tmp_path / "masks").mkdir()
    os.symlink(elsewhere / "target.png", tmp_path / "masks" / "photo_mask.png")
    assert dialog.save()
    assert window.graph.nodes[load].params["mask"] == "masks/photo_mask_2.png"
    assert os.listdir(elsewhere) == []


def test_an_unsaved_workflow_is_saved_first(window, qtbot, tmp_path, registry):
    make_photo(tmp_path / "photo.png")
    load = window.controller.add_node("image.load", (0, 0))
    window.controller.set_param(load, "path", str(tmp_path / "photo.png"))
    dialog = open_editor(window, qtbot, load)
    drag(dialog.canvas, [(20, 20), (60, 20)])
    dialog.ask_save_workflow = lambda: False
    assert not dialog.save() and dialog.isVisible()
    assert not (tmp_path / "masks").exists()
    dialog.ask_save_workflow = lambda: True
    window.document.ask_save_path = lambda: str(tmp_path / "new.json")
    assert dialog.save()
    assert window.document.path == str(tmp_path / "new.json")
    assert window.graph.nodes[load].params["mask"] == "masks/photo_mask.png"
    result = Executor().run(window.graph, targets=[load], settings=window._run_settings())
    assert result.status == "finished", result.error
    assert result.outputs[load]["mask"][0, 20, 40] == 1.0


def test_unreadable_image_and_empty_path(window, qtbot, tmp_path, registry):
    (tmp_path / "photo.png").write_text("not an image")
    load, empty = saved_workflow(window, tmp_path, registry, ({"path": "photo.png"}, {"path": ""}))
    action = menu_action(window, empty)
    assert not action.isEnabled() and "path is empty" in action.toolTip()
    assert window.context_menus.edit_mask(load) is None
    assert window.errors and f"cannot read image {tmp_path / 'photo.png'}" in window.errors[-1]
    (tmp_path / "photo.png").unlink()
    assert window.context_menus.edit_mask(load) is None
    assert "image not found: photo.png" in window.errors[-1]


def test_the_mask_is_shown_in_a_colour_that_stands_out_from_what_it_covers(qtbot):
    """A red tint over a red object painted as the mask cannot be seen: the editor starts with the
    tint farthest from the colours under the mask."""
    import numpy as np
    from PySide6.QtGui import QImage

    from nodeeditor.mask_canvas import contrasting_tint, gray_view

    image = QImage(40, 20, QImage.Format.Format_RGB888)
    image.fill(0xFFFFFF)
    for x in range(20):
        for y in range(20):
            image.setPixel(x, y, 0xEE2828)  # the left half red
    mask = QImage(40, 20, QImage.Format.Format_Grayscale8)
    mask.fill(0)
    gray_view(mask)[:, :20] = 255  # over the red half
    assert contrasting_tint(image, mask) != "Red"
    gray_view(mask)[:] = np.uint8(0)
    image.fill(0x2040FF)  # all blue, nothing masked: the whole image counts
    assert contrasting_tint(image, mask) != "Blue"

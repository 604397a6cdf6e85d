"""Edit mask…: paint the mask of a Load image node over its image (``mask_canvas.py`` is the canvas).

:func:`open_mask_editor` reads the node's image (and its painted mask, or the image's transparent
pixels, as the node does) and shows a :class:`MaskEditor`. Save writes a grayscale PNG into
``masks/`` beside the workflow file (``graphs.safe_io``: atomic, never through a link) and points
the node's ``mask`` param at it through the controller, so the editor's Ctrl+Z takes the reference
back. A workflow never saved has no folder for its inputs: Save asks to save the workflow first.
Dialogs are attributes (``show_error``, ``ask_save_workflow``, ``ask_discard``) tests replace.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QAction, QImage, QKeySequence, QShortcut, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from graphs import safe_io
from graphs.executor import resolve_path

from .mask_canvas import TINTS, MaskCanvas, contrasting_tint
from .mask_files import MASKS_FOLDER, load_pictures, mask_stem, masks_folder, png_bytes

MASKABLE_TYPES = ("image.load",)  # node types with an image ``path`` and a painted ``mask`` param
BRUSH_MIN, BRUSH_MAX = 1, 512
_brush = {"size": None, "hardness": 80}  # the last dialog's brush, for the next one


def unavailable_reason(graph, node_id: str) -> str:
    """Why the node's mask cannot be edited now ("" when it can): for the menu entry's tooltip."""
    node = graph.nodes.get(node_id)
    if node is None or node.type_id not in MASKABLE_TYPES:
        return "only a Load image node has a mask to paint"
    if graph.inbound(node_id, "path") is not None:
        return "the image comes from a link: paint the mask on the node that names the file"
    if not node.params.get("path"):
        return "choose the image first (the node's path is empty)"
    return ""


# ----- undo steps ----------------------------------------------------------------------
class MaskEdit(QUndoCommand):
    """A change of the mask inside ``rect`` (a stroke, Clear), already applied when pushed. Both
    sides are kept zlib-compressed: masks are mostly flat, and a step over a whole 8192² mask
    would hold 128 MB as arrays."""

    def __init__(self, canvas: MaskCanvas, text: str, rect: QRect, before: np.ndarray, after: np.ndarray):
        super().__init__(text)
        self.canvas, self.rect, self.shape = canvas, rect, before.shape
        self.before, self.after = (zlib.compress(np.ascontiguousarray(a).tobytes(), 1) for a in (before, after))
        self._done = True

    def _put(self, data: bytes) -> None:
        self.canvas.put(self.rect, np.frombuffer(zlib.decompress(data), np.uint8).reshape(self.shape))

    def redo(self) -> None:
        if self._done:
            self._done = False  # push() calls redo: the canvas has it already
            return
        self._put(self.after)

    def undo(self) -> None:
        self._put(self.before)


class InvertEdit(QUndoCommand):
    """Invert: its own inverse, so it keeps nothing."""

    def __init__(self, canvas: MaskCanvas) -> None:
        super().__init__("invert")
        self.canvas = canvas

    def redo(self) -> None:
        np.subtract(255, self.canvas.values(), out=self.canvas.values())
        self.canvas.refresh_overlay()

    undo = redo


# ----- the dialog ------------------------------------------------------------------------
class MaskEditor(QDialog):
    def __init__(self, node_id: str, image_file: Path, image: QImage, mask: QImage, controller, document,
                 note: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.node_id, self.image_file, self.controller, self.document = node_id, image_file, controller, document
        self.saved_file: Path | None = None
        self.show_error = self._show_error
        self.ask_save_workflow = self._ask_save_workflow
        self.ask_discard = self._ask_discard
        self.setWindowTitle(f"Edit mask — {image_file.name}")
        self.canvas = MaskCanvas(image, mask, self)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(200)
        self.canvas.stroke_done.connect(lambda rect, before, after, erased: self.undo_stack.push(MaskEdit(
            self.canvas, "erase" if erased else "paint", rect, before, after)))
        self.canvas.view_changed.connect(self._update_status)
        size = _brush["size"] or max(4, round(max(image.width(), image.height()) / 20))
        self._build(min(BRUSH_MAX, size), _brush["hardness"])
        self.note.setText(note)
        self.setStyleSheet("QToolButton:checked{background:#2f80ed;border-color:#2f80ed;color:#ffffff;}")
        self.resize(1000, 760)

    def _button(self, row: QHBoxLayout, text: str, tip: str, slot=None, checkable=False) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setCheckable(checkable)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay with the canvas
        if slot is not None:
            button.clicked.connect(slot)
        row.addWidget(button)
        return button

    def _slider(self, row: QHBoxLayout, label: str, low: int, high: int, value: int, tip: str):
        row.addWidget(QLabel(label))
        slider = QSlider(Qt.Orientation.Horizontal, self)
        slider.setRange(low, high)
        slider.setValue(value)
        slider.setToolTip(tip)
        slider.setFixedWidth(150)
        slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        value_label = QLabel(self)
        value_label.setMinimumWidth(48)
        row.addWidget(slider)
        row.addWidget(value_label)
        return slider, value_label

    def _build(self, size: int, hardness: int) -> None:
        b, row = self._button, QHBoxLayout()
        self.paint_button = b(row, "Paint", "paint the mask: white is repainted (B)", lambda: self.set_erasing(False), True)
        self.erase_button = b(row, "Erase", "erase the mask (E); the right button always paints with the "
                                            "other tool", lambda: self.set_erasing(True), True)
        self.size_slider, self.size_label = self._slider(
            row, "Size", BRUSH_MIN, BRUSH_MAX, size, "brush diameter in image pixels ([ and ])")
        self.hardness_slider, self.hardness_label = self._slider(
            row, "Hardness", 0, 100, hardness, "0 %: the edge fades over the whole radius; 100 %: a crisp "
                                                "edge (Shift+[ and Shift+])")
        self.size_slider.valueChanged.connect(self._brush_changed)
        self.hardness_slider.valueChanged.connect(self._brush_changed)
        row.addSpacing(12)
        for text, keys, tip, slot, can_change in (
                ("Undo", ["Ctrl+Z"], "undo the last stroke (Ctrl+Z)", self.undo, self.undo_stack.canUndoChanged),
                ("Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], "redo (Ctrl+Shift+Z)", self.redo, self.undo_stack.canRedoChanged)):
            action = QAction(text, self)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.triggered.connect(slot)
            self.addAction(action)
            button = b(row, text, tip, slot)
            button.setEnabled(False)
            can_change.connect(button.setEnabled)
        b(row, "Clear", "remove the whole mask", self.clear)
        b(row, "Invert", "swap masked and unmasked (I)", self.invert)
        self.show_button = b(row, "Show mask", "show the mask over the image (H)", checkable=True)
        self.show_button.setChecked(True)
        self.show_button.toggled.connect(self.set_show_mask)
        b(row, "Fit", "show the whole image (F); the wheel zooms, the middle button pans", self.canvas.fit)
        row.addStretch(1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.status_label, self.note = QLabel(self), QLabel(self)
        self.note.setStyleSheet("color:#e0a040;")
        self.tint_box = QComboBox(self)
        self.tint_box.addItems(list(TINTS))
        self.tint_box.setToolTip("the colour the mask is shown in (it is saved as white)")
        self.tint_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tint_box.currentTextChanged.connect(self.set_tint)
        self.tint_box.setCurrentText(contrasting_tint(self.canvas.image, self.canvas.mask))
        bottom = QHBoxLayout()
        bottom.addWidget(self.status_label)
        bottom.addWidget(self.note, 1)
        bottom.addWidget(QLabel("Shown in"))
        bottom.addWidget(self.tint_box)
        bottom.addSpacing(12)
        bottom.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(bottom)
        for keys, slot in (("B", lambda: self.set_erasing(False)), ("E", lambda: self.set_erasing(True)),
                           ("[", lambda: self.step_size(-1)), ("]", lambda: self.step_size(1)),
                           ("Shift+[", lambda: self.step_hardness(-10)), ("{", lambda: self.step_hardness(-10)),
                           ("Shift+]", lambda: self.step_hardness(10)), ("}", lambda: self.step_hardness(10)),
                           ("I", self.invert), ("H", self.show_button.toggle), ("F", self.canvas.fit)):
            QShortcut(QKeySequence(keys), self, slot)
        self.set_erasing(False)
        self._brush_changed()
        self.canvas.setFocus()

    # ----- tools --------------------------------------------------------------------------
    def set_erasing(self, erasing: bool) -> None:
        self.canvas.erasing = erasing
        self.paint_button.setChecked(not erasing)
        self.erase_button.setChecked(erasing)

    def set_tint(self, name: str) -> None:
        self.canvas.tint = TINTS[name]
        self.canvas.refresh_overlay()

    def set_show_mask(self, shown: bool) -> None:
        self.canvas.show_mask = shown
        self.canvas.update()

    def step_size(self, direction: int) -> None:
        size = self.size_slider.value()
        change = max(1, round(size * 0.15))
        self.size_slider.setValue(size + direction * change)

    def step_hardness(self, change: int) -> None:
        self.hardness_slider.setValue(self.hardness_slider.value() + change)

    def _brush_changed(self) -> None:
        self.canvas.brush_size = self.size_slider.value()
        self.canvas.hardness = self.hardness_slider.value() / 100
        self.size_label.setText(f"{self.canvas.brush_size} px")
        self.hardness_label.setText(f"{self.hardness_slider.value()} %")
        _brush.update(size=self.canvas.brush_size, hardness=self.hardness_slider.value())
        self.canvas.brush_changed()
        self._update_status()

    def _update_status(self) -> None:
        image = self.canvas.image
        self.status_label.setText(f"{image.width()} × {image.height()} px · zoom {self.canvas.scale() * 100:.0f} %")

    # not in the middle of a stroke: its undo step is made when it ends
    def undo(self) -> None:
        if not self.canvas.drawing():
            self.undo_stack.undo()

    def redo(self) -> None:
        if not self.canvas.drawing():
            self.undo_stack.redo()

    def clear(self) -> None:
        before = self.canvas.values().copy()
        if before.any() and not self.canvas.drawing():
            self.canvas.put(self.canvas.mask.rect(), 0)
            self.undo_stack.push(MaskEdit(self.canvas, "clear", self.canvas.mask.rect(), before,
                                          np.zeros_like(before)))

    def invert(self) -> None:
        if not self.canvas.drawing():
            self.undo_stack.push(InvertEdit(self.canvas))  # pushing does it

    # ----- save / cancel --------------------------------------------------------------------
    def _show_error(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

    def _ask_save_workflow(self) -> bool:
        buttons = QMessageBox.StandardButton
        return QMessageBox.question(
            self, "Save the workflow first",
            "The mask is saved in a masks folder next to the workflow file, and this workflow has not "
            "been saved yet. Save the workflow now?", buttons.Save | buttons.Cancel, buttons.Save) == buttons.Save

    def _ask_discard(self) -> bool:
        buttons = QMessageBox.StandardButton
        return QMessageBox.question(self, "Discard the painted mask?", "Close without saving the mask?",
                                    buttons.Discard | buttons.Cancel, buttons.Cancel) == buttons.Discard

    def _target(self, folder: Path, base: str) -> tuple[list[str], bool]:
        """The names to write under in ``folder`` and whether the first is replaced: the node's own
        file in ``masks/`` is; otherwise ``<image stem>_mask.png`` or the first free ``_mask_N.png``
        is claimed, never a name another node's mask names nor any file already there."""
        def where(value: str) -> str:
            value = os.path.expanduser(value)
            return os.path.abspath(value if os.path.isabs(value) else os.path.join(base, value))

        graph = self.controller.graph
        theirs = {where(node.params["mask"]) for node_id, node in graph.nodes.items()
                  if node_id != self.node_id and isinstance(node.params.get("mask"), str) and node.params["mask"]}
        own = graph.nodes[self.node_id].params.get("mask") or ""
        if own:
            own_file = Path(where(own))
            if own_file.parent == folder and str(own_file) not in theirs and not own_file.is_symlink():
                return [own_file.name], True
        stem = mask_stem(str(self.image_file))
        names = [f"{stem}_mask.png"] + [f"{stem}_mask_{n}.png" for n in range(2, 1000)]
        return [n for n in names if str(folder / n) not in theirs], False

    def save(self) -> bool:
        """Write the mask and point the node at it; False (the dialog stays open) when it was not saved."""
        document = self.document
        if self.node_id not in self.controller.graph.nodes or document is None:
            why = "no workflow to save beside" if document is None else "the node was deleted"
            self.show_error("Cannot save mask", why)
            return False
        if not document.path and not (self.ask_save_workflow() and document.save()):
            return False
        workflow_folder = Path(document.path).parent
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            folder = masks_folder(workflow_folder)
            names, replace = self._target(folder, document.base_dir or str(workflow_folder))
            data = png_bytes(self.canvas.mask)
            if replace:
                written = safe_io.write_atomic(folder / names[0], data)
            else:
                written = safe_io.write_unique(folder, names, data)
        except ValueError as exc:
            self.show_error("Cannot save mask", str(exc))
            return False
        except OSError as exc:
            self.show_error("Cannot save mask", f"{exc.filename or workflow_folder / MASKS_FOLDER}: "
                                                f"{exc.strerror or exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        reference = Path(os.path.relpath(written, workflow_folder)).as_posix()
        if os.path.abspath(resolve_path(reference, {"base_dir": document.base_dir})) != str(written):
            reference = str(written)  # saved as into another folder: relative would not be found now
        self.controller.set_param(self.node_id, "mask", reference)
        self.saved_file = written
        self.undo_stack.setClean()
        self.accept()
        return True

    def reject(self) -> None:
        if not self.undo_stack.isClean() and not self.ask_discard():
            return
        super().reject()


def open_mask_editor(node_id: str, controller, document, parent: QWidget | None = None,
                     show_error=None) -> MaskEditor | None:
    """Show the mask editor for a Load image node (window-modal, not blocking); None, with the
    reason shown, when its image cannot be read."""
    show_error = show_error or (lambda title, text: QMessageBox.warning(parent, title, text))
    graph = controller.graph
    reason = unavailable_reason(graph, node_id)
    if reason:
        show_error("Cannot edit mask", reason)
        return None
    params = graph.nodes[node_id].params
    settings = {"base_dir": document.base_dir if document is not None else None}
    image_file = Path(resolve_path(params["path"], settings))
    mask_file = Path(resolve_path(params["mask"], settings)) if params.get("mask") else None
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        image, mask, note = load_pictures(image_file, mask_file)
    except ValueError as exc:
        QApplication.restoreOverrideCursor()
        show_error("Cannot edit mask", str(exc))  # names the file
        return None
    QApplication.restoreOverrideCursor()
    dialog = MaskEditor(node_id, image_file, image, mask, controller, document, note, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog

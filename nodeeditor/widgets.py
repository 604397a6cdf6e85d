"""Param editors built from ``graphs.registry.Param`` declarations.

``make_editor(param, value, on_change)`` returns a :class:`ParamEditor` whose ``widget``
edits the value and calls ``on_change(new_value)`` for each user edit; ``set_value``
updates it from the model without calling back. Used on the nodes and in the
properties panel.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from graphs import NodeType, Param
from graphs.registry import SEED_MAX

OnChange = Callable[[Any], None]
INT_LIMIT = 2**31 - 1

# Row heights used by node layout (scene units): most params take one row, text takes more.
ROW_H = 22
TEXT_ROW_H = 66


def row_height(param: Param) -> int:
    from .theme import scaled  # View → UI scale: past 125% the rows grow with their text

    return round(scaled(TEXT_ROW_H if param.kind == "text" else ROW_H))


def seed_control(node_type: NodeType, param: Param) -> Param | None:
    """The param declared to drive ``param`` after each run (``Param.drives``): a seed's
    fixed / increment / randomize control."""
    for other in node_type.params:
        if other.drives and other.drives == param.name:
            return other
    return None


def display_value(param: Param, value: Any) -> str:
    """A short text for painting a value when no live widget exists (level of detail)."""
    if param.kind == "bool":
        return "on" if value else "off"
    if param.special_value and value == param.min:
        return param.special_value
    if param.kind == "float":
        return f"{value:.4g}"
    text = param.choice_label(value) if param.kind == "choice" else str(value)
    if param.kind == "text":
        text = text.replace("\n", " ")
    return text if len(text) <= 40 else text[:39] + "…"


class ParamEditor:
    def __init__(self, param: Param, widget: QWidget, setter: Callable[[Any], None]) -> None:
        self.param, self.widget, self._setter = param, widget, setter
        self.updating = False

    def set_value(self, value: Any) -> None:
        self.updating = True
        try:
            self._setter(value)
        finally:
            self.updating = False

    def set_enabled(self, enabled: bool) -> None:
        self.widget.setEnabled(enabled)


def _guard(editor_ref: list, on_change: OnChange) -> Callable[[Any], None]:
    def call(value: Any) -> None:
        if editor_ref and not editor_ref[0].updating:
            on_change(value)
    return call


def make_editor(param: Param, value: Any, on_change: OnChange,
                parent: QWidget | None = None) -> ParamEditor:
    ref: list[ParamEditor] = []
    emit = _guard(ref, on_change)
    kind = param.kind
    tip = param.tooltip or param.name
    if kind == "int":
        editor = _int_editor(param, value, emit, parent)
    elif kind == "float":
        editor = _float_editor(param, value, emit, parent)
    elif kind == "seed":
        editor = _seed_editor(param, value, emit, parent)
    elif kind == "bool":
        box = QCheckBox(parent)
        box.setChecked(bool(value))
        box.toggled.connect(lambda checked: emit(bool(checked)))
        editor = ParamEditor(param, box, lambda v: box.setChecked(bool(v)))
    elif kind == "choice":
        combo = QComboBox(parent)
        for choice in param.choices:  # shown by label, stored by id
            combo.addItem(param.choice_label(choice), choice)
        # Size to the node, not to the longest choice (a long one would push every row past the
        # node's edge); the current text is clipped, the popup shows the choices whole.
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)
        combo.view().setMinimumWidth(combo.view().sizeHintForColumn(0) + 24)
        def show_choice(v: Any) -> None:
            index = combo.findData(param.match_choice(str(v)))
            if index >= 0:
                combo.setCurrentIndex(index)
        show_choice(value)
        combo.currentIndexChanged.connect(lambda index: emit(combo.itemData(index)))
        editor = ParamEditor(param, combo, show_choice)
    elif kind == "text":
        text = QPlainTextEdit(parent)
        text.setPlainText(str(value))
        text.setTabChangesFocus(True)
        text.textChanged.connect(lambda: emit(text.toPlainText()))

        def set_text(v: Any) -> None:
            if text.toPlainText() != v:
                text.setPlainText(str(v))
        editor = ParamEditor(param, text, set_text)
    elif kind == "path":
        editor = _path_editor(param, value, emit, parent)
    elif kind == "json":  # a placeholder's saved value: shown, kept, never edited
        line = QLineEdit(parent)
        line.setReadOnly(True)

        def set_json(v: Any) -> None:
            line.setText(json.dumps(v, ensure_ascii=False))
        set_json(value)
        editor = ParamEditor(param, line, set_json)
    else:  # string
        line = QLineEdit(parent)
        line.setText(str(value))
        line.textChanged.connect(emit)

        def set_line(v: Any) -> None:
            if line.text() != v:
                line.setText(str(v))
        editor = ParamEditor(param, line, set_line)
    editor.widget.setToolTip(tip)
    ref.append(editor)
    return editor


def _int_editor(param: Param, value: Any, emit: OnChange, parent: QWidget | None) -> ParamEditor:
    spin = QSpinBox()
    # QSpinBox holds 32-bit ints: a wider declared range (the Int primitive's ±2^53) is cut to it
    lo = max(int(param.min), -INT_LIMIT) if param.min is not None else -INT_LIMIT
    hi = min(int(param.max), INT_LIMIT) if param.max is not None else INT_LIMIT
    spin.setRange(lo, hi)
    spin.setSingleStep(int(param.step or 1))
    if param.special_value:
        spin.setSpecialValueText(param.special_value)  # shown, in place of the number, at the minimum
    spin.setValue(int(value))
    spin.setKeyboardTracking(False)
    spin.valueChanged.connect(lambda v: emit(int(v)))
    if not param.slider or param.min is None or param.max is None:
        if parent is not None:
            spin.setParent(parent)
        return ParamEditor(param, spin, lambda v: spin.setValue(int(v)))
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(lo, hi)
    slider.setValue(int(value))
    slider.valueChanged.connect(spin.setValue)
    spin.valueChanged.connect(slider.setValue)
    box = _hbox(parent, slider, spin)

    def set_both(v: Any) -> None:
        spin.setValue(int(v))
        slider.setValue(int(v))
    return ParamEditor(param, box, set_both)


def _float_editor(param: Param, value: Any, emit: OnChange, parent: QWidget | None) -> ParamEditor:
    spin = QDoubleSpinBox()
    step = float(param.step or 0.1)
    decimals = max(2, min(6, len(f"{step:g}".split(".")[-1]) if "." in f"{step:g}" else 2))
    spin.setDecimals(decimals)
    spin.setRange(param.min if param.min is not None else -1e9,
                  param.max if param.max is not None else 1e9)
    spin.setSingleStep(step)
    spin.setValue(float(value))
    spin.setKeyboardTracking(False)
    spin.valueChanged.connect(lambda v: emit(float(v)))
    if not param.slider or param.min is None or param.max is None:
        if parent is not None:
            spin.setParent(parent)
        return ParamEditor(param, spin, lambda v: spin.setValue(float(v)))
    scale = 1000
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, scale)
    span = (param.max - param.min) or 1.0

    def to_slider(v: float) -> int:
        return round((v - param.min) / span * scale)

    slider.setValue(to_slider(float(value)))
    slider.sliderMoved.connect(lambda s: spin.setValue(param.min + s / scale * span))
    spin.valueChanged.connect(lambda v: (slider.blockSignals(True), slider.setValue(to_slider(v)),
                                         slider.blockSignals(False)))
    box = _hbox(parent, slider, spin)
    return ParamEditor(param, box, lambda v: spin.setValue(float(v)))


def random_seed(param: Param) -> int:
    """A seed drawn over the param's whole declared range."""
    lo = int(param.min) if param.min is not None else 0
    hi = int(param.max) if param.max is not None else SEED_MAX
    return random.randint(lo, hi)


def _seed_editor(param: Param, value: Any, emit: OnChange, parent: QWidget | None) -> ParamEditor:
    # Seeds go beyond 32 bits, so a validated line edit instead of a QSpinBox.
    line = QLineEdit()
    line.setValidator(QRegularExpressionValidator(r"\d{1,20}", line))
    line.setText(str(value))

    def commit() -> None:
        text = line.text().strip()
        if text and param.check(int(text)) is None:
            emit(int(text))
    line.editingFinished.connect(commit)
    dice = QToolButton()
    dice.setText("⚄")
    dice.setToolTip("new random seed")
    dice.clicked.connect(lambda: (line.setText(str(random_seed(param))), commit()))
    box = _hbox(parent, line, dice)
    box.line = line  # type: ignore[attr-defined]
    return ParamEditor(param, box, lambda v: line.setText(str(v)))


def _model_files(kind: str) -> list[str]:
    """The files of a model kind in the configured folders (the window sets the folders)."""
    from nodes.model_folders import listing

    try:
        return sorted(listing(kind, model_folder_settings()))
    except (OSError, ValueError, RuntimeError):  # unreadable folders; a window already closed
        return []


# The run settings that say where model folders are; the main window replaces it with its own.
model_folder_settings: Callable[[], dict[str, Any]] = dict


class FilePicker(QFrame):
    """A searchable list of model files, opened under the mouse: type any part of a name, pick
    with Enter or a double click. A top-level popup, so it lands where the user clicked even
    when the field lives on a node in the canvas (a completer there opens elsewhere)."""

    def __init__(self, files: list[str], current: str, choose: Callable[[str], None]) -> None:
        from . import theme

        super().__init__(None, Qt.WindowType.Popup)
        self.setObjectName("FilePicker")
        # a window of its own: it takes the app's look here, as the node search popup does
        self.setStyleSheet(theme.stylesheet() + "#FilePicker{background:#24272b;border:1px solid #4a5059;}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.choose = choose
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText(f"search {len(files)} files")
        self.list = QListWidget(self)
        self.list.addItems(files)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter)
        layout.addWidget(self.list)
        width = max(260, self.list.sizeHintForColumn(0) + 40)
        self.resize(min(width, 640), min(420, 60 + 22 * max(3, len(files))))
        self.filter.textChanged.connect(self._apply_filter)
        self.filter.returnPressed.connect(self._pick_current)
        self.list.itemActivated.connect(lambda item: self._pick(item.text()))
        matches = self.list.findItems(current, Qt.MatchFlag.MatchExactly)
        self.list.setCurrentItem(matches[0] if matches else self.list.item(0))
        self.filter.setFocus()

    def _apply_filter(self, text: str) -> None:
        first = None
        for row in range(self.list.count()):
            item = self.list.item(row)
            item.setHidden(text.lower() not in item.text().lower())
            if first is None and not item.isHidden():
                first = item
        self.list.setCurrentItem(first)

    def _pick_current(self) -> None:
        item = self.list.currentItem()
        if item is not None and not item.isHidden():
            self._pick(item.text())

    def _pick(self, name: str) -> None:
        self.close()
        self.choose(name)


def _offer_files(line: QLineEdit, kind: str, emit: OnChange) -> QToolButton:
    """A button that opens the searchable list of model files of ``kind``; the line still takes
    any path."""
    from PySide6.QtGui import QCursor

    show = QToolButton()
    show.setText("▾")
    show.setToolTip(f"files in your models folder's {kind}/ (File → Models folder…)")

    def choose(name: str) -> None:
        line.setText(name)
        line.setCursorPosition(0)  # the start of the name, where a narrow field is read
        emit(name)

    def open_picker() -> None:
        files = _model_files(kind)
        if not files:
            show.setToolTip(f"no files found in a {kind}/ folder: set File → Models folder…")
            return
        picker = FilePicker(files, line.text(), choose)
        show.picker = picker  # type: ignore[attr-defined]  (kept alive while open; tests reach it)
        picker.move(QCursor.pos())
        picker.show()
    show.clicked.connect(open_picker)
    return show


def _path_editor(param: Param, value: Any, emit: OnChange, parent: QWidget | None) -> ParamEditor:
    line = QLineEdit()
    line.setText(str(value))
    line.textChanged.connect(emit)
    extra = [_offer_files(line, param.file_kind, emit)] if param.file_kind else []
    browse = QToolButton()
    browse.setText("…")
    browse.setToolTip("browse")

    def pick() -> None:
        folder_like = any(w in param.name.lower() for w in ("folder", "dir"))
        if folder_like:
            chosen = QFileDialog.getExistingDirectory(box, param.label or param.name, line.text())
        else:
            chosen, _ = QFileDialog.getOpenFileName(box, param.label or param.name, line.text())
        if chosen:
            line.setText(chosen)
            emit(chosen)
    browse.clicked.connect(pick)
    box = _hbox(parent, line, *extra, browse)

    def set_line(v: Any) -> None:
        if line.text() != v:
            line.setText(str(v))
    return ParamEditor(param, box, set_line)


def _hbox(parent: QWidget | None, *widgets: QWidget) -> QWidget:
    box = QWidget(parent)
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(3)
    for i, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if i == 0 else 0)
    return box


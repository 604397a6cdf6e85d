"""File → Settings: the models folder, the in-memory model cache budget and the on-disk budget of
converted copies. OK saves them in the window's QSettings (read again at startup by
``budget_settings.apply_cache_setting``) and applies them to this process at once; Cancel changes nothing."""

from __future__ import annotations

import os
import sys

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from nodes import converted_copies
from nodes.model_cache import BUDGET_ENV, GIB, default_budget_bytes, parse_budget_gb, set_budget_gb

from .budget_settings import CACHE_SETTING, CONVERTED_SETTING, parse_converted_gb

NOTE_STYLE = "color:#8d939c"  # theme.TEXT_DIM: explanations read as secondary to the values
STYLE = "QLineEdit#path_text { border: none; background: transparent; padding: 0; }"  # a path, not a field


def size_text(size: int) -> str:
    if size >= GIB // 10:
        return f"{size / GIB:.1f} GiB"
    return f"{size / 1024**2:.0f} MiB" if size >= 1024**2 else f"{size / 1024:.1f} KiB"


def count_text(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def model_cache_usage(cache=None) -> str:
    """What the model cache holds now. Without a cache given: the editor's, only if the node
    library has loaded it (no models.py means no model was loaded)."""
    if cache is None:
        cache = getattr(sys.modules.get("nodes.models"), "MODEL_CACHE", None)
        if cache is None:
            return "No models loaded"
    try:
        count, size = len(cache), cache.bytes
    except RuntimeError:  # the run thread loaded or evicted a model while this counted
        return "Changing (a model is loading)"
    return f"{count_text(count, 'model', 'models')}, {size_text(size)}" if count else "No models loaded"


def converted_copies_usage() -> tuple[int, str]:
    found = converted_copies.copies()
    if not found:
        return 0, "No copies"
    return len(found), f"{count_text(len(found), 'copy', 'copies')}, {size_text(sum(s for _, s, _ in found))}"


def _note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(NOTE_STYLE)
    return label


def _row(*widgets: QWidget, stretch_first: bool = False) -> QWidget:
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for index, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if stretch_first and index == 0 else 0)
    if not stretch_first:
        layout.addStretch(1)
    return holder


def _gib_box(minimum: float, maximum: float, step: float, tooltip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setDecimals(1)
    box.setSuffix(" GiB")
    box.setToolTip(tooltip)
    return box


class SettingsDialog(QDialog):
    def __init__(self, window, model_cache=None) -> None:
        super().__init__(window)
        self.main_window = window
        self.settings = window.settings
        self.model_cache = model_cache
        self.setWindowTitle("Settings")
        self.setModal(True)
        self.setMinimumWidth(660)
        self.setStyleSheet(STYLE)
        self.forms: list[QFormLayout] = []
        layout = QVBoxLayout(self)
        layout.addWidget(self._models_group())
        layout.addWidget(self._memory_group())
        layout.addWidget(self._copies_group())
        layout.addStretch(1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                        | QDialogButtonBox.StandardButton.RestoreDefaults, parent=self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self.restore_defaults)
        layout.addWidget(self.buttons)
        self._align_label_columns()

    # ----- groups -----------------------------------------------------------------------
    def _group(self, title: str) -> tuple[QGroupBox, QFormLayout]:
        group = QGroupBox(title, self)
        form = QFormLayout(group)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.forms.append(form)
        return group, form

    def _align_label_columns(self) -> None:
        """One label width for every group, so their fields start in one column."""
        labels = [item.widget() for form in self.forms for row in range(form.rowCount())
                  if (item := form.itemAt(row, QFormLayout.ItemRole.LabelRole)) and item.widget()]
        width = max(label.sizeHint().width() for label in labels)
        for label in labels:
            label.setMinimumWidth(width)

    def _models_group(self) -> QGroupBox:
        group, form = self._group("Models")
        self.models_dir = QLineEdit(self.main_window.models_dir())
        self.models_dir.setReadOnly(True)
        self.models_dir.setPlaceholderText("(none)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse_models_dir)
        form.addRow("Folder:", _row(self.models_dir, browse, stretch_first=True))
        form.addRow("", _note("Where file parameters list checkpoints/, loras/, vae/, embeddings/…"))
        return group

    def _memory_group(self) -> QGroupBox:
        group, form = self._group("Model cache (memory)")
        default_gib = default_budget_bytes() / GIB
        self.cache_gb = _gib_box(0.5, 2 * default_gib, 0.5,  # up to all the RAM
                                 "Loaded models are kept for the next run within this much memory, least "
                                 "recently used out first. A smaller budget frees memory at the next load.")
        self.cache_default = QCheckBox(f"Use the default (half the RAM: {default_gib:.1f} GiB)")
        self.cache_default.toggled.connect(self._default_toggled)
        saved = self._saved(CACHE_SETTING, parse_budget_gb)
        self.cache_gb.setValue(default_gib if saved is None else saved)
        self.cache_default.setChecked(saved is None)
        self._default_toggled(saved is None)
        form.addRow("Budget:", _row(self.cache_gb, self.cache_default))
        self.cache_usage = QLabel(model_cache_usage(self.model_cache))
        form.addRow("In memory:", self.cache_usage)
        self._add_environment_note(form, BUDGET_ENV, saved)
        return group

    def _copies_group(self) -> QGroupBox:
        group, form = self._group("Converted copies (disk)")
        form.addRow(_note("fp16 checkpoints loaded in fp32 are converted once and kept here: "
                          "later loads are near-instant."))
        self.copies_gb = _gib_box(0, 4096, 1, "Least recently used copies are removed past this. Off: no "
                                  "copies are written or used (those on disk stay until removed).")
        self.copies_gb.setSpecialValueText("Off")
        saved = self._saved(CONVERTED_SETTING, parse_converted_gb)
        self.copies_gb.setValue(converted_copies.DEFAULT_BUDGET_GB if saved is None else saved)
        form.addRow("Budget:", _row(self.copies_gb))
        folder = str(converted_copies.copies_root())
        self.copies_folder = QLineEdit(folder)  # selectable, and a long path scrolls instead of widening
        self.copies_folder.setObjectName("path_text")
        self.copies_folder.setReadOnly(True)
        self.copies_folder.setToolTip(folder)
        open_folder = QPushButton("Open")
        open_folder.setToolTip("Show the folder in the file manager")
        open_folder.setEnabled(os.path.isdir(folder))
        open_folder.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(folder)))
        form.addRow("Folder:", _row(self.copies_folder, open_folder, stretch_first=True))
        self.copies_usage = QLabel()
        self.remove_copies = QPushButton("Remove all copies…")
        self.remove_copies.clicked.connect(self.remove_all_copies)
        form.addRow("On disk:", _row(self.copies_usage, self.remove_copies, stretch_first=True))
        self._add_environment_note(form, converted_copies.BUDGET_ENV, saved)
        self.refresh_copies()
        return group

    @staticmethod
    def _add_environment_note(form: QFormLayout, name: str, saved: float | None) -> None:
        """The shell's budget, when it is not the saved one: it is in effect, and wins at startup."""
        value = os.environ.get(name, "").strip()
        try:
            if not value or float(value) == saved:
                return
        except ValueError:
            pass
        form.addRow("", _note(f"{name}={value} from the environment is in effect; "
                              "at each start it wins over this setting."))

    # ----- the saved values ------------------------------------------------------------
    def _saved(self, key: str, parse) -> float | None:
        """None: the default (an empty or unreadable setting)."""
        value = self.settings.value(key, "")
        try:
            return None if value in (None, "") else parse(str(value))
        except ValueError:
            return None

    # ----- actions ---------------------------------------------------------------------
    def _default_toggled(self, use_default: bool) -> None:
        self.cache_gb.setEnabled(not use_default)
        if use_default:
            self.cache_gb.setValue(default_budget_bytes() / GIB)

    def browse_models_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Models folder (with checkpoints/, loras/, vae/, embeddings/...)", self.models_dir.text())
        if folder:
            self.models_dir.setText(folder)

    def refresh_copies(self) -> None:
        count, text = converted_copies_usage()
        self.copies_usage.setText(text)
        self.remove_copies.setEnabled(count > 0)

    def remove_all_copies(self) -> None:
        _, text = converted_copies_usage()
        answer = QMessageBox.question(
            self, "Remove converted copies",
            f"Remove all converted copies ({text})?\nThe next fp32 load of each checkpoint converts it again (slower, once).",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            return
        freed = converted_copies.remove_all()
        self.refresh_copies()
        if freed:
            self.copies_usage.setText(f"{self.copies_usage.text()} ({size_text(freed)} freed)")

    def restore_defaults(self) -> None:
        self.cache_default.setChecked(True)
        self.copies_gb.setValue(converted_copies.DEFAULT_BUDGET_GB)

    def accept(self) -> None:
        self.apply()
        super().accept()

    def apply(self) -> None:
        """Save the settings and put them in effect for this process and the ones it starts."""
        folder = self.models_dir.text()
        if folder != self.main_window.models_dir():
            self.main_window.set_models_dir(folder)
        if self.cache_default.isChecked():
            self.settings.setValue(CACHE_SETTING, "")
            os.environ.pop(BUDGET_ENV, None)
        else:
            self.settings.setValue(CACHE_SETTING, f"{self.cache_gb.value():g}")
            set_budget_gb(self.cache_gb.value())
        copies_gb = self.copies_gb.value()
        if copies_gb == converted_copies.DEFAULT_BUDGET_GB:  # saved as "the default", so a new default applies
            self.settings.setValue(CONVERTED_SETTING, "")
            os.environ.pop(converted_copies.BUDGET_ENV, None)
        else:
            self.settings.setValue(CONVERTED_SETTING, f"{copies_gb:g}")
            os.environ[converted_copies.BUDGET_ENV] = repr(copies_gb)
        self.settings.sync()

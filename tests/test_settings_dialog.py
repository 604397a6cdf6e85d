# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""File → Settings: the models folder, the model cache budget and the converted copies' budget are
shown, saved in QSettings and applied to the running editor; the copies can be removed; the
saved budgets are applied again at startup, unless the environment sets them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest_editor import registry, window  # noqa: F401
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLabel, QMessageBox

from nodeeditor.cli import CACHE_SETTING, CONVERTED_SETTING
from nodeeditor.settings_dialog import SettingsDialog, model_cache_usage
from nodes import converted_copies
from nodes.model_cache import BUDGET_ENV, GIB, ModelCache, budget_bytes, default_budget_bytes

OK, CANCEL = QDialogButtonBox.StandardButton.Ok, QDialogButtonBox.StandardButton.Cancel


@pytest.fixture(autouse=True)
def budgets_of_this_test(monkeypatch, tmp_path):
    """Each test starts with no budget in the environment and an empty copies folder of its own;
    monkeypatch puts back whatever the dialog sets."""
    for name in (BUDGET_ENV, converted_copies.BUDGET_ENV):
        monkeypatch.setenv(name, "")  # recorded first: a delenv of an unset name would not be undone
        monkeypatch.delenv(name)
    monkeypatch.setenv(converted_copies.DIR_ENV, str(tmp_path / "copies"))


def fake_copy(root, name: str, size: int) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / converted_copies.MARKER).write_text(json.dumps({"source": f"/models/{name}.safetensors",
                                                              "bytes": size}))
    (folder / "model_index.json").write_text("{}")


def test_shows_the_saved_values(window):
    dialog = SettingsDialog(window)
    assert dialog.windowTitle() == "Settings" and dialog.isModal()
    assert dialog.cache_default.isChecked() and not dialog.cache_gb.isEnabled()
    assert dialog.cache_gb.value() == pytest.approx(default_budget_bytes() / GIB, abs=0.05)
    assert dialog.copies_gb.value() == converted_copies.DEFAULT_BUDGET_GB
    assert dialog.models_dir.text() == ""
    assert dialog.copies_folder.text() == str(converted_copies.copies_root())
    assert dialog.cache_usage.text() == "No models loaded" or "model" in dialog.cache_usage.text()

    window.settings.setValue(CACHE_SETTING, "6")
    window.settings.setValue(CONVERTED_SETTING, "0")
    window.set_models_dir("/data/models")
    dialog = SettingsDialog(window)
    assert not dialog.cache_default.isChecked() and dialog.cache_gb.isEnabled()
    assert dialog.cache_gb.value() == 6
    assert dialog.copies_gb.value() == 0 and dialog.copies_gb.text() == "Off"
    assert dialog.models_dir.text() == "/data/models"


def test_ok_saves_and_applies_both_budgets(window, tmp_path):
    dialog = SettingsDialog(window)
    dialog.cache_default.setChecked(False)
    dialog.cache_gb.setValue(3.5)
    dialog.copies_gb.setValue(10)
    dialog.models_dir.setText(str(tmp_path))  # what Browse… leaves there
    dialog.buttons.button(OK).click()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert window.settings.value(CACHE_SETTING) == "3.5"
    assert window.settings.value(CONVERTED_SETTING) == "10"
    assert budget_bytes() == int(3.5 * GIB)
    assert converted_copies.budget_bytes() == 10 * GIB
    assert window.models_dir() == str(tmp_path)

    dialog = SettingsDialog(window)  # back to the default: the setting empties, the process follows
    assert dialog.cache_gb.value() == 3.5 and dialog.copies_gb.value() == 10
    dialog.cache_default.setChecked(True)
    dialog.copies_gb.setValue(0)
    dialog.buttons.button(OK).click()
    assert window.settings.value(CACHE_SETTING) == ""
    assert budget_bytes() == default_budget_bytes()
    assert converted_copies.budget_bytes() == 0

    dialog = SettingsDialog(window)  # the copies' default is saved as the default, not as its number
    dialog.copies_gb.setValue(converted_copies.DEFAULT_BUDGET_GB)
    dialog.buttons.button(OK).click()
    assert window.settings.value(CONVERTED_SETTING) == ""
    assert converted_copies.BUDGET_ENV not in os.environ
    assert converted_copies.budget_bytes() == converted_copies.DEFAULT_BUDGET_GB * GIB


def test_cancel_changes_nothing(window, tmp_path, monkeypatch):
    window.settings.setValue(CACHE_SETTING, "6")
    monkeypatch.setenv(BUDGET_ENV, "6")
    dialog = SettingsDialog(window)
    dialog.cache_default.setChecked(True)
    dialog.copies_gb.setValue(100)
    dialog.models_dir.setText(str(tmp_path))
    dialog.buttons.button(CANCEL).click()
    assert dialog.result() == dialog.DialogCode.Rejected
    assert window.settings.value(CACHE_SETTING) == "6"
    assert window.settings.value(CONVERTED_SETTING) is None
    assert budget_bytes() == 6 * GIB
    assert converted_copies.budget_bytes() == converted_copies.DEFAULT_BUDGET_GB * GIB
    assert window.models_dir() == ""


def test_restore_defaults(window):
    window.settings.setValue(CACHE_SETTING, "6")
    window.settings.setValue(CONVERTED_SETTING, "0")
    dialog = SettingsDialog(window)
    dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).click()
    assert dialog.cache_default.isChecked() and dialog.copies_gb.value() == converted_copies.DEFAULT_BUDGET_GB
    assert window.settings.value(CACHE_SETTING) == "6"  # only OK saves


def test_an_environment_budget_is_named(window, monkeypatch):
    monkeypatch.setenv(converted_copies.BUDGET_ENV, "7")
    dialog = SettingsDialog(window)
    notes = [label.text() for label in dialog.findChildren(QLabel)]
    assert any(note.startswith(f"{converted_copies.BUDGET_ENV}=7 ") for note in notes)
    assert not any(note.startswith(f"{BUDGET_ENV}=") for note in notes)


def test_remove_all_copies(window, tmp_path, monkeypatch):
    root = tmp_path / "copies"
    fake_copy(root, "a", 3 * GIB)
    fake_copy(root, "b", GIB // 2)
    dialog = SettingsDialog(window)
    assert dialog.copies_usage.text() == "2 copies, 3.5 GiB"
    assert dialog.remove_copies.isEnabled()

    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: asked.append(args[2]) or QMessageBox.StandardButton.Cancel)
    dialog.remove_copies.click()
    assert "2 copies, 3.5 GiB" in asked[0] and len(converted_copies.copies()) == 2

    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.Yes)
    dialog.remove_copies.click()
    assert converted_copies.copies() == [] and not (root / "a").exists() and not (root / "b").exists()
    assert dialog.copies_usage.text() == "No copies (3.5 GiB freed)"
    assert not dialog.remove_copies.isEnabled()


def test_what_the_model_cache_holds(tmp_path):
    sizes = {"a": 4 * GIB, "b": int(3.9 * GIB)}
    cache = ModelCache(lambda path, *rest: SimpleNamespace(nbytes=sizes[path.name]), budget=lambda: 100 * GIB)
    assert model_cache_usage(cache) == "No models loaded"
    for name in sizes:
        (tmp_path / name).write_bytes(b"x")
        cache.get(str(tmp_path / name), "cpu")
    assert model_cache_usage(cache) == "2 models, 7.9 GiB"


def test_startup_applies_the_saved_copies_budget_unless_the_environment_sets_one(monkeypatch):
    from PySide6.QtCore import QSettings, QStandardPaths

    from nodeeditor.cli import apply_cache_setting
    from nodeeditor.document import APP_NAME

    QStandardPaths.setTestModeEnabled(True)
    settings = QSettings(APP_NAME, APP_NAME)
    try:
        settings.setValue(CONVERTED_SETTING, "12")
        settings.setValue(CACHE_SETTING, "")
        settings.sync()
        apply_cache_setting()
        assert converted_copies.budget_bytes() == 12 * GIB
        assert budget_bytes() == default_budget_bytes()  # empty: the default, as before
        monkeypatch.setenv(converted_copies.BUDGET_ENV, "3")  # the user's shell wins
        apply_cache_setting()
        assert converted_copies.budget_bytes() == 3 * GIB
        monkeypatch.delenv(converted_copies.BUDGET_ENV)
        settings.setValue(CONVERTED_SETTING, "lots")
        settings.sync()
        apply_cache_setting()  # unreadable: reported, and the default stays
        assert converted_copies.budget_bytes() == converted_copies.DEFAULT_BUDGET_GB * GIB
    finally:
        settings.remove(CONVERTED_SETTING)
        settings.remove(CACHE_SETTING)
        settings.sync()


def test_file_menu_opens_the_dialog_with_ctrl_comma(window):
    action = window.actions_by_name["settings"]
    assert action.shortcut().toString() == "Ctrl+,"
    file_menu = window.menuBar().actions()[0].menu()
    names = [a.objectName() for a in file_menu.actions()]
    assert names[names.index("models_dir") + 1] == "settings"
    opened = []

    def close_it():
        dialog = QApplication.activeModalWidget()
        opened.append(dialog)
        dialog.reject()

    QTimer.singleShot(0, close_it)
    action.trigger()
    assert isinstance(opened[0], SettingsDialog)


def test_the_dialog_does_not_import_torch():
    code = ("import sys; from PySide6.QtWidgets import QApplication; app = QApplication(['x']);"
            "import nodes.models, nodeeditor.settings_dialog; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.stdout.strip() == "False"

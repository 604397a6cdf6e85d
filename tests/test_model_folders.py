# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""Model folders: files named instead of pathed, found in a models folder in ComfyUI's layout or
through ComfyUI's extra_model_paths.yaml, from the graph API, the CLI and the editor."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest_editor import registry, window  # noqa: F401
from test_lora import lora_graph, run_with

import nodes  # noqa: F401
from graphs import Executor, workflow
from nodes.model_folders import find, folders
from nodes.model_sources import ModelLoadError
from nodes.tiny_loras import make_random_lora

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lora_file(tiny_sd, tmp_path_factory):
    return make_random_lora(tiny_sd, tmp_path_factory.mktemp("made") / "style.safetensors", 7)


def test_a_lora_by_name_in_the_models_folder_is_the_lora_by_path(tiny_sd, lora_file, tmp_path):
    (tmp_path / "loras" / "people").mkdir(parents=True)
    shutil.copy(lora_file, tmp_path / "loras" / "people" / "style.safetensors")
    by_path = run_with(Executor(), *lora_graph(tiny_sd, [(lora_file, 0.8, 0.8)], 2))
    for name in ("people/style.safetensors", "people/style"):
        graph, ids = lora_graph(tiny_sd, [(name, 0.8, 0.8)], 2)
        assert np.array_equal(run_with(Executor(settings={"models_dir": str(tmp_path)}), graph, ids), by_path)


def test_comfyui_extra_model_paths_are_read(tmp_path):
    (tmp_path / "comfy" / "models" / "loras").mkdir(parents=True)
    (tmp_path / "more_loras").mkdir()
    (tmp_path / "more_loras" / "b.safetensors").write_bytes(b"x")
    yaml_file = tmp_path / "extra_model_paths.yaml"
    yaml_file.write_text("comfyui:\n  base_path: comfy/\n  loras: |\n    models/loras\n    ../more_loras\n"
                         "  checkpoints: models/checkpoints\nbroken: 3\n")
    settings = {"extra_model_paths": str(yaml_file)}
    assert folders("loras", settings) == [tmp_path / "comfy" / "models" / "loras", tmp_path / "comfy" / "../more_loras"]
    assert find("loras", "b", settings).name == "b.safetensors"
    with pytest.raises(ModelLoadError) as refused:
        find("loras", "nothing", settings)
    assert "LoRA not found: nothing; also looked in" in str(refused.value)
    assert str(tmp_path / "comfy" / "models" / "loras") in str(refused.value)
    yaml_file.write_text("- not\n- sections\n")
    with pytest.raises(ModelLoadError, match="expected sections of model folders"):
        find("loras", "b", settings)


def test_the_cli_finds_names_in_models_dir(tiny_sd, lora_file, tmp_path):
    (tmp_path / "models" / "loras").mkdir(parents=True)
    shutil.copy(lora_file, tmp_path / "models" / "loras" / "style.safetensors")
    graph, ids = lora_graph(tiny_sd, [("style", 0.8, 0.8)], 2)
    save = graph.add_node(graph.create_node("image.save", params={"prefix": "named"})).id
    graph.connect(ids["decode"], "image", save, "image")
    workflow.save(graph, tmp_path / "wf.json")
    command = [sys.executable, "-m", "nodeeditor.cli", "run", str(tmp_path / "wf.json"), "--quiet",
               "--output-dir", str(tmp_path / "out")]
    missing = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert missing.returncode != 0 and "LoRA not found:" in missing.stderr and "no models folder is set" in missing.stderr
    found = subprocess.run(command + ["--models-dir", str(tmp_path / "models")], capture_output=True, text=True,
                           cwd=ROOT, timeout=600)
    assert found.returncode == 0, found.stderr
    assert list((tmp_path / "out").glob("named_*.png"))


def test_the_editor_keeps_the_models_folder_and_runs_with_it(window, tmp_path):
    assert window._run_settings()["models_dir"] == ""
    window.set_models_dir(str(tmp_path))
    assert window._run_settings()["models_dir"] == str(tmp_path)
    assert window.settings.value("models/dir") == str(tmp_path)
    menu_texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "&Models folder…" in menu_texts


def test_file_params_offer_the_files_in_the_models_folder_and_take_names(window, tiny_sd, lora_file, tmp_path,
                                                                         qtbot):
    from nodeeditor.widgets import make_editor
    from nodes.lora import LOAD_LORA

    (tmp_path / "loras" / "people").mkdir(parents=True)
    shutil.copy(lora_file, tmp_path / "loras" / "people" / "style.safetensors")
    shutil.copy(lora_file, tmp_path / "loras" / "other.safetensors")
    window.set_models_dir(str(tmp_path))
    changes = []
    editor = make_editor(LOAD_LORA.param("file"), "", changes.append)
    qtbot.addWidget(editor.widget)
    from PySide6.QtWidgets import QLineEdit, QToolButton

    line = editor.widget.findChild(QLineEdit)
    show = next(b for b in editor.widget.findChildren(QToolButton) if b.text() == "▾")
    show.click()
    picker = show.picker
    assert [picker.list.item(i).text() for i in range(picker.list.count())] == [
        "other.safetensors", "people/style.safetensors"]
    qtbot.keyClicks(picker.filter, "STY")  # any part of the name, any case
    visible = [picker.list.item(i).text() for i in range(picker.list.count()) if not picker.list.item(i).isHidden()]
    assert visible == ["people/style.safetensors"]
    qtbot.keyClick(picker.filter, __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.Key.Key_Return)
    assert line.text() == "people/style.safetensors" and changes[-1] == "people/style.safetensors"
    line.setText("/some/other/path.safetensors")  # a path is still taken as written
    assert changes[-1] == "/some/other/path.safetensors"
    # Load model and Load VAE take names from checkpoints/ and vae/ too
    (tmp_path / "checkpoints").mkdir()
    shutil.copytree(tiny_sd, tmp_path / "checkpoints" / "tiny")
    graph, ids = lora_graph(tiny_sd, [("other", 0.5, 0.5)], 3)
    graph.set_param(ids["load"], "source", "tiny")
    assert run_with(Executor(settings={"models_dir": str(tmp_path)}), graph, ids).shape == (32, 32, 3)

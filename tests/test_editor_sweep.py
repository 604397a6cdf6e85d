# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""Run → Sweep… in the editor: a 2×2 sweep of the bundled workflow through the dialog (the CLI's
own code on the run thread), its grid in the image viewer, the axes saved with the workflow;
the Ray choice when Ray is missing; bad axes refused with the CLI's message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest_editor import registry, window  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = ROOT / "resources" / "models" / "latentgraph-shapes"
TXT2IMG = ROOT / "resources" / "workflows" / "txt2img.json"


@pytest.fixture
def sd_window(qtbot, tmp_path):
    if not BUNDLED_MODEL.exists() or not TXT2IMG.exists():
        pytest.skip("bundled model or default workflow missing")
    from PySide6.QtCore import QSettings, QStandardPaths

    import nodes  # noqa: F401  (registers the diffusion node types)
    from nodeeditor.app import MainWindow

    QStandardPaths.setTestModeEnabled(True)
    win = MainWindow(output_dir=str(tmp_path / "out"),
                     settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                     recovery_path=str(tmp_path / "recovery" / "recovery.json"))
    win.document.show_error = lambda title, text: pytest.fail(text)
    win.document.ask_unsaved = lambda: "discard"
    qtbot.addWidget(win)
    win.show()
    assert win.document.open_path(str(TXT2IMG))
    yield win
    win.worker.shutdown()


def test_a_2x2_sweep_from_the_dialog_writes_cells_and_shows_the_grid(sd_window, qtbot, tmp_path):
    from nodeeditor.sweep_dialog import open_sweep_dialog

    win = sd_window
    win.controller.set_param(win.graph.find_node("Scheduler").id, "steps", 2)
    win.actions_by_name["sweep"].trigger()
    dialog = win.sweep_dialog
    assert dialog.isVisible() and dialog.rows[0][0].findText("Noise") > 0
    dialog.set_axis(0, "Noise", "seed", "1:2")
    dialog.set_axis(1, "UNet denoise", "cfg", "3,5")
    assert dialog.specs() == ["Noise.seed=1:2", "UNet denoise.cfg=3,5"]
    assert dialog.count_label.text() == "2 × 2 = 4 cells"
    out = tmp_path / "sweep"
    dialog.folder_edit.setText(str(out))
    dialog.grid_box.setChecked(True)
    assert dialog.start()
    assert dialog.running and win.runs.queue.held
    win.controller.set_param(win.graph.find_node("Noise").id, "seed", 77)  # editing goes on
    qtbot.waitUntil(lambda: not dialog.running, timeout=300_000)
    assert dialog.error is None, dialog.error
    report = dialog.report
    assert (report.done, report.failed, report.grids) == (4, 0, ["grid_z000.png"])
    assert dialog.progress.value() == dialog.progress.maximum() == 4
    assert "4 cells: 4 done" in dialog.status_label.text()
    manifest = json.loads((out / "sweep.json").read_text())
    assert [c["values"] for c in manifest["cells"]] == [
        {"Noise.seed": 1, "UNet denoise.cfg": 3.0}, {"Noise.seed": 2, "UNet denoise.cfg": 3.0},
        {"Noise.seed": 1, "UNet denoise.cfg": 5.0}, {"Noise.seed": 2, "UNet denoise.cfg": 5.0}]
    assert all((out / c["files"][0]).is_file() for c in manifest["cells"])
    assert report.node_runs["Load model"] == 1 and report.node_runs["UNet denoise"] == 4
    # the grid is what the image viewer shows
    viewer = win.image_viewer
    assert viewer.image is dialog.grid_image and "Sweep grid grid_z000.png" in viewer.caption.text()
    assert viewer.image.width > 2 * 160 and viewer.workflow_text is None
    assert not win.runs.queue.held
    # saved with the workflow: the axes reopen with the file
    assert win.graph.metadata["sweep"] == {"axes": ["Noise.seed=1:2", "UNet denoise.cfg=3,5"], "grid": True}
    assert win.document.is_modified()
    saved = tmp_path / "with_sweep.json"
    assert win.document.save_to(str(saved))
    assert win.document.open_path(str(saved), ask=False)
    dialog.rows[0][2].setText("")
    again = open_sweep_dialog(win)
    assert again is dialog and dialog.specs() == ["Noise.seed=1:2", "UNet denoise.cfg=3,5"]
    # the same sweep into the same folder resumes: nothing is computed again
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=120_000)
    assert (dialog.report.skipped, dialog.report.done) == (4, 0)


def test_bad_axes_and_a_missing_ray_are_explained(window, qtbot, registry, monkeypatch, tmp_path):
    from graphs import Graph
    from nodeeditor import sweep_dialog

    g = Graph(registry)
    g.add_node(g.create_node("test.text", (0, 0), title="Prompt"))
    window.document.load_graph(g)
    monkeypatch.setattr(sweep_dialog, "ray_available", lambda: False)
    dialog = sweep_dialog.open_sweep_dialog(window)
    item = dialog.where.model().item(1)
    assert not item.isEnabled() and "pip install latentgraph[ray]" in dialog.ray_note.text()
    assert not dialog.start_button.isEnabled() and "at least one axis" in dialog.count_label.text()
    dialog.set_axis(0, "Prompt", "scale", "1:x")
    assert "range bounds must be numbers" in dialog.count_label.text()
    dialog.folder_edit.setText(str(tmp_path / "s"))
    assert not dialog.start() and "range bounds must be numbers" in dialog.status_label.text()
    dialog.set_axis(0, "Prompt", "seed", "1:3")
    dialog.set_axis(1, "Prompt", "mode", "a,b")
    assert dialog.count_label.text() == "3 × 2 = 6 cells" and dialog.start_button.isEnabled()
    assert "sweep" not in window.graph.metadata  # stored when a sweep starts, not while typing

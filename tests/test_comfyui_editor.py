"""A ComfyUI workflow dropped on (or opened in) the editor: the graph appears, untitled, and the
import report shows in a dialog that does not block and in the run log."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest_editor import open_window

import nodes  # noqa: F401
from graphs import default_registry

DATA = Path(__file__).parent / "data" / "comfyui"


def test_opening_a_comfyui_workflow_shows_the_graph_and_its_report(qtbot, tmp_path):
    win = open_window(qtbot, tmp_path, default_registry())
    try:
        copy = tmp_path / "lotus.json"
        shutil.copy(DATA / "image_lotus_depth_v1_1.json", copy)
        win.view.file_dropped.emit(str(copy))
        assert any(n.type_id == "comfyui.UNETLoader" for n in win.graph.nodes.values())
        assert len(win.scene.node_items) == len(win.graph.nodes)
        assert win.document.path is None and win.document.display_name == "lotus"  # Save asks where
        dialog = win.import_dialog
        assert dialog is not None and dialog.isVisible() and not dialog.isModal()
        assert "UNETLoader (#74:10)" in dialog.detailedText()
        log = win.run_log.toPlainText()
        assert "Imported a ComfyUI workflow" in log and "Placeholders" in log
        win.import_dialog.close()
        assert win.document.open_path(str(DATA / "default.json"), ask=False)
        assert win.import_dialog.detailedText() == ""  # everything mapped: nothing to detail
        assert {f.title for f in win.graph.frames.values()} >= {"KSampler", "Step 2 - Prompt"}
    finally:
        win.worker.shutdown()

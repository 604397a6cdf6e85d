"""No node hidden under another: the bundled workflows, run in the editor (previews and final
images grow the nodes that show them), keep every node's rect clear of every other's."""

from __future__ import annotations

import itertools

import pytest
from conftest_editor import open_window, wait_run

import nodes  # noqa: F401
from graphs import default_registry
from nodeeditor.document import templates_dir


@pytest.mark.parametrize("name", ["txt2img", "img2img", "hires_fix", "inpaint"])
def test_after_a_run_no_two_nodes_overlap(qtbot, tmp_path, name):
    win = open_window(qtbot, tmp_path, default_registry())
    try:
        assert win.document.open_path(str(templates_dir() / f"{name}.json"), ask=False)
        win.runs.run()
        wait_run(qtbot, win, timeout=300_000)
        assert win.runs.last_result.status == "finished", win.runs.last_result.error
        qtbot.wait(50)
        rects = {item.node.title: item.sceneBoundingRect().adjusted(1, 1, -1, -1)
                 for item in win.scene.node_items.values()}
        overlapping = [(a, b) for a, b in itertools.combinations(rects, 2) if rects[a].intersects(rects[b])]
        assert not overlapping
    finally:
        win.worker.shutdown()


def test_the_controlnet_workflow_opens_clear_and_its_missing_files_fail_on_their_nodes(qtbot, tmp_path):
    """Its checkpoint and ControlNet are the user's: a run fails on the node to set, the app goes on."""
    win = open_window(qtbot, tmp_path, default_registry())
    try:
        assert win.document.open_path(str(templates_dir() / "controlnet_canny.json"), ask=False)
        rects = {item.node.title: item.sceneBoundingRect().adjusted(1, 1, -1, -1)
                 for item in win.scene.node_items.values()}
        assert not [(a, b) for a, b in itertools.combinations(rects, 2) if rects[a].intersects(rects[b])]
        win.runs.run()
        wait_run(qtbot, win, timeout=120_000)
        error = win.runs.last_result.error
        assert win.runs.last_result.status == "failed"
        assert win.graph.nodes[error.node_id].title.endswith("(set source)") and "not found" in error.message
    finally:
        win.worker.shutdown()

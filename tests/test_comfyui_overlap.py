"""An imported ComfyUI workflow, run in the editor: the sampler's three nodes fit where the one
KSampler stood, and after the run (previews and images grow nodes) no node covers another."""

from __future__ import annotations

import itertools
from pathlib import Path

from conftest_editor import open_window, wait_run

import nodes  # noqa: F401
from graphs import default_registry

DATA = Path(__file__).parent / "data" / "comfyui"


def test_the_imported_sd15_template_runs_without_nodes_covering_each_other(qtbot, tmp_path):
    win = open_window(qtbot, tmp_path, default_registry())
    try:
        assert win.document.open_path(str(DATA / "default.json"), ask=False)
        by_type = {n.type_id: n for n in win.graph.nodes.values()}
        win.controller.set_param(by_type["sd.load_model"].id, "source", "bundled")
        win.controller.set_param(by_type["sd.empty_latent"].id, "width", 64)
        win.controller.set_param(by_type["sd.empty_latent"].id, "height", 64)
        win.controller.set_param(by_type["sd.scheduler"].id, "steps", 3)
        win.runs.run()
        wait_run(qtbot, win, timeout=300_000)
        assert win.runs.last_result.status == "finished", win.runs.last_result.error
        qtbot.wait(50)
        rects = {item.node.title + item.node.id: item.sceneBoundingRect().adjusted(1, 1, -1, -1)
                 for item in win.scene.node_items.values()}
        overlapping = [(a, b) for a, b in itertools.combinations(rects, 2) if rects[a].intersects(rects[b])]
        assert not overlapping
    finally:
        win.worker.shutdown()

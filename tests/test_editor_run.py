# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""Runs from the editor: images on nodes, cancel mid-run, failures, after-run param updates."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest_editor import image_workflow, registry, wait_run, window  # noqa: F401
from PySide6.QtWidgets import QApplication

from graphs import Graph
from graphs.events import RunStarted

ROOT = Path(__file__).resolve().parent.parent


def test_run_shows_image_on_node(window, qtbot, registry):
    window.document.load_graph(image_workflow(registry))
    assert window.runs.run()
    wait_run(qtbot, window)
    assert window.runs.last_result.status == "finished"
    show = window.scene.node_items["sh0w"]
    assert show.image is not None and (show.image.width(), show.image.height()) == (64, 48)
    assert show.image.pixelColor(5, 5).red() == 255
    assert window.scene.node_items["1mage"].image is not None  # live previews
    assert show.badge[0] == "done"
    assert window.image_viewer.image is not None
    assert not window.progress.isVisible()
    window.scene.select_nodes(["1mage"])  # the viewer follows the selection
    assert window.image_viewer.image is window.runs.node_images["1mage"]
    # an unchanged graph is served from the cache
    assert window.runs.run()
    wait_run(qtbot, window)
    assert set(window.runs.last_result.cached) >= {"c0nst", "1mage"}
    assert window.scene.node_items["c0nst"].badge[0] == "cached"


def test_image_viewer_save_as_embeds_workflow(window, qtbot, registry, tmp_path):
    from graphs import pngmeta, workflow
    window.document.load_graph(image_workflow(registry))
    window.runs.run()
    wait_run(qtbot, window)
    path = window.image_viewer.save_as(str(tmp_path / "img.png"))
    text = pngmeta.workflow_text(path)
    assert workflow.loads(text, registry).nodes.keys() == window.graph.nodes.keys()


def test_cancel_mid_run_then_run_again(window, qtbot, registry):
    g = Graph(registry)
    s = g.add_node(g.create_node("test.sleep", (0, 0), params={"seconds": 30.0}))
    im = g.add_node(g.create_node("test.image", (300, 0)))
    show = g.add_node(g.create_node("test.show", (600, 0)))
    g.connect(s.id, "out", im.id, "value")
    g.connect(im.id, "image", show.id, "image")
    window.document.load_graph(g)
    window.runs.run()
    qtbot.waitUntil(lambda: window.progress.value() > 0, timeout=5000)
    assert window.actions_by_name["cancel"].isEnabled()
    window.actions_by_name["cancel"].trigger()
    wait_run(qtbot, window, timeout=5000)
    assert window.runs.last_result.status == "cancelled"
    assert window.scene.node_items[s.id].badge[0] == "cancelled"
    assert not window.actions_by_name["cancel"].isEnabled()
    window.controller.set_param(s.id, "seconds", 0.05)
    window.runs.run()
    wait_run(qtbot, window)
    assert window.runs.last_result.status == "finished"
    assert window.scene.node_items[show.id].image is not None


def test_failing_node_shows_failed_and_next_run_works(window, qtbot, registry):
    g = Graph(registry)
    c = g.add_node(g.create_node("test.const", (0, 0)))
    f = g.add_node(g.create_node("test.fail", (300, 0), params={"message": "it broke"}))
    im = g.add_node(g.create_node("test.image", (600, 0)))
    show = g.add_node(g.create_node("test.show", (900, 0)))
    g.connect(c.id, "out", f.id, "x")
    g.connect(f.id, "out", im.id, "value")
    g.connect(im.id, "image", show.id, "image")
    window.document.load_graph(g)
    window.runs.run()
    wait_run(qtbot, window)
    assert window.runs.last_result.status == "failed"
    item = window.scene.node_items[f.id]
    assert item.badge[0] == "failed" and "it broke" in item.toolTip()
    assert "it broke" in window.statusBar().currentMessage()
    assert "FAILED" in window.run_log.toPlainText()
    # fix the graph (bypass the failing node) and run again: it works
    window.controller.toggle_flag("bypass", [f.id])
    window.runs.run()
    wait_run(qtbot, window)
    assert window.runs.last_result.status == "finished"
    assert window.scene.node_items[show.id].image is not None
    assert window.scene.node_items[f.id].badge == ("skipped", "bypassed")


def test_after_run_param_updates_not_undoable(window, qtbot, registry):
    g = Graph(registry)
    t = g.add_node(g.create_node("test.text", (0, 0), params={"seed": 5, "control": "increment"}))
    window.document.load_graph(g)
    window.view.materialize_visible(None)
    window.runs.run(targets=[t.id])
    wait_run(qtbot, window)
    assert window.graph.nodes[t.id].params["seed"] == 6
    assert window.scene.node_items[t.id].editors["seed"].widget.line.text() == "6"
    assert window.undo_stack.count() == 0


def test_edit_during_run_uses_snapshot(window, qtbot, registry):
    g = Graph(registry)
    s = g.add_node(g.create_node("test.sleep", (0, 0), params={"seconds": 0.4}))
    window.document.load_graph(g)
    window.runs.run(targets=[s.id])
    window.controller.set_param(s.id, "seconds", 9.0)
    wait_run(qtbot, window)
    assert window.runs.last_result.status == "finished"
    assert window.runs.last_result.seconds < 5  # ran the 0.4 s snapshot, not the edited 9 s
    assert window.graph.nodes[s.id].params["seconds"] == 9.0


BUNDLED_MODEL = ROOT / "resources" / "models" / "latentgraph-shapes"
DEFAULT_WORKFLOW = ROOT / "resources" / "workflows" / "txt2img.json"


@pytest.mark.skipif(not BUNDLED_MODEL.exists() or not DEFAULT_WORKFLOW.exists(),
                    reason="bundled model or default workflow missing")
def test_default_workflow_runs_and_shows_image(qtbot, tmp_path):
    """The real diffusion nodes in the editor on the bundled model: previews on UNet denoise,
    images on the sinks, the trace in the latent inspector, a saved PNG carrying the workflow."""
    from PySide6.QtCore import QSettings, QStandardPaths

    import nodes  # noqa: F401  (registers the diffusion node types)
    from graphs import pngmeta
    from nodeeditor.app import MainWindow
    QStandardPaths.setTestModeEnabled(True)
    out = tmp_path / "out"
    win = MainWindow(output_dir=str(out),
                     settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                     recovery_path=str(tmp_path / "rec.json"))
    win.document.show_error = lambda title, text: pytest.fail(text)
    win.document.ask_unsaved = lambda: "discard"
    qtbot.addWidget(win)
    win.show()
    assert win.document.open_path(str(DEFAULT_WORKFLOW))
    by_type = {n.type_id: n.id for n in win.graph.nodes.values()}
    win.controller.set_param(by_type["sd.scheduler"], "steps", 4)
    win.runs.run()
    wait_run(qtbot, win, timeout=180_000)
    assert win.runs.last_result.status == "finished", win.runs.last_result.error
    for type_id in ("image.save", "image.preview", "sd.unet_denoise"):
        assert win.scene.node_items[by_type[type_id]].image is not None, type_id
    assert win.inspector.current_trace() is not None
    assert win.inspector.step.maximum() == 4 and win.inspector.last_image is not None
    saved = list(out.rglob("*.png"))
    assert len(saved) == 1 and pngmeta.workflow_text(saved[0])
    QApplication.processEvents()
    win.worker.shutdown()


def _fake_trace():
    torch = pytest.importorskip("torch")
    values = pytest.importorskip("nodes.values")
    pytest.importorskip("nodes.inspect")
    gen = torch.Generator().manual_seed(0)
    latents = [torch.randn(1, 4, 8, 8, generator=gen) for _ in range(4)]
    x0 = [torch.randn(1, 4, 8, 8, generator=gen) for _ in range(3)]
    return values.LatentTrace(latents=latents, x0=x0)


def test_latent_inspector_scrubs_a_trace(window, qtbot, registry):
    from graphs import NodeType, Socket
    trace = _fake_trace()
    registry.sockets.register(__import__("graphs").SocketType("LATENT_TRACE", "#ce93d8"))
    registry.nodes.register(NodeType("test.trace", "Trace", "test", lambda ctx: {"trace": trace},
                                     outputs=(Socket("trace", "LATENT_TRACE"),), output_node=True))
    g = Graph(registry)
    node = g.add_node(g.create_node("test.trace", (0, 0)))
    window.document.load_graph(g)
    window.runs.run()
    wait_run(qtbot, window)
    inspector = window.inspector
    assert inspector.current_trace() is trace
    assert inspector.step.maximum() == 3 and inspector.step.value() == 3
    assert inspector.last_image is not None
    first = inspector.last_image.tobytes()
    inspector.step.setValue(0)
    assert inspector.last_image.tobytes() != first
    inspector.mode.setCurrentText("channel")
    inspector.channel.setValue(2)
    assert inspector.last_image is not None and inspector.channel.isEnabled()
    inspector.which.setCurrentText("x0")
    inspector.step.setValue(2)
    assert inspector.last_image is not None
    assert node.id in inspector.traces
    # The decoded view runs off the GUI thread; this fake trace has no VAE to decode with.
    inspector.mode.setCurrentText("decoded")
    assert inspector.picture.text() == "decoding…"
    qtbot.waitUntil(lambda: "needs a VAE" in inspector.picture.text(), timeout=10_000)
    assert inspector.last_image is None


def test_a_node_status_shows_in_the_status_bar_and_the_run_log(window, qtbot, registry):
    g = Graph(registry)
    s = g.add_node(g.create_node("test.sleep", (0, 0), params={"seconds": 0.5}))
    window.document.load_graph(g)
    window.runs.run(targets=[s.id])
    qtbot.waitUntil(lambda: "sleeping for 0.5 s" in window.statusBar().currentMessage(), timeout=5000)
    assert window.statusBar().currentMessage().startswith(g.nodes[s.id].title)
    wait_run(qtbot, window)
    assert f"{g.nodes[s.id].title}: sleeping for 0.5 s" in window.run_log.toPlainText()


def test_prepare_runs_on_the_run_thread_before_a_run_queued_behind_it(window, qtbot, registry):
    """The app imports torch and diffusers this way while the window opens; a Run pressed
    meanwhile waits for it instead of importing on the GUI thread or racing it."""
    import time

    from PySide6.QtCore import QThread

    prepared = []

    def work():
        time.sleep(0.3)
        prepared.append(QThread.currentThread() is window.worker.thread)

    seen_at_start = []
    window.worker.events.connect(
        lambda event: seen_at_start.append(list(prepared)) if isinstance(event, RunStarted) else None)
    window.worker.prepare(work)
    g = Graph(registry)
    s = g.add_node(g.create_node("test.sleep", (0, 0), params={"seconds": 0.1}))
    window.document.load_graph(g)
    window.runs.run(targets=[s.id])
    assert not prepared  # the GUI thread did not wait for it
    wait_run(qtbot, window)
    assert window.runs.last_result.status == "finished"
    assert seen_at_start == [[True]]

# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""The run history: runs recorded off the GUI thread with thumbnails, changed params and files;
kept across a restart; a past run's graph opened in a new window; re-run; bounded on disk."""

from __future__ import annotations

import json
import threading

from conftest_editor import open_window, registry, wait_run, window  # noqa: F401
from PIL import Image
from test_editor_queue import seeded_window, wait_queue, written

from nodeeditor.history import FILE, HistoryStore, param_changes, workflow_params


def _runs(qtbot, window, count):
    window.history.flush()
    qtbot.waitUntil(lambda: len(window.history.runs) == count, timeout=5000)
    return window.history.runs


def test_history_survives_a_restart_and_reopens_a_past_runs_graph(qtbot, tmp_path, registry):
    first = open_window(qtbot, tmp_path, registry)
    node = seeded_window(first, registry, seed=11, seconds=0.05)
    first.runs.run()
    wait_run(qtbot, first)
    first.controller.set_param(node, "seed", 12)
    first.runs.run()
    wait_run(qtbot, first)
    runs = _runs(qtbot, first, 2)
    assert runs[1].changes == ["Seeded.seed 11 → 12"] and runs[1].status == "finished"
    assert runs[0].thumbs and (first.history.store.folder / "thumbs" / runs[0].thumbs[0]).is_file()
    assert [json.loads(open(r.files[0]).read())["seed"] for r in runs] == [11, 12]
    panel = first.history_panel
    assert panel.list.count() == 2 and "Seeded.seed 11 → 12" in panel.list.item(0).text()
    assert not panel.list.item(0).icon().isNull()
    folder = first.history.store.folder
    assert folder == tmp_path / "recovery" / "history"  # beside the recovery file: tmp_path in tests
    first.close()
    first.worker.shutdown()

    second = open_window(qtbot, tmp_path, registry)  # the app started again on the same data folder
    try:
        qtbot.waitUntil(lambda: second.history.ready and second.history_panel.list.count() == 2, timeout=5000)
        assert [r.id for r in second.history.runs] == [r.id for r in runs]
        assert not second.history_panel.list.item(1).icon().isNull()
        before = second.graph.copy()
        second.history_panel.list.setCurrentRow(1)  # the oldest run (newest first)
        child = second.history_panel.open_run(second.history_panel.selected())
        assert child is not second and child.isVisible()
        assert child.graph.nodes[node].params["seed"] == 11  # that run's params
        assert child.windowTitle().startswith("Run of ")
        assert second.graph.nodes.keys() == before.nodes.keys()  # the current graph stays as it is
        assert child.history is second.history  # one history, shared
        from nodeeditor import history_panel

        opened = set(history_panel._windows)
        second.history_panel.list.itemDoubleClicked.emit(second.history_panel.list.item(0))  # double-click
        (by_click,) = set(history_panel._windows) - opened
        assert by_click.graph.nodes[node].params["seed"] == 12
        by_click.close()
        # the child runs too, and its run lands in the shared history
        child.runs.run()
        wait_run(qtbot, child)
        assert len(_runs(qtbot, second, 3)) == 3
        child.close()
        qtbot.waitUntil(lambda: second.history_panel.list.count() == 3, timeout=5000)
    finally:
        second.worker.shutdown()


def test_queued_and_batch_runs_are_each_recorded_with_what_changed(window, qtbot, registry):
    node = seeded_window(window, registry, seed=1, control="increment", seconds=0.3)
    window.runs.run()
    window.controller.set_param(node, "control", "fixed")
    window.controller.set_param(node, "seed", 20)
    window.runs.run(count=2)  # queued: a batch of two, its seed control "fixed"
    wait_queue(qtbot, window)
    runs = _runs(qtbot, window, 3)
    assert [r.label for r in runs] == ["Run", "Run 1/2", "Run 2/2"]
    assert [r.changes for r in runs] == [[], ['Seeded.control "increment" → "fixed"', "Seeded.seed 1 → 20"], []]
    assert [json.loads(open(r.files[0]).read())["seed"] for r in runs] == [1, 20, 20]
    assert window.graph.nodes[node].params["seed"] == 20  # the first run's increment: the user had changed it


def test_rerun_queues_the_past_graph_as_it_was(window, qtbot, registry):
    node = seeded_window(window, registry, seed=3, seconds=0.05)
    window.runs.run()
    wait_run(qtbot, window)
    past = _runs(qtbot, window, 1)[0]
    window.controller.set_param(node, "seed", 40)
    window.history_panel.list.setCurrentRow(0)
    window.history_panel.rerun_button.click()
    wait_queue(qtbot, window)
    assert [r["seed"] for r in written(window)] == [3, 3]
    assert window.graph.nodes[node].params["seed"] == 40
    rerun = _runs(qtbot, window, 2)[1]
    assert rerun.label.startswith("Re-run of ") and rerun.changes == []
    assert past.label == "Run"


def test_a_failed_run_is_recorded_with_its_error(window, qtbot, registry):
    from graphs import Graph

    g = Graph(registry)
    fail = g.add_node(g.create_node("test.fail", (0, 0), params={"message": "it broke"}))
    window.document.load_graph(g)
    window.runs.run([fail.id])
    wait_run(qtbot, window)
    run = _runs(qtbot, window, 1)[0]
    assert run.status == "failed" and "it broke" in run.error
    assert "FAILED" in window.history_panel.list.item(0).text()


def test_runs_are_stored_on_the_history_thread(window, qtbot, registry, monkeypatch):
    seen = []
    original = HistoryStore.add_record

    def spy(self, record):
        seen.append(threading.current_thread() is threading.main_thread())
        return original(self, record)

    monkeypatch.setattr(HistoryStore, "add_record", spy)
    seeded_window(window, registry, seconds=0.01)
    window.runs.run()
    wait_run(qtbot, window)
    _runs(qtbot, window, 1)
    assert seen == [False]


def _picture(value):
    return Image.new("RGB", (300, 200), (value, 0, 0))


def test_store_is_bounded_and_skips_damaged_lines(tmp_path):
    store = HistoryStore(tmp_path, max_runs=3)
    workflow = {"nodes": [{"id": "n1", "type": "t", "title": "Noise", "params": {"seed": 0}}]}
    for seed in range(5):
        workflow["nodes"][0]["params"]["seed"] = seed
        store.add("finished", 0.1, "Run", json.loads(json.dumps(workflow)), {}, [f"/out/{seed}.png"],
                  [_picture(seed), _picture(seed), _picture(seed + 100)])
    assert [r.workflow["nodes"][0]["params"]["seed"] for r in store.runs] == [2, 3, 4]
    assert store.runs[2].changes == ["Noise.seed 3 → 4"]
    assert len(store.runs[0].thumbs) == 2  # the duplicate picture is stored once
    assert sorted(p.name for p in (tmp_path / "thumbs").iterdir()) == sorted(
        t for r in store.runs for t in r.thumbs)  # the dropped runs' thumbnails are gone
    with Image.open(tmp_path / "thumbs" / store.runs[0].thumbs[0]) as thumb:
        assert max(thumb.size) <= 160
    # a line cut short by a crash is skipped, and the next run still gets a line of its own
    with open(tmp_path / FILE, "ab") as handle:
        handle.write(b'{"id": "cut", "workf')
    again = HistoryStore(tmp_path, max_runs=3)
    assert len(again.load()) == 3
    again.add("finished", 0.1, "Run", workflow, {}, [], [])
    third = HistoryStore(tmp_path, max_runs=3)
    assert [r.id for r in third.load()] == [r.id for r in again.runs]
    # a byte budget drops the oldest runs too
    small = HistoryStore(tmp_path / "small", max_bytes=1500)
    for seed in range(4):
        small.add("finished", 0.1, "Run", workflow, {}, [], [_picture(seed * 60)])
    assert 2 <= len(small.runs) < 4 and sum(r.size for r in small.runs) <= 1500
    assert len(HistoryStore(tmp_path / "small", max_bytes=1500).load()) == len(small.runs)


def test_param_changes_text():
    old = workflow_params({"nodes": [
        {"id": "a", "type": "sd.noise", "title": "Noise", "params": {"seed": 42}},
        {"id": "b", "type": "sd.text_encode", "title": "Prompt", "params": {"text": "a cat"}},
        {"id": "c", "type": "image.preview", "title": "Preview image", "params": {}}]})
    new = workflow_params({"nodes": [
        {"id": "a", "type": "sd.noise", "title": "Noise", "params": {"seed": 43}},
        {"id": "b", "type": "sd.text_encode", "title": "Prompt", "params": {"text": "a dog"}},
        {"id": "d", "type": "sd.upscale", "title": "Upscale latent", "params": {"scale": 2.0}}]})
    assert param_changes(old, new) == ['Noise.seed 42 → 43', 'Prompt.text "a cat" → "a dog"',
                                       "+ Upscale latent", "− Preview image"]
    assert param_changes(old, new, limit=2) == ["Noise.seed 42 → 43", "… 3 more"]

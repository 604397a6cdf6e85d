# ruff: noqa: F811  (fixtures imported from conftest_editor are parameters here)
"""The run queue in the editor: runs queued while one runs use their own snapshots, cancel and
reorder from the Queue dock, batch count with the seed control applied between runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest_editor import _seed_after, registry, window  # noqa: F401
from PIL import Image

from graphs import Graph, NodeType, Param


def _seeded(ctx, seed=0, control="fixed", seconds=0.2):
    """Sleeps (cancellable), then writes a file holding its seed and the run's workflow."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ctx.check_cancel()
        time.sleep(0.01)
    folder = Path(ctx.settings["output_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"seed_{seed}_{time.monotonic_ns()}.json"
    path.write_text(json.dumps({"seed": seed, "workflow": ctx.workflow()}), encoding="utf-8")
    ctx.show_images([Image.new("RGB", (40, 30), (seed % 256, 90, 0))])
    return {"paths": [str(path)]}


SEEDED = NodeType("test.seeded", "Seeded", "test/io", _seeded, output_node=True, always_run=True,
                  params=(Param("seed", "seed", 0, min=0),
                          Param("control", "choice", "fixed", choices=("fixed", "increment", "randomize"),
                                linkable=False, drives="seed"),
                          Param("seconds", "float", 0.2, min=0.0, max=60.0, linkable=False)),
                  after_run=_seed_after)


def seeded_window(window, registry, **params):
    """The window on a graph of one Seeded node; returns its id."""
    if "test.seeded" not in registry.nodes:
        registry.nodes.register(SEEDED)
    g = Graph(registry)
    node = g.add_node(g.create_node("test.seeded", (0, 0), node_id="s33d", params=params))
    window.document.load_graph(g)
    return node.id


def written(window) -> list[dict]:
    """The files the runs wrote, oldest first."""
    files = sorted(Path(window.output_dir).glob("seed_*.json"), key=lambda p: int(p.stem.split("_")[2]))
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]


def wait_queue(qtbot, window, timeout=30_000):
    qtbot.waitUntil(lambda: not window.runs.queue.busy() and not window.worker.busy, timeout=timeout)


def wait_running(qtbot, window, node):
    qtbot.waitUntil(lambda: (window.scene.node_items[node].badge or ("",))[0] == "running", timeout=5000)


def embedded_seed(record: dict) -> int:
    return next(n["params"]["seed"] for n in record["workflow"]["nodes"] if n["type"] == "test.seeded")


def test_runs_queued_while_editing_use_their_snapshots_cancel_and_reorder(window, qtbot, registry):
    node = seeded_window(window, registry, seed=1, seconds=0.8)
    queue, panel = window.runs.queue, window.queue_panel
    window.actions_by_name["run"].trigger()  # Ctrl+Enter: runs at once
    assert window.worker.busy and queue.current is not None
    first = queue.current
    entries = []
    for seed in (2, 3, 4):  # edit, then Ctrl+Enter again while the first runs: queued
        window.controller.set_param(node, "seed", seed)
        window.controller.set_param(node, "seconds", 0.1)
        window.actions_by_name["run"].trigger()
        entries.append(queue.pending[-1])
    assert [e.graph.nodes[node].params["seed"] for e in entries] == [2, 3, 4]
    assert queue.current is first and "3 queued" in window.queue_label.text()
    assert entries[0].changes == ["Seeded.seconds 0.8 → 0.1", "Seeded.seed 1 → 2"]
    assert panel.list.count() == 4 and "running" in panel.list.item(0).text()
    # cancel the second run (pending: removed), then move the last one up
    panel.select(entries[0].id)
    assert panel.buttons["cancel"].isEnabled() and not panel.buttons["up"].isEnabled()
    panel.buttons["cancel"].click()
    assert [e.id for e in queue.pending] == [entries[1].id, entries[2].id]
    panel.select(entries[2].id)
    panel.buttons["up"].click()
    assert [e.id for e in queue.pending] == [entries[2].id, entries[1].id]
    window.controller.set_param(node, "seed", 99)  # editing goes on; no queued run sees it
    wait_queue(qtbot, window)
    records = written(window)
    assert [r["seed"] for r in records] == [1, 4, 3]  # the cancelled run never ran; the moved one ran first
    assert [embedded_seed(r) for r in records] == [1, 4, 3]  # each file holds its own run's graph
    assert window.graph.nodes[node].params["seed"] == 99
    assert [e.state for e in (first, entries[0], entries[1], entries[2])] == [
        "done", "cancelled", "done", "done"]
    # the image on the node (and what Save as… would embed) is the last run's, seed 3
    assert window.runs.node_images[node].getpixel((0, 0))[0] == 3
    assert json.loads(window.runs.workflow_of(node))["nodes"][0]["params"]["seed"] == 3


def test_batch_count_applies_the_seed_control_between_runs(window, qtbot, registry):
    node = seeded_window(window, registry, seed=7, control="increment", seconds=0.05)
    window.batch_spin.setValue(3)
    assert window.runs.batch_count == 3
    window.actions_by_name["run"].trigger()
    entry = window.runs.queue.current
    wait_queue(qtbot, window)
    assert [r["seed"] for r in written(window)] == [7, 8, 9]
    assert [embedded_seed(r) for r in written(window)] == [7, 8, 9]
    assert window.graph.nodes[node].params["seed"] == 10  # as after three single runs
    assert window.undo_stack.count() == 0
    assert (entry.state, entry.done, entry.count) == ("done", 3, 3)
    assert "(3/3)" in window.queue_panel.list.item(0).text()


def test_cancel_the_running_run_then_the_next_starts_and_cancel_all(window, qtbot, registry):
    node = seeded_window(window, registry, seed=1, seconds=30.0)
    queue, panel = window.runs.queue, window.queue_panel
    window.runs.run()
    running = queue.current
    window.controller.set_param(node, "seconds", 0.05)
    window.controller.set_param(node, "seed", 2)
    window.runs.run()
    wait_running(qtbot, window, node)
    panel.select(running.id)
    panel.buttons["cancel"].click()  # the running one: cancelled through the worker
    qtbot.waitUntil(lambda: running.state == "cancelled", timeout=5000)
    wait_queue(qtbot, window)
    assert [r["seed"] for r in written(window)] == [2]
    assert window.runs.last_result.status == "finished"
    # cancel all: the running run stops and nothing queued starts
    window.controller.set_param(node, "seconds", 30.0)
    window.runs.run()
    window.runs.run()
    window.runs.run()
    assert len(queue.pending) == 2
    wait_running(qtbot, window, node)
    panel.buttons["cancel_all"].click()
    wait_queue(qtbot, window, timeout=5000)
    assert [e.state for e in list(queue.finished)[-3:]] == ["cancelled"] * 3
    assert len(written(window)) == 1
    panel.buttons["clear"].click()
    assert panel.list.count() == 0


def test_a_param_edited_during_the_run_keeps_the_users_value(window, qtbot, registry):
    node = seeded_window(window, registry, seed=5, control="increment", seconds=0.5)
    window.runs.run()
    window.controller.set_param(node, "seed", 100)
    wait_queue(qtbot, window)
    assert [r["seed"] for r in written(window)] == [5]
    assert window.graph.nodes[node].params["seed"] == 100  # not 6: the user changed it meanwhile


def test_escape_cancels_only_the_running_run(window, qtbot, registry):
    node = seeded_window(window, registry, seed=1, seconds=30.0)
    window.runs.run()
    window.controller.set_param(node, "seconds", 0.05)
    window.runs.run()
    wait_running(qtbot, window, node)
    window.actions_by_name["cancel"].trigger()
    wait_queue(qtbot, window)
    assert [r["seed"] for r in written(window)] == [1]
    assert [e.state for e in window.runs.queue.finished] == ["cancelled", "done"]


@pytest.mark.parametrize("count", [1, 2])
def test_queue_helpers_without_a_window(count, registry):
    from nodeeditor.run_queue import QueuedRun, RunQueue, apply_updates

    registry.nodes.register(SEEDED)
    g = Graph(registry)
    g.add_node(g.create_node("test.seeded", (0, 0), node_id="s33d", params={"seed": 1}))
    nxt = apply_updates(g, {"s33d": {"seed": 2}, "gone": {"seed": 3}})
    assert nxt.nodes["s33d"].params["seed"] == 2 and g.nodes["s33d"].params["seed"] == 1
    queue = RunQueue()
    started = []
    queue.starter = lambda entry: started.append(entry.id) or True
    entries = [queue.submit(QueuedRun(g.copy(), count=count)) for _ in range(3)]
    assert started == [entries[0].id] and not queue.move(entries[0].id, 1)  # only pending ones move
    assert queue.move(entries[2].id, -5) and [e.id for e in queue.pending] == [entries[2].id, entries[1].id]
    queue.hold(True)

    class Result:
        status, seconds, param_updates, error = "finished", 0.1, {}, None

    for _ in range(count):
        queue.run_ended(entries[0], Result())
    assert entries[0].state == "done" and queue.current is None  # held: nothing started
    queue.hold(False)
    assert started[-1] == entries[2].id

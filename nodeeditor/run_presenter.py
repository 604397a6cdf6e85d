"""Runs, as the user sees them: queueing runs and starting them on the worker one at a time
(``run_queue.py``), cancelling, and turning the executor's events into node badges, thumbnails,
the run log, the progress bar and the status bar. One handler per event class (``graphs.events``).

A run is a snapshot taken when Run is pressed; while one runs, Run queues the next. Each image
shown keeps the workflow of the run that made it (``workflow_of``), and each run that ends is
announced with what the history keeps of it (``run_ended``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QProgressBar

from graphs import Graph, workflow
from graphs import events as ev

from .history import RunRecord
from .panels import ImageViewer, LatentInspector, RunLog, pil_to_qimage
from .run_queue import QueuedRun, RunQueue
from .worker import RunWorker


class RunPresenter(QObject):
    running_changed = Signal(bool)
    run_ended = Signal(object)  # RunRecord of a run that finished or failed

    def __init__(self, graph: Graph, scene, worker: RunWorker, log: RunLog, image_viewer: ImageViewer,
                 inspector: LatentInspector, progress: QProgressBar, status: Callable[..., None],
                 settings: Callable[[], dict[str, Any]], parent: QObject | None = None,
                 queue: RunQueue | None = None) -> None:
        """``settings()`` gives the run's settings (output_dir, base_dir) when it is queued."""
        super().__init__(parent)
        self.graph, self.scene, self.worker, self.log = graph, scene, worker, log
        self.image_viewer, self.inspector, self.progress = image_viewer, inspector, progress
        self.status, self.settings = status, settings
        self.queue = queue or RunQueue(self)
        self.queue.starter, self.queue.canceller = self._start, self._cancel_running
        self.batch_count = 1  # runs per Run (the seed controls applied between them)
        self.running = False
        self.last_result = None
        self.run_graph: Graph | None = None  # the snapshot running (or run last)
        self.run_workflow_text: str | None = None  # ... as workflow text
        self.node_images: dict[str, Any] = {}  # node id -> last PIL image shown on it
        self.node_workflows: dict[str, str] = {}  # node id -> workflow text of the run that made it
        self._entry: QueuedRun | None = None
        self._run_images: list[tuple[str, list[Any]]] = []  # (node id, images) this run showed
        self.on_event = ev.Dispatcher({
            ev.RunStarted: self._run_started, ev.NodeStarted: self._node_started,
            ev.NodeCached: lambda e: self._badge(e.node_id, "cached", "cached"),
            ev.Progress: self._progress, ev.Preview: lambda e: self._node_image(e.node_id, e.image),
            ev.NodeImages: self._images, ev.NodeStatus: self._node_status,
            ev.NodeWarning: lambda e: self.log.log(f"warning: {self.title(e.node_id)}: {e.message}"),
            ev.NodeFinished: self._node_finished, ev.NodeFailed: self._node_failed,
            ev.NodeSkipped: lambda e: self._badge(e.node_id, "skipped", "skipped", e.reason),
            ev.RunCancelled: self._run_cancelled, ev.RunFinished: self._run_finished,
        })
        worker.events.connect(self.on_event)
        worker.run_done.connect(self._run_done)

    # ----- queueing, starting and stopping ------------------------------------------------
    def run(self, targets: list[str] | None = None, count: int | None = None) -> bool:
        """Queue a snapshot of the graph as it is now, ``count`` times (default: the batch
        count); it starts at once when nothing runs, else after the runs queued before it."""
        label = "Run" if not targets else "Run to " + ", ".join(self.title(t) for t in targets[:2]) + (
            "…" if len(targets) > 2 else "")
        self.enqueue(self.graph.copy(), targets, self.settings(), label, count or self.batch_count)
        return True

    def enqueue(self, graph: Graph, targets: list[str] | None = None, settings: dict[str, Any] | None = None,
                label: str = "Run", count: int = 1) -> QueuedRun:
        """Queue ``graph`` (a snapshot nobody else changes) with its run settings."""
        waiting = self.queue.busy() or self.queue.held
        entry = self.queue.submit(QueuedRun(graph, list(targets) if targets else None,
                                            dict(settings if settings is not None else self.settings()),
                                            label, max(1, int(count))))
        if waiting:
            self.status(f"Queued run #{entry.id}: {len(self.queue.pending)} waiting")
            self.log.log(f"run #{entry.id} queued ({len(self.queue.pending)} waiting)")
        return entry

    def run_selected(self) -> bool:
        ids = self.scene.selected_node_ids()
        if not ids:
            self.status("Select the node to run to")
            return False
        return self.run(targets=ids)

    def cancel(self) -> None:
        """Cancel the running run (and the rest of its batch); queued runs go on."""
        if self.queue.current is not None:
            self.queue.cancel(self.queue.current.id)
        elif self.worker.busy:
            self._cancel_running()

    def _cancel_running(self) -> None:
        if self.worker.busy:
            self.worker.cancel()
            self.status("Cancelling…")

    def _start(self, entry: QueuedRun) -> bool:
        """Send one run of ``entry`` to the worker (the queue calls this)."""
        self._entry, self.run_graph = entry, entry.graph
        self.run_workflow_text = workflow.dumps(entry.graph)
        self._run_images = []
        for item in self.scene.node_items.values():
            item.set_badge(None)
        self._set_running(True)
        batch = f" ({entry.done + 1}/{entry.count})" if entry.count > 1 else ""
        self.log.log(f"run #{entry.id}{batch} requested" + (f" to {len(entry.targets)} node(s)"
                                                            if entry.targets else ""))
        if not self.worker.request(entry.graph, entry.targets, entry.settings):
            self._entry = None
            self._set_running(False)
            return False
        return True

    def clear_images(self) -> None:
        self.node_images.clear()
        self.node_workflows.clear()

    def workflow_of(self, node_id: str) -> str | None:
        """The workflow of the run that made the image shown on ``node_id``."""
        return self.node_workflows.get(node_id, self.run_workflow_text)

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.progress.setVisible(running)
        self.progress.setValue(0)
        self.running_changed.emit(running)

    # ----- helpers --------------------------------------------------------------------
    def title(self, node_id: str) -> str:
        node = self.graph.nodes.get(node_id) or (self.run_graph.nodes.get(node_id) if self.run_graph else None)
        return node.title if node else node_id[:8]

    def _badge(self, node_id: str, state: str, text: str, tooltip: str = "") -> None:
        item = self.scene.node_items.get(node_id)
        if item is not None:
            item.set_badge(state, text, tooltip)

    def _node_image(self, node_id: str, image: Any) -> None:
        item = self.scene.node_items.get(node_id)
        self.node_images[node_id] = image
        self.node_workflows[node_id] = self.run_workflow_text
        if item is not None:
            item.set_image(pil_to_qimage(image))

    # ----- event handlers -------------------------------------------------------------
    def _run_started(self, e: ev.RunStarted) -> None:
        for node_id in e.node_ids:
            self._badge(node_id, "queued", "queued")
        self.log.log(f"run started: {len(e.node_ids)} node(s)")

    def _node_started(self, e: ev.NodeStarted) -> None:
        self._badge(e.node_id, "running", "running")
        self.status(f"Running {self.title(e.node_id)}…", 0)

    def _progress(self, e: ev.Progress) -> None:
        total = max(1, int(e.total))
        pct = int(100 * e.step / total)
        self._badge(e.node_id, "running", f"{pct}%")
        self.progress.setValue(pct)
        self.progress.setFormat(f"{self.title(e.node_id)} {e.step}/{total}")

    def _images(self, e: ev.NodeImages) -> None:
        if e.images:
            self._run_images.append((e.node_id, e.images))
            self._node_image(e.node_id, e.images[0])
            self.image_viewer.show_image(e.images[0], self.title(e.node_id), self.run_workflow_text)

    def _node_status(self, e: ev.NodeStatus) -> None:
        line = f"{self.title(e.node_id)}: {e.message}"
        self.status(line, 0)
        self.log.log(line)

    def _node_finished(self, e: ev.NodeFinished) -> None:
        node = (self.run_graph or self.graph).nodes.get(e.node_id)
        if node is not None and node.flags.get("bypass"):  # it forwarded its inputs, nothing more
            self._badge(e.node_id, "skipped", "bypassed")
            self.log.log(f"{self.title(e.node_id)} bypassed")
            return
        self._badge(e.node_id, "done", f"{e.seconds:.2f}s")
        self.log.log(f"{self.title(e.node_id)} done in {e.seconds:.2f}s")

    def _node_failed(self, e: ev.NodeFailed) -> None:
        message = f"{e.error_type}: {e.message}"
        self._badge(e.node_id, "failed", "failed", f"{e.title} failed\n{message}")
        self.log.log(f"FAILED {e.title}: {message}")
        self.status(f"{e.title} failed: {message}", 0)

    def _run_cancelled(self, e: ev.RunCancelled) -> None:
        if e.node_id:
            self._badge(e.node_id, "cancelled", "cancelled")
        self.log.log("run cancelled")

    def _run_finished(self, e: ev.RunFinished) -> None:
        result = e.result
        for item in self.scene.node_items.values():
            if item.badge and item.badge[0] in ("queued", "running"):
                item.set_badge(None)
        self.log.log(f"run {result.status} in {result.seconds:.2f}s "
                     f"({len(result.executed)} ran, {len(result.cached)} cached)")
        if result.status == "finished":
            self.status(f"Finished in {result.seconds:.2f}s", 8000)
        elif result.status == "cancelled":
            self.status("Run cancelled", 8000)
        elif result.error is not None and not result.error.node_id:
            self.status(f"Run failed: {result.error}", 0)

    def _run_done(self, result) -> None:
        entry, ran = self._entry, self.run_graph
        self._entry = None
        self._set_running(False)
        self._apply_updates(ran, result.param_updates)
        # Any node that outputs a "trace" (UNet denoise does) can be scrubbed in the inspector.
        traces = {n: out["trace"] for n, out in result.outputs.items()
                  if isinstance(out, dict) and out.get("trace") is not None}
        if traces:
            self.inspector.set_traces(traces, {n: self.title(n) for n in traces})
        elif result.status != "finished":  # never show an older run's trace as this one's
            self.inspector.set_traces({}, {})
            self.inspector.picture.setText(f"no trace: the last run {result.status}")
        self.last_result = result
        if entry is not None and result.status in ("finished", "failed"):
            wrote = {n: (result.outputs.get(n) or {}).get("paths") or [] for n in result.executed}
            files = [str(p) for n in result.executed for p in wrote[n]]
            # thumbnails: what was saved first, then the other images the run showed
            shown = sorted(self._run_images, key=lambda item: not wrote.get(item[0]))
            batch = f" {entry.done + 1}/{entry.count}" if entry.count > 1 else ""
            self.run_ended.emit(RunRecord(
                f"{entry.label}{batch}", self.run_workflow_text or "", dict(entry.settings), result.status,
                float(result.seconds), "" if result.error is None else str(result.error), files,
                [image for _node, images in shown for image in images], entry.targets))
        self._run_images = []
        if entry is not None:
            self.queue.run_ended(entry, result)  # may start the next run at once

    def _apply_updates(self, ran: Graph | None, updates: dict[str, dict[str, Any]]) -> None:
        """After-run param updates (seed controls) reach the live graph, not undoable by design;
        a param the user changed since the run was queued keeps the user's value."""
        for node_id, changes in (updates or {}).items():
            live = self.graph.nodes.get(node_id)
            snap = ran.nodes.get(node_id) if ran is not None else None
            if live is None:
                continue
            for name, value in changes.items():
                if snap is not None and live.params.get(name) != snap.params.get(name):
                    continue
                try:
                    self.graph.set_param(node_id, name, value)
                except (ValueError, KeyError):
                    pass

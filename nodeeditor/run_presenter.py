"""Runs, as the user sees them: starting and cancelling a run on the worker, and turning
the executor's events into node badges, thumbnails, the run log, the progress bar and
the status bar. One handler per event class (``graphs.events``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QProgressBar

from graphs import Graph, workflow
from graphs import events as ev

from .panels import ImageViewer, LatentInspector, RunLog, pil_to_qimage
from .worker import RunWorker


class RunPresenter(QObject):
    running_changed = Signal(bool)

    def __init__(self, graph: Graph, scene, worker: RunWorker, log: RunLog, image_viewer: ImageViewer,
                 inspector: LatentInspector, progress: QProgressBar, status: Callable[..., None],
                 settings: Callable[[], dict[str, Any]], parent: QObject | None = None) -> None:
        """``settings()`` gives the run's settings (output_dir, base_dir) when it starts."""
        super().__init__(parent)
        self.graph, self.scene, self.worker, self.log = graph, scene, worker, log
        self.image_viewer, self.inspector, self.progress = image_viewer, inspector, progress
        self.status, self.settings = status, settings
        self.running = False
        self.last_result = None
        self.run_workflow_text: str | None = None  # what the shown images were made by
        self.node_images: dict[str, Any] = {}  # node id -> last PIL image shown on it
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

    # ----- starting and stopping ------------------------------------------------------
    def run(self, targets: list[str] | None = None) -> bool:
        if self.worker.busy:
            self.status("A run is already in progress")
            return False
        snap = self.graph.copy()
        self.run_workflow_text = workflow.dumps(snap)
        for item in self.scene.node_items.values():
            item.set_badge(None)
        self._set_running(True)
        self.log.log("run requested" + (f" to {len(targets)} node(s)" if targets else ""))
        return self.worker.request(snap, targets, self.settings())

    def run_selected(self) -> bool:
        ids = self.scene.selected_node_ids()
        if not ids:
            self.status("Select the node to run to")
            return False
        return self.run(targets=ids)

    def cancel(self) -> None:
        if self.worker.busy:
            self.worker.cancel()
            self.status("Cancelling…")

    def clear_images(self) -> None:
        self.node_images.clear()

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.progress.setVisible(running)
        self.progress.setValue(0)
        self.running_changed.emit(running)

    # ----- helpers --------------------------------------------------------------------
    def title(self, node_id: str) -> str:
        node = self.graph.nodes.get(node_id)
        return node.title if node else node_id[:8]

    def _badge(self, node_id: str, state: str, text: str, tooltip: str = "") -> None:
        item = self.scene.node_items.get(node_id)
        if item is not None:
            item.set_badge(state, text, tooltip)

    def _node_image(self, node_id: str, image: Any) -> None:
        item = self.scene.node_items.get(node_id)
        self.node_images[node_id] = image
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
            self._node_image(e.node_id, e.images[0])
            self.image_viewer.show_image(e.images[0], self.title(e.node_id), self.run_workflow_text)

    def _node_status(self, e: ev.NodeStatus) -> None:
        line = f"{self.title(e.node_id)}: {e.message}"
        self.status(line, 0)
        self.log.log(line)

    def _node_finished(self, e: ev.NodeFinished) -> None:
        node = self.graph.nodes.get(e.node_id)
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
        self._set_running(False)
        for node_id, updates in (result.param_updates or {}).items():
            if node_id in self.graph.nodes:
                for name, value in updates.items():
                    try:
                        self.graph.set_param(node_id, name, value)  # not undoable, by design
                    except (ValueError, KeyError):
                        pass
        # Any node that outputs a "trace" (UNet denoise does) can be scrubbed in the inspector.
        traces = {n: out["trace"] for n, out in result.outputs.items()
                  if isinstance(out, dict) and out.get("trace") is not None}
        if traces:
            self.inspector.set_traces(traces, {n: self.title(n) for n in traces})
        elif result.status != "finished":  # never show an older run's trace as this one's
            self.inspector.set_traces({}, {})
            self.inspector.picture.setText(f"no trace: the last run {result.status}")
        self.last_result = result

"""Running a sweep's cells and writing their files, whatever backend runs them.

A backend (:class:`LocalBackend` here, ``nodes.ray_backend.RayBackend``) turns :class:`Job`s
(a cell's workflow as plain JSON data) into outcome dicts with the images as uint8 arrays;
:func:`run_sweep` is the submitting side: it skips cells the manifest says are done, writes
each finished cell's PNGs (workflow embedded) and the manifest, then the grids. Because only
this side writes, a local and a Ray sweep produce the same folder.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphs import events
from graphs import workflow as wf
from graphs.executor import Executor
from graphs.sweep import Cell, Manifest, Sweep, cell_hash

SAVE_TYPES = ("image.save",)
PREVIEW_TYPES = ("image.preview",)


@dataclass
class Job:
    """One cell to compute: what a worker needs, all plain data (it travels to Ray actors)."""

    index: int
    workflow: dict[str, Any]
    base_dir: str
    model_key: str  # the Load model nodes' params: cells with the same key share a model
    attempts: int = 0


def image_sources(graph) -> list[tuple[str, str, str]]:
    """(save node id, source node id, source output) per Save image node (Preview image
    nodes when there is none): what a cell must compute."""
    for types in (SAVE_TYPES, PREVIEW_TYPES):
        found = []
        for node in sorted(graph.nodes.values(), key=lambda n: n.id):
            if node.type_id in types and not node.flags.get("mute"):
                link = graph.inbound(node.id, "image")
                if link is not None:
                    found.append((node.id, link.src_node, link.src_output))
        if found:
            return found
    return []


def model_key(graph) -> str:
    return json.dumps(sorted([sorted(n.params.items()) for n in graph.nodes.values()
                              if n.type_id == "sd.load_model"]), default=repr)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class CellRunner:
    """Computes cells in this process with one Executor, so its cache serves what the cells
    share (a model loads once; a prompt is encoded once; upstream results are reused)."""

    def __init__(self, name: str | None = None) -> None:
        import nodes

        self.name = name or worker_name()
        self.executor = Executor(settings={"previews": False})
        self.executor.release_hooks.append(nodes.release_models)
        self.node_runs: Counter[str] = Counter()  # node type title -> runs (cache misses)
        self.loaded_models: set[str] = set()
        self._graph = None
        self.executor.events.on(events.NodeStarted, self._count)

    def _count(self, event: events.NodeStarted) -> None:
        if self._graph is not None:
            node = self._graph.nodes.get(event.node_id)
            if node is not None:
                self.node_runs[self._graph.node_type(node).title] += 1

    def cancel(self) -> None:
        self.executor.cancel()

    def run(self, job: Job, cancel_event: threading.Event | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        before = Counter(self.node_runs)
        outcome: dict[str, Any] = {"index": job.index, "worker": self.name, "images": []}
        try:
            graph = wf.from_dict(job.workflow)
        except wf.WorkflowError as exc:
            return {**outcome, "status": "failed", "error": f"bad cell workflow: {exc}"}
        sources = image_sources(graph)
        if not sources:
            return {**outcome, "status": "failed",
                    "error": "the workflow has no Save image (or Preview image) node with an image linked"}
        self._graph = graph
        try:
            result = self.executor.run(graph, targets=sorted({s[1] for s in sources}),
                                       settings={"base_dir": job.base_dir}, take_snapshot=False,
                                       cancel_event=cancel_event)
        finally:
            self._graph = None
        outcome["seconds"] = time.perf_counter() - started
        outcome["node_runs"] = dict(self.node_runs - before)
        if result.status == "cancelled":
            return {**outcome, "status": "cancelled"}
        if result.status == "failed":
            failure = result.error
            where = f"node {failure.title!r}" if failure.node_id else "graph"
            return {**outcome, "status": "failed",
                    "error": f"{where}: {failure.error_type}: {failure.message} (on worker {self.name})"}
        self.loaded_models.add(job.model_key)
        from .previews import images_to_pil

        for save_id, src, output in sources:
            value = result.outputs[src].get(output)
            for k, pil in enumerate(images_to_pil(value)):
                import numpy as np

                outcome["images"].append((save_id, k, np.asarray(pil)))
        return {**outcome, "status": "done"}


class LocalBackend:
    """Every cell in this process, one after another, with one CellRunner."""

    name = "local"

    def __init__(self) -> None:
        self.runner = CellRunner()
        self._cancel = threading.Event()

    @property
    def node_runs(self) -> Counter[str]:
        return self.runner.node_runs

    def cancel(self) -> None:
        self._cancel.set()
        self.runner.cancel()

    def run(self, jobs: list[Job], on_result: Callable[[Job, dict[str, Any]], None],
            on_started: Callable[[Job, str], None] | None = None) -> None:
        for job in jobs:
            if self._cancel.is_set():
                return
            if on_started:
                on_started(job, self.runner.name)
            outcome = self.runner.run(job, self._cancel)
            if outcome["status"] == "cancelled":
                return
            on_result(job, outcome)

    def close(self) -> None:
        pass


def _prefix(graph, save_id: str) -> str:
    from .images import _PATTERN_FIELD

    node = graph.nodes[save_id]
    prefix = node.params.get("prefix", "") if node.type_id in SAVE_TYPES else "preview"
    return _PATTERN_FIELD.sub("_", str(prefix)).strip() or "image"


def cell_file_names(graph, cell: Cell, images: list[tuple[str, int, Any]]) -> list[str]:
    """``PREFIX_c0003.png`` per cell (``PREFIX_c0003_1.png``... when it has several images):
    the same names whichever backend computed the cell."""
    if len(images) == 1:
        return [f"{_prefix(graph, images[0][0])}_c{cell.index:04d}.png"]
    return [f"{_prefix(graph, save_id)}_c{cell.index:04d}_{n}.png"
            for n, (save_id, _k, _a) in enumerate(images)]


@dataclass
class SweepReport:
    total: int
    skipped: int  # done before (resumed)
    done: int
    failed: int
    cancelled: bool
    seconds: float
    node_runs: dict[str, int]
    grids: list[str]
    written: list[str]  # every file written this time, in order (a cell's files once)


def run_sweep(graph, sweep: Sweep, folder: str | os.PathLike, backend, base_dir: str = "",
              workflow_name: str = "", on_progress: Callable[[str, dict[str, Any]], None] | None = None
              ) -> SweepReport:
    """Run the cells of ``sweep`` over ``graph`` not already done in ``folder``; write files,
    manifest and (with ``sweep.grid``) grids. ``on_progress(event, info)`` gets
    ``skipped``/``started``/``done``/``failed`` per cell."""
    from PIL import Image

    from .images import run_parameters, write_png
    from .infotext import infotext

    started = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(folder, sweep, workflow_name)
    manifest.load_previous()
    notify = on_progress or (lambda event, info: None)
    graphs: dict[int, Any] = {}
    jobs: list[Job] = []
    skipped = 0
    for cell in sweep.cells:
        cell_graph = sweep.cell_graph(graph, cell)
        digest = cell_hash(cell_graph)
        previous = manifest.finished_entry(cell, digest)
        if previous is not None:
            manifest.data["cells"].append(previous)
            skipped += 1
            notify("skipped", {"cell": cell, "files": previous["files"]})
            continue
        graphs[cell.index] = (cell_graph, digest)
        jobs.append(Job(cell.index, wf.to_dict(cell_graph), base_dir, model_key(cell_graph)))
    manifest.data["cells"].sort(key=lambda c: c["index"])
    manifest.save()
    counts = {"done": 0, "failed": 0}
    written: list[str] = []
    lock = threading.Lock()

    def on_result(job: Job, outcome: dict[str, Any]) -> None:
        cell = sweep.cells[job.index]
        cell_graph, digest = graphs[job.index]
        extra = {"worker": outcome.get("worker"), "seconds": round(outcome.get("seconds", 0.0), 3)}
        with lock:
            if manifest.entry(job.index) is not None:  # a duplicate result is never written
                return
            if outcome["status"] != "done":
                manifest.record(cell, digest, "failed", error=outcome.get("error"), **extra)
                manifest.save()
                counts["failed"] += 1
                notify("failed", {"cell": cell, "error": outcome.get("error"), **extra})
                return
            names = cell_file_names(cell_graph, cell, outcome["images"])
            workflow = wf.to_dict(cell_graph)
            for name, (save_id, k, array) in zip(names, outcome["images"]):
                parameters = {**run_parameters(cell_graph, save_id), "batch_index": k,
                              "width": array.shape[1], "height": array.shape[0],
                              "sweep": cell.values_dict()}
                write_png(folder / name, Image.fromarray(array, "RGB"), workflow, parameters,
                          infotext(cell_graph, save_id, parameters, {"base_dir": base_dir}))
                written.append(name)
            manifest.record(cell, digest, "done", names, **extra)
            manifest.save()
            counts["done"] += 1
            notify("done", {"cell": cell, "files": names, **extra})

    def on_started(job: Job, worker: str) -> None:
        notify("started", {"cell": sweep.cells[job.index], "worker": worker})

    backend.run(jobs, on_result, on_started)
    cancelled = len(manifest.data["cells"]) < len(sweep.cells)
    grids: list[str] = []
    if sweep.grid and not cancelled:
        from .grid import write_grids

        grids = write_grids(folder, sweep, manifest.data["cells"])
        manifest.data["grids"] = grids
        manifest.save()
    return SweepReport(len(sweep.cells), skipped, counts["done"], counts["failed"], cancelled,
                       time.perf_counter() - started, dict(backend.node_runs), grids, written)

"""``latentgraph sweep``: run a workflow over axes of param values, locally (one process,
one Executor) or on a Ray cluster, into a folder with a ``sweep.json`` manifest and grids.

The pieces the editor's sweep dialog shares: ``parse_sweep`` (axes -> Sweep, or BadInput),
``make_backend`` (local or Ray, or BadInput saying how to install Ray), ``SweepJob`` (one sweep
run on whichever thread calls ``run``), ``SweepPrinter`` (the per-cell progress lines) and
``summary``.

Exit codes as ``latentgraph run``: 0 every cell done, 1 a cell failed, 2 bad input (or Ray
missing), 130 cancelled (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from .cli_common import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_NODE_FAILED,
    EXIT_OK,
    BadInput,
    add_model_folder_args,
    apply_model_folder_args,
    apply_sets,
    load_workflow,
    print_error,
)


def add_parser(sub) -> argparse.ArgumentParser:
    sweep = sub.add_parser("sweep", help="run a workflow over a grid of param values")
    sweep.add_argument("workflow")
    sweep.add_argument("--axis", action="append", metavar="TITLE.PARAM=VALUES",
                       help="X, then Y, then Z: a list 3,5,7, a range 1:8 or 3.0:7.0:0.5, or @file "
                            "(one value a line); default: the sweep saved in the workflow")
    sweep.add_argument("--set", action="append", metavar="TITLE.PARAM=VALUE",
                       help="override a param for every cell")
    sweep.add_argument("--output-dir", required=True, help="the sweep's folder (rerun to resume)")
    sweep.add_argument("--grid", action="store_true", help="write an X/Y grid image per Z value")
    sweep.add_argument("--ray", metavar="auto|local|ADDRESS",
                       help="run the cells on Ray: local starts a cluster here; auto or ADDRESS joins one")
    sweep.add_argument("--cpus-per-worker", type=int, default=1,
                       help="on CPU-only clusters: cores per Ray worker (default 1)")
    sweep.add_argument("--save-sweep", action="store_true",
                       help="store the axes in the workflow file's metadata")
    sweep.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override every Load model")
    add_model_folder_args(sweep)
    sweep.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sweep.add_argument("--debug", action="store_true", help="show tracebacks")
    return sweep


def parse_sweep(graph, specs: list[str], base_dir: str | None, grid: bool):
    """The Sweep of ``specs`` over ``graph``; BadInput names the axis and the problem."""
    from graphs.sweep import Sweep, SweepError

    try:
        return Sweep.parse(graph, specs, base_dir, grid)
    except SweepError as exc:
        raise BadInput(str(exc)) from None


def _prepare(args: argparse.Namespace):
    from graphs import workflow
    from graphs.sweep import SweepError, store_in_metadata, sweep_from_metadata

    apply_model_folder_args(args)
    graph = load_workflow(args.workflow)
    base_dir = os.path.dirname(os.path.abspath(args.workflow))
    specs, grid = args.axis, args.grid
    try:
        if not specs:
            saved = sweep_from_metadata(graph)
            if saved is None:
                raise BadInput(f"{args.workflow}: no --axis given and no sweep saved in the workflow")
            specs, grid = saved[0], grid or saved[1]
    except SweepError as exc:
        raise BadInput(str(exc)) from None
    sweep = parse_sweep(graph, specs, base_dir, grid)
    if args.save_sweep:
        store_in_metadata(graph, sweep)
        workflow.save(graph, args.workflow)
    apply_sets(graph, args.set or [])
    if args.device:
        for node in graph.nodes.values():
            if node.type_id == "sd.load_model":
                graph.set_param(node.id, "device", args.device)
    return graph, sweep, base_dir


def make_backend(ray: str | None = None, cpus_per_worker: int = 1):
    """Where the cells run: this process (``ray`` None), or a Ray cluster (``auto``, ``local``
    or an address); BadInput when Ray is not installed (with how to install it) or the cluster
    cannot be joined. Joining can take seconds: call it off the GUI thread."""
    if not ray:
        from nodes.sweep_cells import LocalBackend

        return LocalBackend()
    from nodes.ray_backend import RayBackend, RayUnavailable

    try:
        return RayBackend(ray, cpus_per_worker=cpus_per_worker)
    except RayUnavailable as exc:
        raise BadInput(str(exc)) from None
    except ConnectionError as exc:
        raise BadInput(f"--ray {ray}: cannot join the cluster: {exc}") from None


@dataclass
class SweepJob:
    """One sweep: ``run()`` (on any thread) fills ``report`` or ``error`` and sets ``finished``;
    ``cancel()`` (any thread) stops it between cells or mid-cell; rerun to resume."""

    graph: Any
    sweep: Any
    folder: str
    backend: Any
    base_dir: str = ""
    workflow_name: str = ""
    on_progress: Any = None
    report: Any = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from nodes.sweep_cells import run_sweep

        try:
            self.report = run_sweep(self.graph, self.sweep, self.folder, self.backend, self.base_dir,
                                    self.workflow_name, self.on_progress)
        except Exception as exc:  # reported by the caller, never a hang
            self.error = exc
        finally:
            self.finished.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="latentgraph-sweep", daemon=True)
        thread.start()
        return thread

    def cancel(self) -> None:
        self.backend.cancel()


def summary(report) -> str:
    """``4 cells: 4 done, 0 already done, 0 failed in 3.10s (1.29 cells/s); node runs: ...``."""
    runs = ", ".join(f"{k} {v}" for k, v in sorted(report.node_runs.items())) or "none"
    rate = report.done / report.seconds if report.seconds else 0.0
    return (f"{report.total} cells: {report.done} done, {report.skipped} already done, "
            f"{report.failed} failed in {report.seconds:.2f}s ({rate:.2f} cells/s); node runs: {runs}")


class SweepPrinter:
    """``[3/16] cell 2 (Noise.seed = 3, UNet denoise.cfg = 5): done in 0.41s on host:123``."""

    def __init__(self, total: int, quiet: bool, stream=sys.stderr) -> None:
        self.total, self.quiet, self.stream, self.count = total, quiet, stream, 0

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "started":
            return
        self.count += 1
        if self.quiet:
            return
        cell = info["cell"]
        values = ", ".join(f"{k} = {v}" for k, v in cell.values)
        if event == "skipped":
            text = "already done"
        elif event == "done":
            text = f"done in {info.get('seconds', 0):.2f}s on {info.get('worker')}"
        else:
            text = f"failed: {info.get('error')}"
        self.stream.write(f"[{self.count}/{self.total}] cell {cell.index} ({values}): {text}\n")
        self.stream.flush()


def cmd_sweep(args: argparse.Namespace) -> int:
    try:
        graph, sweep, base_dir = _prepare(args)
        backend = make_backend(args.ray, args.cpus_per_worker)
    except BadInput as exc:
        print_error(str(exc))
        return EXIT_BAD_INPUT
    printer = SweepPrinter(len(sweep.cells), args.quiet)
    job = SweepJob(graph, sweep, args.output_dir, backend, base_dir, os.path.abspath(args.workflow), printer)
    # An Event, not Thread.join: a KeyboardInterrupt landing inside join() can leave the thread
    # marked as stopped while it still runs (CPython gh-90882), and the exit then aborts.
    job.start_thread()
    try:
        try:
            while not job.finished.wait(0.1):
                pass
        except KeyboardInterrupt:
            job.cancel()
            job.finished.wait()
    finally:
        backend.close()
    if job.error is not None:
        exc = job.error
        print_error(f"{args.output_dir}: {exc}")
        return EXIT_BAD_INPUT if isinstance(exc, (ValueError, OSError)) else EXIT_NODE_FAILED
    report = job.report
    if report is None or report.cancelled:
        done = report.skipped + report.done + report.failed if report else 0
        print(f"cancelled: {done} of {len(sweep.cells)} cells finished; rerun the same command "
              "to resume", file=sys.stderr)
        return EXIT_CANCELLED
    print(os.path.join(args.output_dir, "sweep.json"))
    for name in report.grids:
        print(os.path.join(args.output_dir, name))
    if not args.quiet:
        print(summary(report), file=sys.stderr)
    return EXIT_NODE_FAILED if report.failed else EXIT_OK

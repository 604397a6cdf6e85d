"""``latentgraph sweep``: run a workflow over axes of param values, locally (one process,
one Executor) or on a Ray cluster, into a folder with a ``sweep.json`` manifest and grids.

Exit codes as ``latentgraph run``: 0 every cell done, 1 a cell failed, 2 bad input (or Ray
missing), 130 cancelled (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
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


def _prepare(args: argparse.Namespace):
    from graphs import workflow
    from graphs.sweep import Sweep, SweepError, store_in_metadata, sweep_from_metadata

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
        sweep = Sweep.parse(graph, specs, base_dir, grid)
    except SweepError as exc:
        raise BadInput(str(exc)) from None
    if args.save_sweep:
        store_in_metadata(graph, sweep)
        workflow.save(graph, args.workflow)
    apply_sets(graph, args.set or [])
    if args.device:
        for node in graph.nodes.values():
            if node.type_id == "sd.load_model":
                graph.set_param(node.id, "device", args.device)
    return graph, sweep, base_dir


def _backend(args: argparse.Namespace):
    if not args.ray:
        from nodes.sweep_cells import LocalBackend

        return LocalBackend()
    from nodes.ray_backend import RayBackend, RayUnavailable

    try:
        return RayBackend(args.ray, cpus_per_worker=args.cpus_per_worker)
    except RayUnavailable as exc:
        raise BadInput(str(exc)) from None
    except ConnectionError as exc:
        raise BadInput(f"--ray {args.ray}: cannot join the cluster: {exc}") from None


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
    from nodes.sweep_cells import run_sweep

    try:
        graph, sweep, base_dir = _prepare(args)
        backend = _backend(args)
    except BadInput as exc:
        print_error(str(exc))
        return EXIT_BAD_INPUT
    printer = SweepPrinter(len(sweep.cells), args.quiet)
    outcome: dict[str, Any] = {}
    # An Event, not Thread.join: a KeyboardInterrupt landing inside join() can leave the thread
    # marked as stopped while it still runs (CPython gh-90882), and the exit then aborts.
    finished = threading.Event()

    def work() -> None:
        try:
            outcome["report"] = run_sweep(graph, sweep, args.output_dir, backend, base_dir,
                                          os.path.abspath(args.workflow), printer)
        except Exception as exc:  # reported below, never a hang
            outcome["error"] = exc
        finally:
            finished.set()

    thread = threading.Thread(target=work, name="latentgraph-sweep", daemon=True)
    thread.start()
    try:
        try:
            while not finished.wait(0.1):
                pass
        except KeyboardInterrupt:
            backend.cancel()
            finished.wait()
    finally:
        backend.close()
    if "error" in outcome:
        exc = outcome["error"]
        print_error(f"{args.output_dir}: {exc}")
        return EXIT_BAD_INPUT if isinstance(exc, (ValueError, OSError)) else EXIT_NODE_FAILED
    report = outcome.get("report")
    if report is None or report.cancelled:
        done = report.skipped + report.done + report.failed if report else 0
        print(f"cancelled: {done} of {len(sweep.cells)} cells finished; rerun the same command "
              "to resume", file=sys.stderr)
        return EXIT_CANCELLED
    print(os.path.join(args.output_dir, "sweep.json"))
    for name in report.grids:
        print(os.path.join(args.output_dir, name))
    if not args.quiet:
        runs = ", ".join(f"{k} {v}" for k, v in sorted(report.node_runs.items())) or "none"
        rate = report.done / report.seconds if report.seconds else 0.0
        print(f"{report.total} cells: {report.done} done, {report.skipped} already done, "
              f"{report.failed} failed in {report.seconds:.2f}s ({rate:.2f} cells/s); "
              f"node runs: {runs}", file=sys.stderr)
    return EXIT_NODE_FAILED if report.failed else EXIT_OK

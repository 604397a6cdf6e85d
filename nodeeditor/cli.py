"""The ``latentgraph`` command: open the editor, or run / validate workflows headless.

Exit codes: 0 success, 1 a node failed, 2 bad input (arguments or file), 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphs.run_settings import DEFAULT_OUTPUT_DIR

from .budget_settings import (  # noqa: F401 (re-exported: the editor's start and tests use these names)
    CACHE_SETTING,
    CONVERTED_SETTING,
    apply_cache_setting,
    parse_converted_gb,
)
from .cli_common import (  # noqa: F401 (re-exported: the command's public names)
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_NODE_FAILED,
    EXIT_OK,
    BadInput,
    add_model_folder_args,
    apply_device,
    apply_model_folder_args,
    apply_sets,
    load_node_library,
    load_workflow,
    load_workflow_and_report,
    missing_types_text,
    print_error,
)

if TYPE_CHECKING:
    from graphs import events as ev

COMMANDS = ("run", "validate", "nodes", "sweep", "model", "import", "export")


class ProgressPrinter:
    """A one-line progress display on stderr, fed by executor events."""

    def __init__(self, graph, stream=sys.stderr, quiet: bool = False) -> None:
        self.graph, self.stream, self.quiet = graph, stream, quiet
        self.tty = stream.isatty()
        self._last_line = ""
        from graphs import events as ev  # here: the CLI starts without loading graphs

        self._dispatch = ev.Dispatcher({
            ev.Progress: self._progress,
            ev.NodeFinished: lambda e: self._line(f"{self._title(e.node_id)}: done in {e.seconds:.2f}s"),
            ev.NodeStatus: lambda e: self._line(f"{self._title(e.node_id)}: {e.message}"),
            ev.NodeWarning: lambda e: self._line(f"{self._title(e.node_id)}: warning: {e.message}"),
            ev.NodeFailed: lambda e: self._line(
                f"{self._title(e.node_id)}: failed: {e.error_type}: {e.message}"),
        })

    def __call__(self, event: ev.Event) -> None:
        if not self.quiet:
            self._dispatch(event)
            self.stream.flush()

    def _title(self, node_id: str) -> str:
        return self.graph.nodes[node_id].title if node_id in self.graph.nodes else ""

    def _progress(self, e: ev.Progress) -> None:
        step, total, width = e.step, e.total, 24
        filled = int(width * step / max(total, 1))
        line = f"{self._title(e.node_id)}: [{'#' * filled}{'.' * (width - filled)}] {step}/{total}"
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self._last_line)))
            self._last_line = line
            if step == total:
                self.stream.write("\n")
                self._last_line = ""
        elif step == total:
            self.stream.write(line + "\n")

    def _line(self, text: str) -> None:
        """A line of its own, below a progress bar still being drawn on a terminal."""
        if self._last_line:
            self.stream.write("\n")
            self._last_line = ""
        self.stream.write(text + "\n")


def check_text(item: str) -> None:
    """Refuse an argument holding bytes that are not UTF-8 (they reach Python as surrogates)."""
    try:
        item.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = os.fsencode(item)[exc.start:exc.end]
        raise BadInput(f"--set {item!r}: not UTF-8 text (bytes {bad!r}); "
                       "pass the value in UTF-8") from None


def cmd_run(args: argparse.Namespace) -> int:
    import nodes
    from graphs import Executor, safe_io

    try:
        safe_io.check_output_folder(args.output_dir)
    except ValueError as exc:
        raise BadInput(f"--output-dir {exc}") from None
    for item in args.set or []:
        check_text(item)
    apply_model_folder_args(args)
    graph = load_workflow(args.workflow, quiet=args.quiet)
    apply_sets(graph, args.set or [])
    if args.device:
        apply_device(graph, args.device)
    executor = Executor(settings={"output_dir": args.output_dir, "previews": False,
                                  "base_dir": os.path.dirname(os.path.abspath(args.workflow))})
    executor.release_hooks.append(nodes.release_models)
    executor.events.subscribe(ProgressPrinter(graph, quiet=args.quiet))
    outcome: dict[str, Any] = {}
    interrupted = run_interruptible(lambda: outcome.update(result=executor.run(graph)),
                                    executor.cancel)
    result = outcome.get("result")
    if interrupted or result is None or result.status == "cancelled":
        for path in _saved_paths(result):
            print(path)  # finished before the interrupt reached it: a whole file, kept
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    if result.status == "failed":
        failure = result.error
        if args.debug and failure.traceback:
            print(failure.traceback, file=sys.stderr)
        where = f"node {failure.title!r}" if failure.node_id else "graph"
        print_error(f"{args.workflow}: {where}: {failure.error_type}: {failure.message}")
        return EXIT_NODE_FAILED
    for path in _saved_paths(result):
        print(path)
    if not args.quiet:
        print(f"finished in {result.seconds:.2f}s: {len(result.executed)} ran, "
              f"{len(result.cached)} cached", file=sys.stderr)
    return EXIT_OK


def _saved_paths(result) -> list[str]:
    if result is None:
        return []
    return [path for outputs in result.outputs.values() if isinstance(outputs, dict)
            for path in outputs.get("paths", [])]


def run_interruptible(work: Callable[[], None], cancel: Callable[[], None]) -> bool:
    """Run ``work`` on a worker thread; Ctrl+C calls ``cancel`` and waits for the worker to stop
    (within one step); a second Ctrl+C leaves at once, removing unfinished temp files first.
    True if interrupted.

    Ctrl+C never becomes a KeyboardInterrupt here: raised inside ``Thread.join`` (Python 3.11) it
    marks the worker stopped, the interpreter then exits under a running torch thread and the
    C++ runtime aborts ("terminate called without an active exception")."""
    from graphs import safe_io

    done = threading.Event()
    interrupted: list[bool] = []

    def run() -> None:
        try:
            work()
        finally:
            done.set()

    def on_interrupt(_signum, _frame) -> None:
        if interrupted:
            safe_io.remove_temp_files()
            sys.stderr.write("cancelled\n")
            sys.stderr.flush()
            os._exit(EXIT_CANCELLED)  # skips the interpreter's teardown under a running thread
        interrupted.append(True)
        cancel()

    main = threading.current_thread() is threading.main_thread()  # signals reach only it
    previous = signal.signal(signal.SIGINT, on_interrupt) if main else None
    try:
        thread = threading.Thread(target=run, name="latentgraph-run", daemon=True)
        thread.start()
        while not done.wait(0.1):
            pass
        thread.join()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    return bool(interrupted)


def cmd_validate(args: argparse.Namespace) -> int:
    graph = load_workflow(args.workflow)
    missing = missing_types_text(graph)
    if missing and not args.allow_missing:
        raise BadInput(f"{args.workflow}: node types not installed: {missing} "
                       "(--allow-missing accepts them as placeholders)")
    print(f"{args.workflow}: ok ({len(graph.nodes)} nodes, {len(graph.links)} links)"
          + (f"; missing node types: {missing}" if missing else ""))
    return EXIT_OK


def cmd_nodes(args: argparse.Namespace) -> int:
    from graphs import default_registry

    load_node_library()
    registry = default_registry()
    types = list(registry.nodes)
    if args.json:
        from nodes.model_probe import families

        print(json.dumps({"nodes": [t.describe() for t in types],
                          "plugins": [r.describe() for r in registry.plugins],
                          "families": families()}, indent=1))
        return EXIT_OK
    for node_type in types:
        ins = ", ".join(f"{s.name}:{s.type}" for s in node_type.inputs) or "-"
        outs = ", ".join(f"{s.name}:{s.type}" for s in node_type.outputs) or "-"
        params = ", ".join(p.name for p in node_type.params) or "-"
        source = f" ({node_type.package})" if node_type.package else ""
        print(f"{node_type.type_id:20} {node_type.title:16} in [{ins}] out [{outs}] "
              f"params [{params}]{source}")
    print(f"plugins ({len(registry.plugins)}):" if registry.plugins else "plugins: none installed")
    for report in registry.plugins:
        print(f"  {report.line()}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """A ComfyUI workflow, API prompt or image as a LatentGraph workflow file, with its report."""
    from graphs import workflow

    graph, report = load_workflow_and_report(args.source, quiet=True)
    if report is None:
        raise BadInput(f"{args.source}: already a LatentGraph workflow; nothing to import")
    try:
        workflow.save(graph, args.to)
    except (OSError, ValueError) as exc:
        raise BadInput(f"--to {args.to}: {getattr(exc, 'strerror', None) or exc}") from None
    print(report.text())
    print(f"wrote {args.to}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """A workflow as a ComfyUI API prompt, for a ComfyUI server's /prompt."""
    import json
    from pathlib import Path

    from graphs import workflow
    from nodes.comfyui.export import ExportError, export_api

    graph = load_workflow(args.workflow, quiet=True)
    try:
        prompt = export_api(graph)
    except ExportError as exc:
        raise BadInput(f"{args.workflow}: {exc}") from None
    try:
        workflow.atomic_write_text(Path(args.comfy_api), json.dumps(prompt, indent=1, ensure_ascii=False))
    except (OSError, ValueError) as exc:
        raise BadInput(f"--comfy-api {args.comfy_api}: {getattr(exc, 'strerror', None) or exc}") from None
    print(f"wrote {args.comfy_api} ({len(prompt)} ComfyUI nodes)")
    return EXIT_OK


def cmd_model(args: argparse.Namespace) -> int:
    """What Load model would make of a checkpoint or folder, read without loading the weights."""
    from nodes.model_probe import probe
    from nodes.model_sources import ModelLoadError

    try:
        found = probe(args.source)
    except ModelLoadError as exc:
        raise BadInput(str(exc)) from None
    if args.json:
        print(json.dumps(found, indent=1))
    elif found["family"] is None:
        print(f"{found['source']}: {found['note']}")
    else:
        print(f"{found['title']}, {found['prediction']} prediction, {found['default_size']}px default "
              f"({found['format']}: {found['evidence']})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentgraph", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run a workflow headless")
    run.add_argument("workflow")
    run.add_argument("--set", action="append", metavar="TITLE.PARAM=VALUE",
                     help="override a param of the node with that title (or id)")
    run.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                     help=f"where Save image writes (default: {DEFAULT_OUTPUT_DIR})")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override every Load model")
    add_model_folder_args(run)
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run.add_argument("--debug", action="store_true", help="show tracebacks")
    validate = sub.add_parser("validate", help="check a workflow file")
    validate.add_argument("workflow")
    validate.add_argument("--allow-missing", action="store_true",
                          help="accept node types nobody provides (they open as placeholders)")
    validate.add_argument("--debug", action="store_true")
    listing = sub.add_parser("nodes", help="list the node types")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--debug", action="store_true")
    model = sub.add_parser("model", help="what a checkpoint or model folder is (family, prediction), "
                                         "read without loading it")
    model.add_argument("source", help="a .safetensors file, a diffusers folder or 'bundled'")
    model.add_argument("--json", action="store_true")
    model.add_argument("--debug", action="store_true")
    importing = sub.add_parser("import", help="turn a ComfyUI workflow, API prompt or image into a LatentGraph "
                                              "workflow file")
    importing.add_argument("source", help="ComfyUI workflow .json, API prompt .json, or a .png/.webp ComfyUI wrote")
    importing.add_argument("--to", required=True, metavar="OUT.json", help="the workflow file to write")
    importing.add_argument("--debug", action="store_true")
    exporting = sub.add_parser("export", help="write a workflow as a ComfyUI API prompt")
    exporting.add_argument("workflow")
    exporting.add_argument("--comfy-api", required=True, metavar="OUT.json", help="the API prompt file to write")
    exporting.add_argument("--debug", action="store_true")
    from .cli_sweep import add_parser as add_sweep_parser
    add_sweep_parser(sub)
    return parser


def build_editor_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentgraph", epilog="Headless: latentgraph run|validate|nodes|sweep|model|import|export --help")
    parser.add_argument("workflow", nargs="?", help="a workflow .json or an output .png (ours or ComfyUI's)")
    parser.add_argument("--output-dir", help="where Save image writes")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if argv and argv[0] in COMMANDS:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:
            return EXIT_BAD_INPUT if exc.code else EXIT_OK
        from .cli_sweep import cmd_sweep
        handler = {"run": cmd_run, "validate": cmd_validate, "nodes": cmd_nodes,
                   "sweep": cmd_sweep, "model": cmd_model, "import": cmd_import,
                   "export": cmd_export}[args.command]
        try:
            return handler(args)
        except BadInput as exc:
            if args.debug:
                traceback.print_exc()
            print_error(str(exc))
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            return EXIT_CANCELLED
    try:
        args = build_editor_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_BAD_INPUT if exc.code else EXIT_OK
    apply_cache_setting()
    try:
        from nodeeditor.app import run_app
    except ImportError as exc:
        print_error(f"the editor is not available: {exc}")
        return EXIT_BAD_INPUT
    return run_app(args.workflow, args.output_dir)


def entry() -> None:
    """The ``latentgraph`` command. A headless command first lets a checkpoint's converted copy
    being written finish (the next run maps it). After ``run`` it then leaves without the
    interpreter's teardown: unloading torch, diffusers and transformers (thousands of modules)
    kept the shell waiting most of a second after the image was saved and printed. Only ``run``:
    its work is done and flushed when it returns, whereas a sweep's Ray cluster needs its exit hooks."""
    code = main()
    copies = sys.modules.get("nodes.converted_copies")
    if copies is not None and sys.argv[1:2] and sys.argv[1] in COMMANDS:
        if copies.writing() and "--quiet" not in sys.argv:
            print(f"finishing a checkpoint's converted copy, so the next run maps it instead of converting "
                  f"({copies.BUDGET_ENV}=0 turns copies off)", file=sys.stderr, flush=True)
        copies.wait_for_copies()
    if sys.argv[1:2] == ["run"]:
        import logging

        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()

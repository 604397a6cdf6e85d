"""Evaluate a graph: only what the requested outputs need, in topological order, with a
Merkle-keyed output cache so unchanged work is skipped.

Events (``executor.events``, emitted on the thread that calls :meth:`Executor.run`): the
classes in ``graphs.events.EXECUTOR_EVENTS``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import traceback as _traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from . import events as ev
from .events import Emitter
from .model import Graph, Link, Node
from .output_cache import OutputCache
from .placeholders import MissingNodeType, missing_message
from .registry import REROUTE, NodeType


class Cancelled(Exception):
    """Raised inside a node run when the user cancels; ends the run cleanly."""


class NodeFailure(Exception):
    """A run that stopped because a node raised."""

    def __init__(self, node_id: str, title: str, error_type: str, message: str, tb: str) -> None:
        self.node_id, self.title, self.error_type, self.message = node_id, title, error_type, message
        self.traceback = tb
        super().__init__(f"{title}: {error_type}: {message}")


def resolve_path(path: str, settings: dict[str, Any]) -> str:
    """A user path: ``~`` expanded; a relative path is looked up next to the workflow file
    (``settings["base_dir"]``) first, then in the working directory."""
    expanded = os.path.expanduser(path)
    base = settings.get("base_dir")
    if expanded and not os.path.isabs(expanded) and base:
        candidate = os.path.join(base, expanded)
        if os.path.exists(candidate):
            return candidate
    return expanded


_running = threading.local()


def current_context() -> RunContext | None:
    """The context of the node running on this thread, if any: for code deep below a node's
    ``run`` (a model compiling itself, say) that has something to tell the user."""
    return getattr(_running, "context", None)


class RunContext:
    """What a node's ``run`` function may use: progress, previews, cancel checks, settings."""

    def __init__(self, executor: Executor, graph: Graph, node: Node, settings: dict[str, Any]):
        self.executor, self.graph, self.node, self.settings = executor, graph, node, settings
        self.node_id = node.id
        self.warnings: list[str] = []

    @property
    def title(self) -> str:
        return self.node.title

    def check_cancel(self) -> None:
        if self.executor.cancel_requested:
            raise Cancelled()

    def progress(self, step: int, total: int) -> None:
        self.executor.events.emit(ev.Progress(self.node_id, step, total))

    def status(self, message: str) -> None:
        """What a long-running node is busy with (compiling, say), for the user to see."""
        self.executor.events.emit(ev.NodeStatus(self.node_id, message))

    def preview(self, image: Any, step: int | None = None) -> None:
        self.executor.events.emit(ev.Preview(self.node_id, image, step))

    def show_images(self, images: list[Any]) -> None:
        """Final images for the editor to show on the node (PIL images)."""
        self.executor.events.emit(ev.NodeImages(self.node_id, tuple(images)))

    @property
    def wants_previews(self) -> bool:
        return bool(self.settings.get("previews", True))

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.executor.events.emit(ev.NodeWarning(self.node_id, message))

    def resolve_path(self, path: str) -> str:
        return resolve_path(path, self.settings)

    def workflow(self) -> dict[str, Any]:
        """The snapshot being run, as workflow-file data (for embedding in outputs)."""
        from .workflow import to_dict
        return to_dict(self.graph)


@dataclass
class RunResult:
    status: str  # "finished", "failed" or "cancelled"
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    error: NodeFailure | None = None
    seconds: float = 0.0
    param_updates: dict[str, dict[str, Any]] = field(default_factory=dict)


def _is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, and torch's CPU allocator failure (a plain
    RuntimeError: "DefaultCPUAllocator: can't allocate memory: you tried to allocate ...")."""
    return (isinstance(exc, MemoryError) or type(exc).__name__.endswith("OutOfMemoryError")
            or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)))


class Executor:
    """Runs graphs. Keep one per app so cached outputs (and loaded models) survive runs."""

    def __init__(self, cache_budget_bytes: int = 4 * 1024**3, settings: dict[str, Any] | None = None) -> None:
        self.cache = OutputCache(cache_budget_bytes)
        self.settings: dict[str, Any] = dict(settings or {})
        self.events = Emitter()
        self._cancel = threading.Event()
        # Called with no arguments when a node runs out of memory (e.g. free loaded models).
        self.release_hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._current: str | None = None  # the node running now (for run_cancelled)
        # per run: type_id -> (node type, names of its inputs incl. param-driving sockets)
        self._types: dict[str, tuple[NodeType, tuple[str, ...]]] = {}

    # ----- control ----------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the current run to stop at the next check (between nodes, every step)."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def clear_cache(self) -> None:
        self.cache.clear()

    # ----- planning ---------------------------------------------------------------
    @staticmethod
    def output_nodes(graph: Graph) -> list[str]:
        return [n.id for n in graph.nodes.values()
                if graph.node_type(n).output_node and not n.flags.get("mute")]

    def plan(self, graph: Graph, targets: Iterable[str] | None = None
             ) -> tuple[list[str], dict[str, str]]:
        """The nodes to evaluate in order, and the nodes dropped (with why)."""
        dag = nx.DiGraph()
        dag.add_nodes_from(graph.nodes)
        sources: dict[str, list[str]] = {}  # node -> the nodes feeding it
        for ln in graph.links.values():
            sources.setdefault(ln.dst_node, []).append(ln.src_node)
        dag.add_edges_from((src, dst) for dst, srcs in sources.items() for src in srcs)
        try:
            full_order = list(nx.topological_sort(dag))
        except nx.NetworkXUnfeasible:
            raise ValueError("the graph has a cycle") from None
        targets = list(self.output_nodes(graph) if targets is None else targets)
        for target in targets:
            if target not in graph.nodes:
                raise ValueError(f"no node with id {target!r} to run")
        # The targets' ancestors, in one walk (not one walk per target).
        needed = set(targets)
        stack = list(needed)
        while stack:
            for src in sources.get(stack.pop(), ()):
                if src not in needed:
                    needed.add(src)
                    stack.append(src)
        order = [n for n in full_order if n in needed]
        dropped: dict[str, str] = {}
        for node_id in order:
            node = graph.nodes[node_id]
            if node.flags.get("mute"):
                dropped[node_id] = "muted"
                continue
            if not dropped:
                continue
            node_type = graph.node_type(node)
            for socket in node_type.inputs:
                link = graph.inbound(node_id, socket.name)
                if link is not None and link.src_node in dropped and not socket.optional:
                    dropped[node_id] = f"input {socket.name!r} comes from a muted node"
                    break
        # What is left must still lead to a live target: a node whose only consumers were
        # dropped is not needed (e.g. the model loader of a muted sampler).
        if dropped:
            live = {t for t in targets if t not in dropped}
            for node_id in reversed(order):
                if node_id in live:
                    live.update(s for s in sources.get(node_id, ()) if s not in dropped)
            return [n for n in order if n in live], dropped
        return [n for n in order if n not in dropped], dropped

    # ----- running ----------------------------------------------------------------
    def run(self, graph: Graph, targets: Iterable[str] | None = None,
            settings: dict[str, Any] | None = None, take_snapshot: bool = True,
            cancel_event: threading.Event | None = None) -> RunResult:
        """Evaluate ``targets`` (default: every output node) and what they need.

        ``cancel_event`` belongs to this one run: a caller that queues runs (the editor)
        makes one per request, so a cancel sent before the run starts still stops it and a
        late cancel never leaks into the next run. :meth:`cancel` sets the current one."""
        with self._lock:
            self._cancel = cancel_event if cancel_event is not None else threading.Event()
            started = time.perf_counter()
            graph = graph.copy() if take_snapshot else graph
            run_settings = {**self.settings, **(settings or {})}
            result = RunResult("finished")
            try:
                order, dropped = self.plan(graph, targets)
            except ValueError as exc:
                failure = NodeFailure("", "graph", type(exc).__name__, str(exc), "")
                result.status, result.error = "failed", failure
                self.events.emit(ev.RunFinished(result))
                return result
            result.skipped = dropped
            self.events.emit(ev.RunStarted(tuple(order)))
            for node_id, why in dropped.items():
                self.events.emit(ev.NodeSkipped(node_id, why))
            keys: dict[str, str] = {}
            self._types = {}
            try:
                self._refuse_placeholders(graph, order)
                self._refuse_missing_inputs(graph, order, dropped)
                for node_id in order:
                    if self._cancel.is_set():
                        raise Cancelled()
                    self._run_node(graph, node_id, keys, dropped, run_settings, result)
            except Cancelled:
                result.status = "cancelled"
                self.events.emit(ev.RunCancelled(self._current))
            except NodeFailure as failure:
                result.status, result.error = "failed", failure
            finally:
                self._current = None
                self.cache.evict(keep=keys.values())
            if result.status == "finished":
                result.param_updates = self._after_run_updates(graph, order)
            result.seconds = time.perf_counter() - started
            self.events.emit(ev.RunFinished(result))
            return result

    def _node_key(self, graph: Graph, node: Node, node_type: NodeType, inputs: dict[str, Link],
                  keys: dict[str, str], settings: dict[str, Any]) -> str:
        """A Merkle key: type, version, own (unlinked) params and the keys of the inputs.
        ``repr`` of sorted items is canonical for the JSON values params hold, and cheaper
        than ``json.dumps``."""
        params = sorted((k, v) for k, v in node.params.items() if k not in inputs)
        parts: list[Any] = [node_type.type_id, node_type.version, params,
                            sorted((name, keys[ln.src_node], ln.src_output)
                                   for name, ln in inputs.items())]
        if node.flags.get("bypass"):
            parts.append("bypass")
        if node_type.fingerprint is not None:
            parts.append(node_type.fingerprint(node.params, settings))
        if node_type.settings_in_key:
            parts.append([settings.get(name) for name in node_type.settings_in_key])
        if node_type.always_run:
            parts.append(os.urandom(8).hex())
        return hashlib.blake2b(repr(parts).encode("utf-8", "backslashreplace"),
                               digest_size=16).hexdigest()

    def _type_info(self, graph: Graph, type_id: str) -> tuple[NodeType, tuple[str, ...]]:
        info = self._types.get(type_id)
        if info is None:
            node_type = graph.registry.nodes.get(type_id)
            names = tuple(s.name for s in node_type.inputs) + tuple(
                p.name for p in node_type.params if p.linkable)
            info = self._types[type_id] = (node_type, names)
        return info

    def _run_node(self, graph: Graph, node_id: str, keys: dict[str, str], dropped: dict[str, str],
                  settings: dict[str, Any], result: RunResult) -> None:
        node = graph.nodes[node_id]
        node_type, input_names = self._type_info(graph, node.type_id)
        inputs: dict[str, Link] = {}
        for name in input_names:
            link = graph.inbound(node_id, name)
            if link is not None and link.src_node not in dropped:
                inputs[name] = link
        try:
            key = self._node_key(graph, node, node_type, inputs, keys, settings)
        except Exception as exc:  # e.g. a fingerprint that cannot read its file
            raise self._fail(node, exc) from None
        keys[node_id] = key
        cached = self.cache.get(key)
        if cached is not None:
            result.outputs[node_id] = cached
            result.cached.append(node_id)
            self.events.emit(ev.NodeCached(node_id))
            return
        self._current = node_id
        self.events.emit(ev.NodeStarted(node_id))
        t0 = time.perf_counter()
        values: dict[str, Any] = {}
        for name, link in inputs.items():
            values[name] = result.outputs[link.src_node].get(link.src_output)
        ctx = RunContext(self, graph, node, settings)
        try:
            if node.flags.get("bypass") and node.type_id != REROUTE:
                outputs = self._bypass(graph, node, node_type, inputs, values)
            else:
                for socket in node_type.inputs:
                    if not socket.optional and socket.name not in values:
                        raise ValueError(f"input {socket.name!r} ({socket.type}) is not connected")
                for param in node_type.params:
                    if param.name in values:
                        value = values[param.name]
                        if param.kind == "float" and isinstance(value, int) and \
                                not isinstance(value, bool):
                            value = float(value)
                        error = param.check(value)
                        if error:
                            raise ValueError(f"input {param.name!r}: {error}")
                        values[param.name] = value
                    else:
                        values[param.name] = node.params.get(param.name, param.default)
                outer, _running.context = current_context(), ctx
                try:
                    outputs = node_type.run(ctx, **values) or {}
                finally:
                    _running.context = outer
                if not isinstance(outputs, dict):
                    raise TypeError(f"run() returned {type(outputs).__name__}, expected a dict")
        except Cancelled:
            raise
        except Exception as exc:
            if _is_oom(exc):
                self.cache.clear()
                for hook in self.release_hooks:
                    hook()
                raise self._fail(node, exc, "out of memory; cached outputs and models were freed. "
                                 "Try a smaller size or batch. ") from None
            raise self._fail(node, exc) from None
        seconds = time.perf_counter() - t0
        result.outputs[node_id] = outputs
        result.executed.append(node_id)
        result.timings[node_id] = seconds
        if ctx.warnings:
            result.warnings[node_id] = list(ctx.warnings)
        self.cache.put(key, outputs)
        self._current = None
        self.events.emit(ev.NodeFinished(node_id, seconds, outputs))

    def _refuse_placeholders(self, graph: Graph, order: list[str]) -> None:
        """A node standing in for a type nobody provides fails the run before anything runs
        (a bypassed one only forwards its inputs, so it may stay)."""
        for node_id in order:
            node = graph.nodes[node_id]
            node_type = graph.node_type(node)
            if node_type.placeholder and not node.flags.get("bypass"):
                raise self._fail(node, MissingNodeType(missing_message(node.type_id, node_type.package)))

    def _refuse_missing_inputs(self, graph: Graph, order: list[str], dropped: dict[str, str]) -> None:
        """Required inputs left unconnected fail the run before anything runs, every such node
        marked and named (not one at a time, after minutes of the nodes before it)."""
        missing = []
        for node_id in order:
            node = graph.nodes[node_id]
            if node_id in dropped or node.flags.get("bypass"):
                continue
            sockets = [s for s in graph.node_type(node).inputs
                       if not s.optional and graph.inbound(node_id, s.name) is None]
            if sockets:
                names = ", ".join(f"{s.name!r} ({s.type})" for s in sockets)
                missing.append((node, f"input {names} is not connected" if len(sockets) == 1
                                else f"inputs {names} are not connected"))
        if not missing:
            return
        failures = [self._fail(node, ValueError(message)) for node, message in missing]
        first = failures[0]
        if len(failures) > 1:
            others = ", ".join(f"{f.title} ({f.message})" for f in failures[1:])
            first = NodeFailure(first.node_id, first.title, first.error_type, f"{first.message}; also {others}",
                                first.traceback)
        raise first

    def _fail(self, node: Node, exc: BaseException, prefix: str = "") -> NodeFailure:
        failure = NodeFailure(node.id, node.title, type(exc).__name__, prefix + str(exc),
                              "".join(_traceback.format_exception(exc)))
        self.events.emit(ev.NodeFailed(node.id, node.title, failure.error_type, failure.message,
                                      failure.traceback))
        return failure

    @staticmethod
    def _bypass(graph: Graph, node: Node, node_type: NodeType, inputs: dict[str, Link],
                values: dict[str, Any]) -> dict[str, Any]:
        """Forward, for each output, the first connected input of a compatible type."""
        outputs: dict[str, Any] = {}
        sockets = graph.registry.sockets
        for out in node_type.outputs:
            for socket in node_type.inputs:
                if socket.name in inputs and sockets.compatible(
                        graph.output_type(inputs[socket.name].src_node,
                                          inputs[socket.name].src_output), out.type):
                    outputs[out.name] = values[socket.name]
                    break
            else:
                outputs[out.name] = None
        return outputs

    def _after_run_updates(self, graph: Graph, order: list[str]) -> dict[str, dict[str, Any]]:
        updates: dict[str, dict[str, Any]] = {}
        for node_id in order:
            node = graph.nodes[node_id]
            hook = self._type_info(graph, node.type_id)[0].after_run
            if hook is not None:
                changed = hook(dict(node.params))
                if changed:
                    updates[node_id] = changed
        return updates

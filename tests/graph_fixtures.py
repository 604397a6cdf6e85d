"""Trivial node types for testing the Qt-free core (``graphs``) without torch.

``make_kit()`` returns a fresh registry plus a ``runs`` list that every node type
appends ``(type_id, node_id)`` to when it actually runs (not when served from cache).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from graphs import NodeType, Param, Registry, Socket, SocketType, base_registry


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError; the executor recognises it by name."""


class Blob:
    """A cached value that reports its size like a tensor/array does."""

    def __init__(self, nbytes: int, tag: Any = None) -> None:
        self.nbytes = nbytes
        self.tag = tag


@dataclass
class Kit:
    registry: Registry
    runs: list[tuple[str, str]] = field(default_factory=list)
    # Values seen by test.sleep each time it starts (lets a test wait for the node to begin).
    sleep_started: list[str] = field(default_factory=list)

    def ran(self, type_id: str | None = None) -> list[str]:
        """Node ids that ran (optionally only of ``type_id``), in run order."""
        return [n for t, n in self.runs if type_id is None or t == type_id]


def _file_fingerprint(params: dict[str, Any], settings: dict[str, Any]) -> str:
    st = os.stat(params["path"])
    return f"{st.st_mtime_ns}:{st.st_size}"


def make_kit() -> Kit:
    registry = base_registry()
    kit = Kit(registry)
    runs = kit.runs

    def reg(type_id: str, run, **kw) -> None:
        def wrapped(ctx, **values):
            runs.append((type_id, ctx.node_id))
            return run(ctx, **values)
        kw.setdefault("title", type_id.split(".")[-1].title())
        kw.setdefault("category", "test")
        registry.nodes.register(NodeType(type_id, run=wrapped, **kw))

    F, INT, S = "FLOAT", "INT", "STRING"
    reg("test.const", lambda ctx, value: {"value": value},
        outputs=(Socket("value", F),), params=(Param("value", "float", 1.0),))
    reg("test.int", lambda ctx, value: {"value": value},
        outputs=(Socket("value", INT),), params=(Param("value", "int", 1, min=-1000, max=1000),))
    reg("test.text", lambda ctx, text: {"text": text},
        outputs=(Socket("text", S),), params=(Param("text", "string", "hi"),))
    reg("test.add", lambda ctx, a, b: {"sum": a + b},
        inputs=(Socket("a", F), Socket("b", F)), outputs=(Socket("sum", F),))
    reg("test.multiply", lambda ctx, a, factor: {"product": a * factor},
        inputs=(Socket("a", F),), outputs=(Socket("product", F),),
        params=(Param("factor", "float", 2.0, min=-100, max=100),))
    reg("test.steps", lambda ctx, steps, fixed: {"value": steps * 1.0},
        outputs=(Socket("value", F),),
        params=(Param("steps", "int", 10, min=1, max=100),
                Param("fixed", "int", 3, linkable=False)))
    reg("test.sink", lambda ctx, value, label: {"seen": value},
        inputs=(Socket("value", F),), params=(Param("label", "string", "out"),),
        output_node=True)
    reg("test.text_sink", lambda ctx, text: {"seen": text},
        inputs=(Socket("text", S),), output_node=True)

    def sleep(ctx, value=None, seconds=0.0):
        kit.sleep_started.append(ctx.node_id)
        end = time.monotonic() + seconds
        step = 0
        while time.monotonic() < end:
            ctx.check_cancel()
            ctx.progress(step, 0)
            step += 1
            time.sleep(0.002)
        return {"value": value}

    reg("test.sleep", sleep, inputs=(Socket("value", F, optional=True),),
        outputs=(Socket("value", F),), params=(Param("seconds", "float", 0.0, min=0, max=60),))

    def fail(ctx, value=None, message="boom"):
        raise RuntimeError(message)

    reg("test.fail", fail, inputs=(Socket("value", F, optional=True),),
        outputs=(Socket("value", F),), params=(Param("message", "string", "boom"),))

    def oom(ctx, value=None):
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    reg("test.oom", oom, inputs=(Socket("value", F, optional=True),), outputs=(Socket("value", F),))
    reg("test.counter", lambda ctx, value=None: {"value": float(len(kit.ran("test.counter")))},
        inputs=(Socket("value", F, optional=True),), outputs=(Socket("value", F),))

    def read_file(ctx, path):
        with open(path, encoding="utf-8") as handle:
            return {"text": handle.read()}

    reg("test.read_file", read_file, outputs=(Socket("text", S),),
        params=(Param("path", "path", "", linkable=False),), fingerprint=_file_fingerprint)
    reg("test.random", lambda ctx: {"value": float(len(runs))},
        outputs=(Socket("value", F),), always_run=True)

    def seed_after(params):
        if params["control"] == "increment":
            return {"seed": params["seed"] + 1}
        return {}

    reg("test.seed", lambda ctx, seed, control: {"seed": seed},
        outputs=(Socket("seed", INT),),
        params=(Param("seed", "seed", 0, min=0, max=2**64 - 1),
                Param("control", "choice", "increment", choices=("fixed", "increment"))),
        after_run=seed_after)
    # Bypass: result (FLOAT) gets the first FLOAT-compatible input, i.e. ``a``, not ``label``.
    reg("test.mix", lambda ctx, a, label=None: {"result": -a, "label": f"{label}!"},
        inputs=(Socket("label", S, optional=True), Socket("a", F)),
        outputs=(Socket("result", F), Socket("label", S)))
    reg("test.blob", lambda ctx, size, tag: {"blob": Blob(size, tag)},
        outputs=(Socket("blob", "BLOB"),),
        params=(Param("size", "int", 100, min=0, max=10**9), Param("tag", "int", 0)))
    registry.sockets.register(SocketType("BLOB"))
    return kit


def chain(graph, kit: Kit, n: int, sink: bool = True) -> list[str]:
    """const -> multiply x (n-1) [-> sink]; returns node ids in order (sink last)."""
    from graphs import Link, new_id

    ids = []
    node = graph.add_node(graph.create_node("test.const", (0, 0)))
    ids.append(node.id)
    for i in range(1, n):
        node = graph.add_node(graph.create_node("test.multiply", (i * 200, 0)))
        graph.add_link(Link(new_id(), ids[-1], "value" if i == 1 else "product", node.id, "a"))
        ids.append(node.id)
    if sink:
        node = graph.add_node(graph.create_node("test.sink", (n * 200, 0)))
        graph.add_link(Link(new_id(), ids[-1], "value" if n == 1 else "product", node.id, "value"))
        ids.append(node.id)
    return ids

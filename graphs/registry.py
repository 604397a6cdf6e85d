"""Socket types and node types: the declarations the model, the file loader,
the executor and the editor all read.

Node types are data: inputs, outputs and params are declared, and ``run`` is a
plain function ``run(ctx, **values) -> dict[output_name, value]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ANY = "*"


@dataclass(frozen=True)
class SocketType:
    """A kind of value that flows along links, with the colour the editor draws it in."""

    name: str
    color: str = "#a0a0a0"
    description: str = ""
    accepts: frozenset[str] = frozenset()  # other source types this input type takes


class SocketTypes:
    """Registry of socket types and their compatibility rules."""

    def __init__(self) -> None:
        self._types: dict[str, SocketType] = {}
        self.register(SocketType(ANY, "#d0d0d0", "any value (reroutes)"))

    def register(self, socket_type: SocketType) -> SocketType:
        self._types[socket_type.name] = socket_type
        return socket_type

    def get(self, name: str) -> SocketType:
        try:
            return self._types[name]
        except KeyError:
            raise KeyError(f"unknown socket type {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def compatible(self, src: str, dst: str) -> bool:
        """Whether a value of type ``src`` may flow into an input of type ``dst``."""
        if src == dst or src == ANY or dst == ANY:
            return True
        dst_type = self._types.get(dst)
        return dst_type is not None and src in dst_type.accepts


PARAM_KINDS = ("int", "float", "string", "text", "bool", "choice", "seed", "path")
# Kinds that can be driven by a link from another node, and the socket type they take.
PARAM_SOCKET_TYPES = {"int": "INT", "float": "FLOAT", "string": "STRING", "text": "STRING",
                      "seed": "INT", "path": "STRING", "bool": "BOOLEAN", "choice": "STRING"}
# Beyond these magnitudes a number in a workflow file is treated as corrupt.
ABSURD = 1e12


def _show(value: Any) -> str:
    """A number for a message; a huge int (which float() and str() may refuse) by its size."""
    if isinstance(value, int) and not -10**30 < value < 10**30:
        return f"{'-' if value < 0 else ''}<{value.bit_length()}-bit integer>"
    return str(value)


@dataclass(frozen=True)
class Param:
    """A widget value of a node, declared by its type."""

    name: str
    kind: str
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    tooltip: str = ""
    label: str = ""
    linkable: bool = True  # an input socket of the same name may drive it
    slider: bool = False  # the editor shows a slider beside the spin box
    overridden_by: str = ""  # an input that, when connected, supplies this value instead

    def __post_init__(self) -> None:
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"param {self.name!r}: unknown kind {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"param {self.name!r}: a choice needs choices")
        error = self.check(self.default)
        if error:
            raise ValueError(f"param {self.name!r}: default {self.default!r}: {error}")

    @property
    def socket_type(self) -> str:
        return PARAM_SOCKET_TYPES[self.kind]

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is not valid for this param, or None if it is."""
        kind = self.kind
        if kind in ("int", "seed"):
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected int, got {type(value).__name__}"
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"expected number, got {type(value).__name__}"
            if isinstance(value, float) and not math.isfinite(value):
                return "expected a finite number"
        elif kind == "bool":
            if not isinstance(value, bool):
                return f"expected bool, got {type(value).__name__}"
        elif kind in ("string", "text", "path"):
            if not isinstance(value, str):
                return f"expected string, got {type(value).__name__}"
            if len(value) > 1_000_000:
                return "string longer than 1,000,000 characters"
        elif kind == "choice":
            if not isinstance(value, str):
                return f"expected string, got {type(value).__name__}"
            if self.match_choice(value) is None:
                return f"expected one of {', '.join(self.choices)}; got {value!r}"
        if kind in ("int", "seed", "float"):
            if abs(value) > ABSURD and kind != "seed":
                return f"absurd value {_show(value)}"
            if self.min is not None and value < self.min:
                return f"expected >= {self.min:g}, got {_show(value)}"
            if self.max is not None and value > self.max:
                return f"expected <= {self.max:g}, got {_show(value)}"
        return None

    def match_choice(self, value: str) -> str | None:
        """The declared choice equal to ``value`` ignoring case, or None."""
        for choice in self.choices:
            if choice.lower() == value.strip().lower():
                return choice
        return None

    def parse(self, text: str) -> Any:
        """Parse a command-line string into a value of this kind (raises ValueError)."""
        kind = self.kind
        if kind in ("int", "seed"):
            value: Any = int(text, 0)
        elif kind == "float":
            value = float(text)
        elif kind == "bool":
            lowered = text.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"expected a boolean, got {text!r}")
            value = lowered in ("1", "true", "yes", "on")
        elif kind == "choice":
            value = self.match_choice(text)
            if value is None:
                raise ValueError(f"expected one of {', '.join(self.choices)}; got {text!r}")
        else:
            value = text
        error = self.check(value)
        if error:
            raise ValueError(error)
        return value

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "default": self.default}
        for key in ("min", "max", "step"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.choices:
            out["choices"] = list(self.choices)
        if self.tooltip:
            out["tooltip"] = self.tooltip
        return out


@dataclass(frozen=True)
class Socket:
    """A declared input or output of a node type."""

    name: str
    type: str
    label: str = ""
    optional: bool = False


@dataclass(frozen=True)
class NodeType:
    """Declaration of a node type. ``run(ctx, **values)`` returns ``{output: value}``."""

    type_id: str
    title: str
    category: str
    run: Callable[..., dict[str, Any]]
    inputs: tuple[Socket, ...] = ()
    outputs: tuple[Socket, ...] = ()
    params: tuple[Param, ...] = ()
    version: int = 1
    description: str = ""
    output_node: bool = False  # a sink the executor runs when asked for "all outputs"
    always_run: bool = False  # never served from cache
    # fingerprint(params, run settings) -> str: state of the outside world (a file's mtime+size)
    fingerprint: Callable[[dict[str, Any], dict[str, Any]], str] | None = None
    # run settings that change this node's outputs, so they join its cache key
    settings_in_key: tuple[str, ...] = ()
    # after_run(params) -> {param: new value}: e.g. a seed's increment/randomize control
    after_run: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        names = [s.name for s in self.inputs] + [p.name for p in self.params]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.type_id}: input and param names must be unique")
        outs = [s.name for s in self.outputs]
        if len(outs) != len(set(outs)):
            raise ValueError(f"{self.type_id}: output names must be unique")

    def input(self, name: str) -> Socket | None:
        """The input socket ``name``, including sockets that drive a param."""
        for socket in self.inputs:
            if socket.name == name:
                return socket
        param = self.param(name)
        if param is not None and param.linkable:
            return Socket(param.name, param.socket_type, param.label, optional=True)
        return None

    def output(self, name: str) -> Socket | None:
        for socket in self.outputs:
            if socket.name == name:
                return socket
        return None

    def param(self, name: str) -> Param | None:
        for param in self.params:
            if param.name == name:
                return param
        return None

    def all_inputs(self) -> list[Socket]:
        """Declared inputs followed by the param-driving sockets."""
        return list(self.inputs) + [
            Socket(p.name, p.socket_type, p.label, optional=True) for p in self.params if p.linkable
        ]

    def default_params(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def describe(self) -> dict[str, Any]:
        return {
            "type_id": self.type_id,
            "version": self.version,
            "title": self.title,
            "category": self.category,
            "description": self.description,
            "inputs": [{"name": s.name, "type": s.type, "optional": s.optional} for s in self.inputs],
            "outputs": [{"name": s.name, "type": s.type} for s in self.outputs],
            "params": [p.describe() for p in self.params],
        }


REROUTE = "graph.reroute"


class NodeTypes:
    """Registry of node types by ``type_id``, with aliases for renamed types."""

    def __init__(self) -> None:
        self._types: dict[str, NodeType] = {}
        self.aliases: dict[str, str] = {}
        self.register(NodeType(
            REROUTE, "Reroute", "utility", run=lambda ctx, **v: {"out": v.get("in")},
            inputs=(Socket("in", ANY),), outputs=(Socket("out", ANY),),
            description="Passes its input through; lets a wire take a tidy path.",
        ))

    def register(self, node_type: NodeType) -> NodeType:
        if node_type.type_id in self._types and self._types[node_type.type_id] is not node_type:
            raise ValueError(f"node type {node_type.type_id!r} registered twice")
        self._types[node_type.type_id] = node_type
        return node_type

    def resolve(self, type_id: str) -> str:
        return self.aliases.get(type_id, type_id)

    def get(self, type_id: str) -> NodeType:
        try:
            return self._types[self.resolve(type_id)]
        except KeyError:
            raise KeyError(f"unknown node type {type_id!r}") from None

    def __contains__(self, type_id: object) -> bool:
        return isinstance(type_id, str) and self.resolve(type_id) in self._types

    def __iter__(self):
        return iter(sorted(self._types.values(), key=lambda t: (t.category, t.title)))

    def values(self) -> Iterable[NodeType]:
        return list(self)


@dataclass
class Registry:
    """Socket types + node types: what a graph may contain."""

    sockets: SocketTypes = field(default_factory=SocketTypes)
    nodes: NodeTypes = field(default_factory=NodeTypes)


def base_registry() -> Registry:
    """A registry holding the primitive socket types every graph understands."""
    registry = Registry()
    for name, color in (("INT", "#7fb3d5"), ("FLOAT", "#a9cce3"), ("STRING", "#82e0aa"),
                        ("BOOLEAN", "#f5b7b1")):
        registry.sockets.register(SocketType(name, color))
    # An int is a perfectly good float.
    registry.sockets.register(SocketType("FLOAT", "#a9cce3", accepts=frozenset({"INT"})))
    return registry


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry that ``nodes`` fills with the diffusion node types."""
    global _default
    if _default is None:
        _default = base_registry()
    return _default

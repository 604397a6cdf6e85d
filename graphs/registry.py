"""Socket types and node types: the declarations the model, the file loader,
the executor and the editor all read.

Node types are data: inputs, outputs and params are declared, and ``run`` is a
plain function ``run(ctx, **values) -> dict[output_name, value]``.
"""

from __future__ import annotations

import inspect
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


# "json": an opaque JSON value kept exactly as saved (the params of a placeholder node).
PARAM_KINDS = ("int", "float", "string", "text", "bool", "choice", "seed", "path", "json")
# Kinds that can be driven by a link from another node, and the socket type they take.
PARAM_SOCKET_TYPES = {"int": "INT", "float": "FLOAT", "string": "STRING", "text": "STRING",
                      "seed": "INT", "path": "STRING", "bool": "BOOLEAN", "choice": "STRING",
                      "json": ANY}
# Beyond these magnitudes a number in a workflow file is treated as corrupt.
ABSURD = 1e12
# The one seed range: a seed param's max, the editor's dice and a randomize control.
SEED_MAX = 2**64 - 1
# Param roles that code outside a node acts on: "device" params are what `latentgraph run
# --device` overrides.
PARAM_ROLES = ("", "device")


def _json_depth(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` levels (iterative: no recursion on input)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level >= limit:
                return False
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return True


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
    # What the editor shows for each choice, where that differs from the stored value: the
    # choices are stable ids written to files, the labels are free to change.
    choice_labels: tuple[str, ...] = ()
    tooltip: str = ""
    label: str = ""
    linkable: bool = True  # an input socket of the same name may drive it
    slider: bool = False  # the editor shows a slider beside the spin box
    # For a number: what its minimum means, shown instead of it ("model default" for a size of 0).
    special_value: str = ""
    # For a path: the model folder kind it may name a file in ("checkpoints", "loras", "vae",
    # "embeddings"...): the editor offers the files found there.
    file_kind: str = ""
    overridden_by: str = ""  # an input that, when connected, supplies this value instead
    # The key this param's value is reported under in a run's parameters (the readable PNG
    # chunk): e.g. "seed", "steps". Empty: not reported.
    report: str = ""
    # What code outside the node does with this param (see PARAM_ROLES): "device" params are
    # set by `latentgraph run --device`.
    role: str = ""
    # For a choice that controls another param after each run (a seed's fixed / increment /
    # randomize): the name of the param it drives. The editor pairs the two widgets by it.
    drives: str = ""

    def __post_init__(self) -> None:
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"param {self.name!r}: unknown kind {self.kind!r}")
        if self.role not in PARAM_ROLES:
            raise ValueError(f"param {self.name!r}: unknown role {self.role!r} "
                             f"(known: {', '.join(r for r in PARAM_ROLES if r)})")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"param {self.name!r}: a choice needs choices")
        if self.choice_labels and len(self.choice_labels) != len(self.choices):
            raise ValueError(f"param {self.name!r}: {len(self.choice_labels)} choice labels "
                             f"for {len(self.choices)} choices")
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
            if kind == "path" and "\0" in value:
                return "a path cannot hold a NUL byte"
        elif kind == "choice":
            if not isinstance(value, str):
                return f"expected string, got {type(value).__name__}"
            if self.match_choice(value) is None:
                return f"expected one of {', '.join(self.choices)}; got {value!r}"
        elif kind == "json":
            if not _json_depth(value, 8):
                return "nested more than 8 levels deep"
            if isinstance(value, str) and len(value) > 1_000_000:
                return "string longer than 1,000,000 characters"
        if kind in ("int", "seed", "float"):
            if abs(value) > ABSURD and kind != "seed":
                return f"absurd value {_show(value)}"
            if self.min is not None and value < self.min:
                return f"expected >= {self.min:g}, got {_show(value)}"
            if self.max is not None and value > self.max:
                return f"expected <= {self.max:g}, got {_show(value)}"
        return None

    def match_choice(self, value: str) -> str | None:
        """The declared choice equal to ``value`` or to its label, ignoring case, or None."""
        wanted = value.strip().lower()
        for choice, label in zip(self.choices, self.choice_labels or self.choices):
            if wanted in (choice.lower(), label.lower()):
                return choice
        return None

    def choice_label(self, choice: str) -> str:
        """What the editor shows for ``choice``."""
        if self.choice_labels and choice in self.choices:
            return self.choice_labels[self.choices.index(choice)]
        return choice

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
        elif kind == "json":
            import json
            try:
                value = json.loads(text)
            except ValueError:
                value = text  # a bare word is a string
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
        if self.choice_labels:
            out["choice_labels"] = list(self.choice_labels)
        if self.tooltip:
            out["tooltip"] = self.tooltip
        for key in ("report", "role", "drives", "special_value", "file_kind"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class Socket:
    """A declared input or output of a node type."""

    name: str
    type: str
    label: str = ""
    optional: bool = False
    # For an input: what the node feeding it reports into the run's parameters is reported
    # under "<report>_<key>" (UNet denoise's positive input: the prompt as "positive_prompt").
    report: str = ""


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
    # Runs on every run that needs it and is never served from cache (so what follows it
    # re-runs too): a node with a side effect, such as a sink that writes files, or one whose
    # output must change each time (a random value).
    always_run: bool = False
    # fingerprint(params, run settings) -> str: state of the outside world (a file's mtime+size)
    fingerprint: Callable[[dict[str, Any], dict[str, Any]], str] | None = None
    # run settings that change this node's outputs, so they join its cache key
    settings_in_key: tuple[str, ...] = ()
    # after_run(params) -> {param: new value}: e.g. a seed's increment/randomize control
    after_run: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # The Python distribution that provides this type ("" for LatentGraph's own; set by the
    # plugin loader; for a placeholder, the package that would provide it, where known).
    package: str = ""
    # A stand-in for a type nobody provides (see graphs.placeholders): it keeps what the file
    # says, is drawn as missing, and refuses to run.
    placeholder: bool = False
    # Other names users search for it by: ComfyUI's class names and titles, common words.
    aliases: tuple[str, ...] = ()
    # upgrade(saved type_version, params) -> params for this version: how a file saved by an
    # older version of this type is read (a renamed param, a choice stored differently).
    upgrade: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None

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
            "aliases": list(self.aliases),
            "package": self.package,
        }


def check_signature(node_type: NodeType) -> str | None:
    """Why ``node_type.run`` cannot take what the executor passes, or None if it can.

    The executor calls ``run(ctx, **values)`` with every param and every connected input
    (an optional input may be left out), all by keyword."""
    run = node_type.run
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):
        return None  # a builtin or C callable: nothing to check
    parameters = list(signature.parameters.values())
    positional = [p for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional and not any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return "run must take the run context as its first argument"
    ctx = positional[0] if positional else None  # else *args takes it
    named = {p.name: p for p in parameters
             if p is not ctx and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
    always = [p.name for p in node_type.params] + [s.name for s in node_type.inputs if not s.optional]
    optional = [s.name for s in node_type.inputs if s.optional]
    problems = []
    missing = [n for n in always + optional if n not in named and not takes_any]
    if missing:
        problems.append(f"does not accept {', '.join(map(repr, missing))}")
    no_default = [n for n in optional if n in named and named[n].default is inspect.Parameter.empty]
    if no_default:
        problems.append(f"needs a default for optional input {', '.join(map(repr, no_default))}")
    declared = set(always) | set(optional)
    extra = [n for n, p in named.items() if n not in declared and p.default is inspect.Parameter.empty]
    if extra:
        problems.append(f"requires {', '.join(map(repr, extra))}, which is neither a declared input "
                        "nor a param")
    name = getattr(run, "__qualname__", repr(run))
    return f"run {name}(): " + "; ".join(problems) if problems else None


REROUTE = "graph.reroute"


class NodeTypes:
    """Registry of node types by ``type_id``, with aliases for renamed types."""

    def __init__(self) -> None:
        self._types: dict[str, NodeType] = {}
        self._placeholders: dict[str, NodeType] = {}
        self.aliases: dict[str, str] = {}
        self.register(NodeType(
            REROUTE, "Reroute", "utility", run=lambda ctx, **v: {"out": v.get("in")},
            inputs=(Socket("in", ANY),), outputs=(Socket("out", ANY),),
            description="Passes its input through; lets a wire take a tidy path.",
            aliases=("Reroute", "dot", "wire"),
        ))

    def register(self, node_type: NodeType) -> NodeType:
        """Add a type; refuses a second type under the same id, a placeholder (those go
        through :meth:`add_placeholder`) and a ``run`` that cannot take the declared inputs
        and params."""
        if node_type.placeholder:
            raise ValueError(f"{node_type.type_id}: a placeholder is added with add_placeholder()")
        if node_type.type_id in self._types and self._types[node_type.type_id] is not node_type:
            raise ValueError(f"node type {node_type.type_id!r} registered twice")
        problem = check_signature(node_type)
        if problem:
            raise ValueError(f"node type {node_type.type_id!r}: {problem}")
        self._types[node_type.type_id] = node_type
        self._placeholders.pop(node_type.type_id, None)  # the real type now provides it
        return node_type

    def add_placeholder(self, node_type: NodeType) -> NodeType:
        """Make a placeholder resolvable by :meth:`get` (it is never listed, and ``in``
        stays False: nobody provides the type). A later one for the same id replaces it."""
        if not node_type.placeholder:
            raise ValueError(f"{node_type.type_id}: not a placeholder")
        if node_type.type_id in self._types:
            raise ValueError(f"node type {node_type.type_id!r} is provided; no placeholder needed")
        self._placeholders[node_type.type_id] = node_type
        return node_type

    def placeholder(self, type_id: str) -> NodeType | None:
        return self._placeholders.get(type_id)

    def resolve(self, type_id: str) -> str:
        return self.aliases.get(type_id, type_id)

    def get(self, type_id: str) -> NodeType:
        """The type with this id (or alias), else its placeholder; KeyError if neither."""
        resolved = self.resolve(type_id)
        found = self._types.get(resolved) or self._placeholders.get(resolved)
        if found is None:
            raise KeyError(f"unknown node type {type_id!r}")
        return found

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
    # What graphs.plugins.load_plugins found: one PluginReport per entry point, loaded or not.
    plugins: list = field(default_factory=list)


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

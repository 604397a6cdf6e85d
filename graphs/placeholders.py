"""Placeholder nodes: stand-ins for node types nobody provides (a plugin that is not
installed, a node of a newer app, a ComfyUI custom node).

A placeholder is a :class:`NodeType` with ``placeholder=True``. It keeps what the file
says (type id, type version, params, the sockets its links use), so opening and saving a
workflow writes it back unchanged; it is drawn as missing, and it refuses to run.

Its params are of kind ``"json"`` (any JSON value, kept as saved); its sockets are of type
``ANY`` unless the caller knows better (an importer that read the socket types).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from .registry import ANY, NodeType, Param, Registry, Socket

# The type ids a placeholder may stand for: what a real type id looks like (garbage in a
# file is refused as an unknown type, never turned into a node).
TYPE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$")
MAX_NAME = 200
MAX_VERSION = 10**6


class MissingNodeType(RuntimeError):
    """Raised by a placeholder's run: the type it stands for is not installed."""


def missing_message(type_id: str, package: str = "") -> str:
    source = f" (from package {package!r})" if package else ""
    return (f"node type {type_id!r}{source} is not installed; install the plugin "
            "that provides it to run this node")


SocketSpec = Socket | str | tuple[str, str]


def _sockets(specs: Iterable[SocketSpec] | Mapping[str, str]) -> list[Socket]:
    if isinstance(specs, Mapping):
        specs = list(specs.items())
    out: list[Socket] = []
    for spec in specs:
        if isinstance(spec, Socket):
            out.append(spec)
        elif isinstance(spec, str):
            out.append(Socket(spec, ANY, optional=True))
        else:
            name, type_name = spec
            out.append(Socket(name, type_name, optional=True))
    return out


def make_placeholder(type_id: str, inputs: Iterable[SocketSpec] | Mapping[str, str] = (),
                     outputs: Iterable[SocketSpec] | Mapping[str, str] = (),
                     params: Mapping[str, Any] | Iterable[Param] = (), package: str = "",
                     version: int = 1, title: str = "") -> NodeType:
    """A placeholder node type for ``type_id``.

    ``inputs`` / ``outputs``: socket names (type ``ANY``), ``(name, type)`` pairs, a
    ``{name: type}`` mapping or :class:`Socket` objects. ``params``: ``{name: saved value}``
    (each becomes a ``"json"`` param whose default is that value) or :class:`Param` objects.
    An input named like a param becomes that param's socket (a link drives the param).
    ``package``: the distribution that would provide the type, where known (shown to the
    user). Register it with ``registry.nodes.add_placeholder``."""
    if not isinstance(type_id, str) or not TYPE_ID.fullmatch(type_id):
        raise ValueError(f"not a node type id: {str(type_id)[:80]!r}")
    if isinstance(params, Mapping):
        param_list = [Param(name, "json", value, linkable=False) for name, value in params.items()]
    else:
        param_list = list(params)
    in_sockets = _sockets(inputs)
    param_names = {p.name for p in param_list}
    driven = {s.name for s in in_sockets if s.name in param_names}
    param_list = [replace(p, linkable=True) if p.name in driven else p for p in param_list]
    in_sockets = [s for s in in_sockets if s.name not in param_names]

    def refuse(ctx, **_values):
        raise MissingNodeType(missing_message(type_id, package))

    return NodeType(type_id, title or type_id, "missing", refuse, inputs=tuple(in_sockets),
                    outputs=tuple(_sockets(outputs)), params=tuple(param_list),
                    version=max(1, int(version)), package=package, placeholder=True,
                    description=f"Stands in for {type_id}, which no installed package provides.")


def merge_placeholders(old: NodeType, new: NodeType) -> NodeType:
    """One placeholder with the sockets and params of both (two files, or two nodes of one
    file, may use different sockets of the same missing type)."""
    if old.type_id != new.type_id:
        raise ValueError("placeholders for different types")

    def union(first: Iterable, second: Iterable) -> tuple:
        seen = {item.name for item in first}
        return tuple(first) + tuple(item for item in second if item.name not in seen)

    params = union(old.params, new.params)
    # A name one side links to stays linkable, even where the other side saved it as a param.
    linked = [Socket(p.name, ANY) for p in (*old.params, *new.params) if p.linkable]
    return make_placeholder(old.type_id, list(union(union(old.inputs, new.inputs), linked)),
                            union(old.outputs, new.outputs), params,
                            old.package or new.package, max(old.version, new.version), old.title)


def add_placeholder(registry: Registry, placeholder: NodeType) -> NodeType:
    """Register ``placeholder``, merged with the one already there for its type id."""
    existing = registry.nodes.placeholder(placeholder.type_id)
    if existing is not None:
        placeholder = merge_placeholders(existing, placeholder)
    return registry.nodes.add_placeholder(placeholder)


def placeholders_for_file(data: Any, registry: Registry) -> list[str]:
    """Register placeholders for the node types a workflow file uses that ``registry``
    does not provide, inferring sockets from the file's links and params from its values.
    Reads unvalidated data: anything malformed is left for the validator to name."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return []
    wanted: dict[str, dict[str, Any]] = {}  # type id -> what the file uses of it
    node_types: dict[str, str] = {}  # node id -> missing type id
    for raw in data["nodes"]:
        if not isinstance(raw, dict):
            continue
        type_id, node_id = raw.get("type"), raw.get("id")
        if not isinstance(type_id, str) or not isinstance(node_id, str):
            continue
        type_id = registry.nodes.resolve(type_id)
        if type_id in registry.nodes or not TYPE_ID.fullmatch(type_id):
            continue
        use = wanted.setdefault(type_id, {"params": {}, "inputs": [], "outputs": [], "version": 1})
        node_types[node_id] = type_id
        params = raw.get("params")
        if isinstance(params, dict):
            for name, value in params.items():
                if isinstance(name, str) and len(name) <= MAX_NAME:
                    use["params"].setdefault(name, value)
        version = raw.get("type_version")
        if isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= MAX_VERSION:
            use["version"] = max(use["version"], version)
    links = data.get("links")
    for link in links if isinstance(links, list) else ():
        if not isinstance(link, dict):
            continue
        for end, role in (("from", "outputs"), ("to", "inputs")):
            pair = link.get(end)
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)):
                continue
            type_id = node_types.get(pair[0])
            if type_id is not None and len(pair[1]) <= MAX_NAME and pair[1] not in wanted[type_id][role]:
                wanted[type_id][role].append(pair[1])
    for type_id, use in wanted.items():
        try:
            placeholder = make_placeholder(type_id, use["inputs"], use["outputs"], use["params"],
                                           version=use["version"])
        except ValueError:
            continue  # e.g. a param value the json kind refuses: the validator names it
        add_placeholder(registry, placeholder)
    return list(wanted)


def missing_types(graph) -> dict[str, list[str]]:
    """``{type id: [node ids]}`` of the graph's placeholder nodes."""
    found: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        if graph.node_type(node).placeholder:
            found.setdefault(node.type_id, []).append(node.id)
    return {k: sorted(v) for k, v in sorted(found.items())}

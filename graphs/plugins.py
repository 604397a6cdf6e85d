"""Node plugins: other Python packages add node types through the entry-point group
``latentgraph.nodes``.

An entry point names one of:
- a module with ``NODE_TYPES`` (an iterable of :class:`NodeType`) and, optionally,
  ``SOCKET_TYPES`` (an iterable of :class:`SocketType` its nodes use);
- a callable taking no arguments that returns an iterable of NodeType / SocketType;
- an iterable of them.

A plugin is loaded whole or not at all. It is skipped, with the reason kept in its
:class:`PluginReport`, when it fails to import, provides something else, declares a type
id that is not namespaced (``package.node``) or already taken, redefines a socket type, or
declares a node whose ``run`` cannot take its declared inputs and params. Nothing a plugin
does stops the app.
"""

from __future__ import annotations

import dataclasses
import re
import types
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .registry import NodeType, Registry, SocketType, check_signature

GROUP = "latentgraph.nodes"
# A namespaced type id: "<namespace>.<name>", letters, digits and underscores.
NAMESPACED = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)+$")


@dataclass
class PluginReport:
    """What became of one entry point."""

    name: str  # the entry point's name
    value: str  # what it points at: "module" or "module:attr"
    package: str = ""  # the distribution declaring it
    version: str = ""
    status: str = "skipped"  # "loaded" or "skipped"
    reason: str = ""
    type_ids: tuple[str, ...] = ()
    socket_types: tuple[str, ...] = ()

    @property
    def loaded(self) -> bool:
        return self.status == "loaded"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "package": self.package,
                "version": self.version, "status": self.status, "reason": self.reason,
                "type_ids": list(self.type_ids), "socket_types": list(self.socket_types)}

    def line(self) -> str:
        source = f"{self.package} {self.version}".strip() or "?"
        what = ", ".join(self.type_ids) if self.loaded else self.reason
        return f"{self.name} ({source}): {self.status}: {what}"


class PluginError(Exception):
    """Why a plugin is skipped."""


def _declarations(target: Any) -> list[Any]:
    if isinstance(target, types.ModuleType):
        if not hasattr(target, "NODE_TYPES"):
            raise PluginError(f"module {target.__name__} has no NODE_TYPES")
        items = list(getattr(target, "SOCKET_TYPES", ())) + list(target.NODE_TYPES)
    elif isinstance(target, NodeType | SocketType):
        items = [target]
    elif callable(target):
        try:
            provided = target()
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is reported, never raised
            raise PluginError(f"calling {getattr(target, '__qualname__', target)!r} failed: "
                              f"{type(exc).__name__}: {exc}") from None
        items = _as_list(provided)
    else:
        items = _as_list(target)
    for i, item in enumerate(items):
        if not isinstance(item, NodeType | SocketType):
            raise PluginError(f"item {i} is a {type(item).__name__}, not a NodeType or SocketType")
    return items


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise PluginError(f"provides a {type(value).__name__}, not NodeTypes")
    return list(value)


def _owner(registry: Registry, type_id: str) -> str:
    for report in registry.plugins:
        if report.loaded and type_id in report.type_ids:
            return f"plugin {report.name!r} ({report.package or '?'})"
    return "LatentGraph"


def _check(registry: Registry, items: list[Any], reserved: set[str]) -> None:
    node_types = [t for t in items if isinstance(t, NodeType)]
    if not node_types:
        raise PluginError("provides no node types")
    seen: set[str] = set()
    for node_type in node_types:
        type_id = node_type.type_id
        if not NAMESPACED.fullmatch(type_id):
            raise PluginError(f"type id {type_id!r} is not namespaced (expected 'package.node')")
        if type_id.split(".", 1)[0] in reserved:
            raise PluginError(f"type id {type_id!r} uses LatentGraph's own namespace "
                              f"{type_id.split('.', 1)[0]!r}")
        if type_id in seen:
            raise PluginError(f"duplicate type id {type_id!r} (declared twice by this plugin)")
        if type_id in registry.nodes:
            raise PluginError(f"duplicate type id {type_id!r} (already provided by "
                              f"{_owner(registry, type_id)})")
        if node_type.placeholder:
            raise PluginError(f"{type_id}: a placeholder is not a node type")
        seen.add(type_id)
        problem = check_signature(node_type)
        if problem:
            raise PluginError(f"{type_id}: {problem}")
    sockets = {s.name: s for s in items if isinstance(s, SocketType)}
    for socket in sockets.values():
        if socket.name in registry.sockets and registry.sockets.get(socket.name) != socket:
            raise PluginError(f"socket type {socket.name!r} is already defined differently")
    for node_type in node_types:
        for socket in (*node_type.inputs, *node_type.outputs):
            if socket.type not in registry.sockets and socket.type not in sockets:
                raise PluginError(f"{node_type.type_id}: unknown socket type {socket.type!r} "
                                  f"(socket {socket.name!r}); declare it in SOCKET_TYPES")


def load_entry_point(registry: Registry, entry_point: metadata.EntryPoint,
                     reserved: set[str] | None = None) -> PluginReport:
    """Load one entry point into ``registry``; the report says what became of it."""
    dist = getattr(entry_point, "dist", None)
    report = PluginReport(entry_point.name, entry_point.value,
                          dist.metadata["Name"] if dist is not None else "",
                          dist.version if dist is not None else "")
    if reserved is None:
        reserved = builtin_namespaces(registry)
    try:
        try:
            target = entry_point.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import failure skips it
            raise PluginError(f"import failed: {type(exc).__name__}: {exc}") from None
        items = _declarations(target)
        _check(registry, items, reserved)
    except PluginError as exc:
        report.reason = str(exc)
        registry.plugins.append(report)
        return report
    for item in items:
        if isinstance(item, SocketType) and item.name not in registry.sockets:
            registry.sockets.register(item)
    registered = []
    for item in items:
        if isinstance(item, NodeType):
            if not item.package and report.package:
                item = dataclasses.replace(item, package=report.package)
            registered.append(registry.nodes.register(item).type_id)
    report.status, report.type_ids = "loaded", tuple(registered)
    report.socket_types = tuple(s.name for s in items if isinstance(s, SocketType))
    registry.plugins.append(report)
    return report


def builtin_namespaces(registry: Registry) -> set[str]:
    """The namespaces of the types not added by a plugin (``sd``, ``image``, ...)."""
    from_plugins = {t for r in registry.plugins for t in r.type_ids}
    return {t.type_id.split(".", 1)[0] for t in registry.nodes.values()
            if t.type_id not in from_plugins}


def load_plugins(registry: Registry, group: str = GROUP) -> list[PluginReport]:
    """Load every entry point of ``group`` not loaded into ``registry`` before, in a fixed
    order (package, then entry point name); returns the reports of this call. Called at
    start-up by the CLI and the editor."""
    done = {(r.package, r.name, r.value) for r in registry.plugins}
    found = []
    for entry_point in metadata.entry_points(group=group):
        dist = getattr(entry_point, "dist", None)
        key = (dist.metadata["Name"] if dist is not None else "", entry_point.name, entry_point.value)
        if key not in done:
            done.add(key)
            found.append((key, entry_point))
    reserved = builtin_namespaces(registry)
    return [load_entry_point(registry, ep, reserved) for _, ep in sorted(found, key=lambda f: f[0])]


"""The workflow file: versioned plain JSON, validated whole before anything is built.

A bad file raises :class:`WorkflowError` naming the first problem's path inside the
file (``nodes[3].params.steps: expected >= 1, got 0``); nothing is half-loaded.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import limits, safe_io
from .model import DEFAULT_FRAME_COLOR, FLAG_NAMES, Frame, Graph, Link, Node
from .placeholders import placeholders_for_file
from .registry import Registry, default_registry
from .workflow_check import WorkflowError, _tname, _Validator

FORMAT = "latentgraph"
VERSION = 2
APP_VERSION = "0.1.0"
MAX_FILE_BYTES = limits.MAX_FILE_BYTES


def _v1_to_v2(data: dict) -> dict:
    """Version 1 let a node leave out its ``type_version`` (read as the app's current one); from
    version 2 a node type can change what it stores (``NodeType.upgrade``), so an old file's
    nodes must say the version they were saved with. Every type was at version 1 then."""
    nodes = data.get("nodes")
    if isinstance(nodes, list):
        nodes = [dict(raw, type_version=raw.get("type_version", 1)) if isinstance(raw, dict) else raw
                 for raw in nodes]
    return {**data, "nodes": nodes, "version": 2}


# version -> function turning a dict of that version into the next version.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2}


# ----- writing ----------------------------------------------------------------------
def to_dict(graph: Graph) -> dict[str, Any]:
    """The file representation of ``graph`` (deterministic: sorted by id)."""
    meta = dict(graph.metadata)
    meta.setdefault("app_version", APP_VERSION)
    return {
        "format": FORMAT,
        "version": VERSION,
        "metadata": meta,
        "view": {"zoom": graph.view.zoom, "center": list(graph.view.center)},
        "nodes": [_node_dict(graph.nodes[k]) for k in sorted(graph.nodes)],
        "links": [
            {"id": ln.id, "from": [ln.src_node, ln.src_output], "to": [ln.dst_node, ln.dst_input]}
            for ln in sorted(graph.links.values(), key=lambda ln: ln.id)
        ],
        "frames": [
            {"id": f.id, "title": f.title, "rect": list(f.rect), "color": f.color}
            for f in sorted(graph.frames.values(), key=lambda f: f.id)
        ],
    }


def _node_dict(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "type": node.type_id,
        "type_version": node.type_version,
        "title": node.title,
        "pos": list(node.pos),
        "size": list(node.size) if node.size else None,
        "color": node.color,
        "params": dict(sorted(node.params.items())),
        "flags": {k: bool(node.flags.get(k, False)) for k in FLAG_NAMES},
    }


def dumps(graph: Graph) -> str:
    """The file's text. Checked against the same rules as a file being opened, so a graph that
    would save into a file that cannot be opened (oversized metadata, say) raises WorkflowError
    here, before any file is touched."""
    data = to_dict(graph)
    try:
        _Validator(graph.registry, placeholders=True).workflow(data)
        text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False)
    except WorkflowError as exc:
        raise WorkflowError(exc.path, f"cannot be saved: {exc.message}") from None
    except (TypeError, ValueError) as exc:  # a param or metadata value that is not plain JSON
        raise WorkflowError("", f"cannot be saved: {exc}") from None
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise WorkflowError("", f"cannot be saved: the file would be over {MAX_FILE_BYTES:,} bytes")
    return text


def save(graph: Graph, path: str | os.PathLike, touch: bool = True) -> None:
    """Write atomically: a temp file in the same folder, fsync, then rename over ``path``."""
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    if touch:
        graph.metadata.setdefault("created", now)
        graph.metadata["modified"] = now
        graph.metadata["app_version"] = APP_VERSION
    atomic_write_text(Path(path), dumps(graph) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Atomic, exclusive temp file, keeping the old file's mode and writing through a link
    (graphs/safe_io.py holds the rules)."""
    safe_io.write_atomic(path, data)


# ----- reading ----------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {duplicate[:80]!r}")
    return result


def loads(text: str | bytes, registry: Registry | None = None, file: str | None = None,
          missing: str = "placeholder") -> Graph:
    """Parse, validate, migrate and build a graph; raises WorkflowError.

    ``missing``: what a node type nobody provides becomes: ``"placeholder"`` (a placeholder
    node that keeps what the file says; see graphs.placeholders) or ``"error"`` (refused)."""
    return from_dict(parse(text, file), registry, file, missing)


def parse(text: str | bytes, file: str | None = None) -> Any:
    """The JSON of a workflow file's text, under the file rules (size, UTF-8, no NaN, no duplicate
    keys, no lone surrogates); raises WorkflowError. Importers of other formats read files with it."""
    if isinstance(text, bytes):
        if len(text) > MAX_FILE_BYTES:
            raise WorkflowError("", f"file is {len(text):,} bytes; the limit is {MAX_FILE_BYTES:,}",
                                file)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkflowError("", f"not UTF-8 text (byte {exc.start})", file) from None
    if len(text) > MAX_FILE_BYTES:
        raise WorkflowError("", f"file is too large (limit {MAX_FILE_BYTES:,} bytes)", file)
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise WorkflowError("", "invalid JSON: nested too deeply", file) from None
    except ValueError as exc:
        raise WorkflowError("", f"invalid JSON: {exc}", file) from None
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(data, file)
    return data


# A "\ud800".."\udfff" escape; unpaired, it decodes to a str that cannot be saved as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(data: Any, file: str | None) -> None:
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                child_path = f"{path}.{key}".lstrip(".")
                if not _utf8_ok(key) or isinstance(child, str) and not _utf8_ok(child):
                    raise WorkflowError(child_path, "text contains a lone surrogate (\\ud800-\\udfff)",
                                        file)
                stack.append((child, child_path))
        elif isinstance(value, list):
            for i, child in enumerate(value):
                if isinstance(child, str) and not _utf8_ok(child):
                    raise WorkflowError(f"{path}[{i}]",
                                        "text contains a lone surrogate (\\ud800-\\udfff)", file)
                stack.append((child, f"{path}[{i}]"))


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load(path: str | os.PathLike, registry: Registry | None = None,
         missing: str = "placeholder") -> Graph:
    return from_dict(read_json(path), registry, str(path), missing)


def read_json(path: str | os.PathLike) -> Any:
    """A workflow file's JSON (see :func:`parse`), read safely: never past the size limit, never
    from a FIFO, a device or a folder; raises WorkflowError naming the file."""
    path = Path(path)
    try:
        # A FIFO, a device (/dev/zero) or a directory is refused at once, and a read never goes
        # past the size limit even if the file grows meanwhile.
        with safe_io.open_regular(path, MAX_FILE_BYTES) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise WorkflowError("", f"cannot read: {exc.strerror}", str(path)) from None
    except ValueError as exc:
        raise WorkflowError("", str(exc).removeprefix(f"{path}: "), str(path)) from None
    return parse(data, str(path))


def from_dict(data: Any, registry: Registry | None = None, file: str | None = None,
              missing: str = "placeholder") -> Graph:
    if missing not in ("placeholder", "error"):
        raise ValueError(f"missing={missing!r}: expected 'placeholder' or 'error'")
    registry = registry or default_registry()
    try:
        data = migrate(data)
        if missing == "placeholder":
            placeholders_for_file(data, registry)
        data = upgrade_nodes(data, registry)
        _Validator(registry, missing == "placeholder").workflow(data)
    except WorkflowError as exc:
        exc.file = file
        raise WorkflowError(exc.path, exc.message, file) from None
    return _build(data, registry)


def migrate(data: Any) -> dict:
    if not isinstance(data, dict):
        raise WorkflowError("", f"expected a JSON object at the top, got {_tname(data)}")
    if data.get("format") != FORMAT:
        raise WorkflowError("format", f"not a LatentGraph workflow (expected \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise WorkflowError("version", f"expected int, got {_tname(version)}")
    if version > VERSION:
        raise WorkflowError("version", f"file version {version} is newer than this app "
                                       f"understands ({VERSION}); please update LatentGraph")
    if version < 1:
        raise WorkflowError("version", f"unknown version {version}")
    while version < VERSION:
        data = MIGRATIONS[version](data)
        version = data["version"]
    return data


def upgrade_nodes(data: dict, registry: Registry) -> dict:
    """Bring each node saved by an older version of its type up to the current one, through the
    type's own ``upgrade``. Reads unvalidated data: anything malformed is left for the validator."""
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        return data
    upgraded = []
    for i, raw in enumerate(nodes):
        node_type = None
        if isinstance(raw, dict) and isinstance(raw.get("type"), str) and raw["type"] in registry.nodes:
            node_type = registry.nodes.get(raw["type"])
        version = raw.get("type_version") if node_type is not None else None
        if (node_type is None or node_type.placeholder or isinstance(version, bool)
                or not isinstance(version, int) or not 1 <= version < node_type.version):
            upgraded.append(raw)
            continue
        params = raw.get("params", {})
        if isinstance(params, dict) and node_type.upgrade is not None:
            try:
                params = node_type.upgrade(version, dict(params))
            except (ValueError, TypeError, KeyError) as exc:
                raise WorkflowError(f"nodes[{i}].params", f"cannot read {node_type.title} version "
                                                          f"{version}: {exc}") from None
        upgraded.append({**raw, "params": params, "type_version": node_type.version})
    return {**data, "nodes": upgraded}


def _build(data: dict, registry: Registry) -> Graph:
    graph = Graph(registry)
    graph.metadata = dict(data.get("metadata", {}))
    for raw in data["nodes"]:
        node_type = registry.nodes.get(raw["type"])
        version = node_type.version
        if node_type.placeholder:  # exactly what the file says, so it saves back unchanged
            params = dict(raw.get("params", {}))
            version = raw.get("type_version", version)
        else:
            params = node_type.default_params()
            for name, value in raw.get("params", {}).items():
                param = node_type.param(name)
                # a choice is kept as declared, however the file spelled it (case, label)
                params[name] = param.match_choice(value) if param.kind == "choice" else value
        flags = dict.fromkeys(FLAG_NAMES, False)
        flags.update(raw.get("flags", {}))
        size = raw.get("size")
        graph.add_node(Node(
            raw["id"], node_type.type_id, version, raw.get("title", node_type.title),
            (float(raw["pos"][0]), float(raw["pos"][1])), params, flags,
            (float(size[0]), float(size[1])) if size else None, raw.get("color"),
        ))
    for i, raw in enumerate(data["links"]):
        graph.add_link(Link(raw.get("id", f"link{i}"), raw["from"][0], raw["from"][1],
                            raw["to"][0], raw["to"][1]), check=False)
    for raw in data.get("frames", []):
        graph.add_frame(Frame(raw["id"], raw["title"], tuple(float(v) for v in raw["rect"]),
                              raw.get("color") or DEFAULT_FRAME_COLOR))
    view = data.get("view")
    if view:
        graph.set_view(view["zoom"], view["center"])
    return graph

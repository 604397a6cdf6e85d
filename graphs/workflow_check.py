"""Whole-file validation of a workflow before anything is built: every problem is refused with
its path inside the file (``nodes[3].params.steps: expected >= 1, got 0``)."""

from __future__ import annotations

from typing import Any

from . import limits
from .model import FLAG_NAMES, Graph, Link, Node
from .registry import ABSURD, Registry, _show


class WorkflowError(ValueError):
    """A workflow that cannot be loaded. ``path`` locates the problem inside the file."""

    def __init__(self, path: str, message: str, file: str | None = None) -> None:
        self.path, self.message, self.file = path, message, file
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{path}: {message}" if path else f"{where}{message}")


def _tname(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "bool", int: "int",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


class _Validator:
    def __init__(self, registry: Registry, placeholders: bool = False) -> None:
        self.registry = registry
        self.placeholders = placeholders  # a placeholder stands for a type nobody provides

    def keys(self, obj: Any, path: str, required: set[str], optional: set[str] = frozenset()) -> None:
        if not isinstance(obj, dict):
            raise WorkflowError(path, f"expected object, got {_tname(obj)}")
        for key in required:
            if key not in obj:
                raise WorkflowError(f"{path}.{key}".lstrip("."), "missing")
        for key in obj:
            if key not in required and key not in optional:
                raise WorkflowError(f"{path}.{key}".lstrip("."), "unexpected key")

    def number(self, value: Any, path: str, lo: float = -ABSURD, hi: float = ABSURD) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WorkflowError(path, f"expected number, got {_tname(value)}")
        # Compare before anything converts: a huge int overflows float() (NaN fails both ways).
        if not lo <= value <= hi:
            raise WorkflowError(path, f"number out of range [{lo:g}, {hi:g}]: {_show(value)}")
        return float(value)

    def string(self, value: Any, path: str, max_len: int = limits.MAX_STRING) -> str:
        if not isinstance(value, str):
            raise WorkflowError(path, f"expected string, got {_tname(value)}")
        if len(value) > max_len:
            raise WorkflowError(path, f"string longer than {max_len} characters")
        return value

    def ident(self, value: Any, path: str) -> str:
        self.string(value, path)
        problem = limits.id_problem(value)
        if problem:
            raise WorkflowError(path, problem)
        return value

    def array(self, value: Any, path: str, length: int | None = None) -> list:
        if not isinstance(value, list):
            raise WorkflowError(path, f"expected array, got {_tname(value)}")
        if length is not None and len(value) != length:
            raise WorkflowError(path, f"expected {length} items, got {len(value)}")
        if len(value) > limits.MAX_ITEMS:
            raise WorkflowError(path, f"more than {limits.MAX_ITEMS} items")
        return value

    def point(self, value: Any, path: str, n: int = 2, lo: float = -limits.MAX_COORD,
              hi: float = limits.MAX_COORD) -> None:
        for i, v in enumerate(self.array(value, path, n)):
            self.number(v, f"{path}[{i}]", lo, hi)

    def color(self, value: Any, path: str) -> None:
        if value is not None and not (isinstance(value, str) and limits.COLOR_PATTERN.fullmatch(value)):
            raise WorkflowError(path, "expected a colour like \"#12ab34\" or null")

    def workflow(self, data: dict) -> None:
        self.keys(data, "", {"format", "version", "nodes", "links"},
                  {"metadata", "view", "frames"})
        if "metadata" in data:
            # Metadata is inert JSON (no code): shallow lists and objects are fine.
            problem = limits.metadata_problem(data["metadata"])
            if problem:
                raise WorkflowError(*problem)
        if "view" in data:
            view = data["view"]
            self.keys(view, "view", {"zoom", "center"})
            self.number(view["zoom"], "view.zoom", limits.MIN_ZOOM, limits.MAX_ZOOM)
            self.point(view["center"], "view.center")
        ids: dict[str, dict] = {}
        for i, node in enumerate(self.array(data["nodes"], "nodes")):
            self.node(node, f"nodes[{i}]")
            if node["id"] in ids:
                raise WorkflowError(f"nodes[{i}].id", f"duplicate node id {node['id']!r}")
            ids[node["id"]] = node
        self.links(data["links"], ids)
        seen: set[str] = set()
        for i, frame in enumerate(self.array(data.get("frames", []), "frames")):
            path = f"frames[{i}]"
            self.keys(frame, path, {"id", "title", "rect"}, {"color"})
            self.ident(frame["id"], f"{path}.id")
            if frame["id"] in seen:
                raise WorkflowError(f"{path}.id", f"duplicate frame id {frame['id']!r}")
            seen.add(frame["id"])
            self.string(frame["title"], f"{path}.title", limits.MAX_TITLE)
            self.point(frame["rect"], f"{path}.rect", 4)
            if frame["rect"][2] < 0 or frame["rect"][3] < 0:
                raise WorkflowError(f"{path}.rect", "width and height must be >= 0")
            self.color(frame.get("color"), f"{path}.color")

    def node(self, node: Any, path: str) -> None:
        self.keys(node, path, {"id", "type", "pos"},
                  {"type_version", "title", "size", "color", "params", "flags"})
        self.ident(node["id"], f"{path}.id")
        type_id = self.string(node["type"], f"{path}.type", limits.MAX_TYPE_ID)
        if type_id not in self.registry.nodes and not (
                self.placeholders and self.registry.nodes.placeholder(self.registry.nodes.resolve(type_id))):
            raise WorkflowError(f"{path}.type", f"unknown node type {type_id!r}")
        node_type = self.registry.nodes.get(type_id)
        if "type_version" in node:
            version = node["type_version"]
            if isinstance(version, bool) or not isinstance(version, int):
                raise WorkflowError(f"{path}.type_version", f"expected int, got {_tname(version)}")
            if version < 1:
                raise WorkflowError(f"{path}.type_version", f"expected a version >= 1, got {version}")
            if version > node_type.version:
                raise WorkflowError(f"{path}.type_version",
                                    f"{type_id} version {version} is newer than this app's "
                                    f"({node_type.version})")
        if "title" in node:
            self.string(node["title"], f"{path}.title", limits.MAX_TITLE)
        self.point(node["pos"], f"{path}.pos")
        if node.get("size") is not None:
            self.point(node["size"], f"{path}.size", 2, 0, limits.MAX_NODE_SIZE)
        self.color(node.get("color"), f"{path}.color")
        params = node.get("params", {})
        if not isinstance(params, dict):
            raise WorkflowError(f"{path}.params", f"expected object, got {_tname(params)}")
        for name, value in params.items():
            param = node_type.param(name)
            if param is None:
                raise WorkflowError(f"{path}.params.{name}", f"{node_type.title} has no such param")
            error = param.check(value)
            if error:
                raise WorkflowError(f"{path}.params.{name}", error)
        flags = node.get("flags", {})
        if not isinstance(flags, dict):
            raise WorkflowError(f"{path}.flags", f"expected object, got {_tname(flags)}")
        for name, value in flags.items():
            if name not in FLAG_NAMES:
                raise WorkflowError(f"{path}.flags.{name}", "unknown flag")
            if not isinstance(value, bool):
                raise WorkflowError(f"{path}.flags.{name}", f"expected bool, got {_tname(value)}")

    def links(self, links: Any, nodes: dict[str, dict]) -> None:
        graph = Graph(self.registry)
        for node in nodes.values():
            graph.add_node(Node(node["id"], self.registry.nodes.resolve(node["type"]), 1,
                                node.get("title", node["id"])))
        paths: dict[str, str] = {}  # link id -> where it is in the file, in file order
        for i, link in enumerate(self.array(links, "links")):
            path = f"links[{i}]"
            self.keys(link, path, {"from", "to"}, {"id"})
            link_id = self.ident(link.get("id", f"link{i}"), f"{path}.id")
            if link_id in paths:
                raise WorkflowError(f"{path}.id", f"duplicate link id {link_id!r}")
            ends = []
            for end in ("from", "to"):
                pair = self.array(link[end], f"{path}.{end}", 2)
                node_id = self.string(pair[0], f"{path}.{end}[0]", 64)
                socket = self.string(pair[1], f"{path}.{end}[1]", limits.MAX_SOCKET_NAME)
                if node_id not in nodes:
                    raise WorkflowError(f"{path}.{end}[0]", f"no node with id {node_id!r}")
                ends.append((node_id, socket))
            (src, out), (dst, inp) = ends
            src_type = graph.node_type(src)
            dst_type = graph.node_type(dst)
            if src_type.output(out) is None:
                raise WorkflowError(f"{path}.from[1]", f"{src_type.title} has no output {out!r}")
            if dst_type.input(inp) is None:
                raise WorkflowError(f"{path}.to[1]", f"{dst_type.title} has no input {inp!r}")
            if graph.inbound(dst, inp) is not None:
                raise WorkflowError(f"{path}.to", f"input {inp!r} of node {dst} has two links")
            if src == dst:
                raise WorkflowError(path, "a node cannot feed itself")
            graph.add_link(Link(link_id, src, out, dst, inp), check=False)
            paths[link_id] = path
        # Types and cycles once all links are in: linear in the graph's size, so a chain of
        # thousands of reroutes validates as fast as any other graph.
        memo: dict = {}
        for link_id, path in paths.items():
            link = graph.links[link_id]
            problem = graph.type_problem(link.src_node, link.src_output, link.dst_node, link.dst_input, memo)
            if problem:
                raise WorkflowError(path, problem)
        cycle = _cycle(graph)
        if cycle:
            titles = " -> ".join(graph.nodes[graph.links[i].src_node].title for i in cycle)
            order = {link_id: i for i, link_id in enumerate(paths)}
            closing = max(cycle, key=order.__getitem__)  # the link that, read in order, closes it
            raise WorkflowError(paths[closing], f"would create a cycle: {titles}")


def _cycle(graph: Graph) -> list[str]:
    """The link ids of one cycle, or [] (Kahn's algorithm, then a walk inside what is left:
    linear, and no recursion however deep the graph)."""
    indegree = dict.fromkeys(graph.nodes, 0)
    for link in graph.links.values():
        indegree[link.dst_node] += 1
    ready = [node for node, count in indegree.items() if count == 0]
    while ready:
        for link in graph.outbound(ready.pop()):
            indegree[link.dst_node] -= 1
            if indegree[link.dst_node] == 0:
                ready.append(link.dst_node)
    left = {node for node, count in indegree.items() if count}
    if not left:
        return []
    # Every node left has an inbound link from another node left: follow those backwards
    # until a node repeats; the links walked since its first visit form a cycle.
    feeding: dict[str, Link] = {}
    for link in graph.links.values():
        if link.src_node in left and link.dst_node in left:
            feeding.setdefault(link.dst_node, link)
    node, walked, first_seen = next(iter(left)), [], {}
    while node not in first_seen:
        first_seen[node] = len(walked)
        link = feeding[node]
        walked.append(link.id)
        node = link.src_node
    return walked[first_seen[node]:][::-1]

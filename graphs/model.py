"""The graph model: nodes, links, frames and the view, with an event on every mutation.

Reroutes are ordinary nodes of type ``graph.reroute`` so they can fan out and
carry any socket type. Selection is view state and does not live here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import events as ev
from . import socket_types
from .elements import DEFAULT_FRAME_COLOR, FLAG_NAMES, Frame, Link, Node, View, new_id  # noqa: F401
from .events import Emitter
from .limits import MAX_TITLE, MAX_ZOOM, MIN_ZOOM, GraphError, check_id, clamp_point, clamp_rect, clamp_size, normalise_color
from .registry import NodeType, Registry, default_registry


class Graph:
    """Nodes, links and frames keyed by stable string ids.

    Events (on ``self.events``): the classes in ``graphs.events.MODEL_EVENTS``.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or default_registry()
        self.nodes: dict[str, Node] = {}
        self.links: dict[str, Link] = {}
        self.frames: dict[str, Frame] = {}
        self.view = View()
        self.metadata: dict[str, Any] = {}
        self.events = Emitter()
        self._inbound: dict[tuple[str, str], str] = {}  # (dst_node, dst_input) -> link id
        self._outbound: dict[str, dict[str, Link]] = {}  # src node -> {link id: link}, in link order
        # src node -> {dst node: number of links}; built on first use by the cycle check, then
        # kept up to date by add_link/remove_link (links change through those methods only).
        self._succ: dict[str, dict[str, int]] | None = None
        self._journal: list[Callable[[], object]] | None = None  # inverses, inside transaction()

    # ----- transactions -----------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All of the changes made inside, or none of them: every mutation records its inverse,
        and an exception replays them backwards (through the same methods, so listeners such as
        the editor follow the rollback) before it propagates. Nests."""
        outer = self._journal is None
        if outer:
            self._journal = []
        journal = self._journal
        mark = len(journal)
        try:
            yield
        except BaseException:
            inverses = journal[mark:]
            del journal[mark:]
            self._journal = None  # the rollback itself is not recorded
            try:
                for inverse in reversed(inverses):
                    inverse()
            finally:
                self._journal = None if outer else journal
            raise
        if outer:
            self._journal = None

    def _record(self, inverse: Callable[[], object]) -> None:
        if self._journal is not None:
            self._journal.append(inverse)

    def copy(self) -> Graph:
        """An independent snapshot (no listeners): what a run or a sweep cell works on while
        the user goes on editing this graph. Links are immutable and shared."""
        other = Graph(self.registry)
        other.metadata = copy.deepcopy(self.metadata)
        other.view = self.view
        for node in self.nodes.values():
            other.nodes[node.id] = Node(node.id, node.type_id, node.type_version, node.title, node.pos,
                                        copy.deepcopy(node.params), dict(node.flags), node.size, node.color)
        other.links = dict(self.links)
        other._inbound = dict(self._inbound)
        other._outbound = {k: dict(v) for k, v in self._outbound.items()}
        other.frames = {k: f.clone() for k, f in self.frames.items()}
        return other

    # ----- node types -------------------------------------------------------------
    def node_type(self, node_or_id: Node | str) -> NodeType:
        node = self.nodes[node_or_id] if isinstance(node_or_id, str) else node_or_id
        return self.registry.nodes.get(node.type_id)

    def create_node(self, type_id: str, pos: tuple[float, float] = (0.0, 0.0),
                    title: str | None = None, params: dict[str, Any] | None = None,
                    node_id: str | None = None) -> Node:
        """Make (but do not add) a node of ``type_id`` with default params."""
        node_type = self.registry.nodes.get(type_id)
        values = node_type.default_params()
        for name, value in (params or {}).items():
            param = node_type.param(name)
            if param is None:
                raise GraphError(f"{node_type.title}: no param named {name!r}")
            error = param.check(value)
            if error:
                raise GraphError(f"{node_type.title}.{name}: {error}")
            values[name] = value
        return Node(node_id or new_id(), node_type.type_id, node_type.version,
                    title if title is not None else node_type.title,
                    (float(pos[0]), float(pos[1])), values)

    # ----- nodes ------------------------------------------------------------------
    def add_node(self, node: Node) -> Node:
        """Add ``node``, refusing a bad or duplicate id and bringing its title, position and
        size inside the file's limits (see graphs.limits)."""
        check_id(node.id)
        if node.id in self.nodes:
            raise GraphError(f"duplicate node id {node.id}")
        self.registry.nodes.get(node.type_id)  # raises for an unknown type
        node.title = str(node.title)[:MAX_TITLE]
        node.pos = clamp_point(node.pos)  # type: ignore[assignment]
        node.size = clamp_size(node.size)
        node.color = normalise_color(node.color)
        self.nodes[node.id] = node
        self._record(lambda: self.remove_node(node.id))
        self.events.emit(ev.NodeAdded(node))
        return node

    def remove_node(self, node_id: str) -> Node:
        for link in self.links_of(node_id):
            self.remove_link(link.id)
        node = self.nodes.pop(node_id)
        self._record(lambda: self.add_node(node))
        self.events.emit(ev.NodeRemoved(node))
        return node

    def move_node(self, node_id: str, pos: tuple[float, float]) -> None:
        node = self.nodes[node_id]
        old, node.pos = node.pos, clamp_point(pos)
        self._record(lambda: self.move_node(node_id, old))
        self.events.emit(ev.NodeMoved(node))

    def set_param(self, node_id: str, name: str, value: Any) -> None:
        node = self.nodes[node_id]
        param = self.node_type(node).param(name)
        if param is None:
            raise GraphError(f"{node.title}: no param named {name!r}")
        error = param.check(value)
        if error:
            raise GraphError(f"{node.title}.{name}: {error}")
        if param.kind == "choice":
            value = param.match_choice(value)  # stored as declared, however it was spelled
        had, old = name in node.params, node.params.get(name)
        node.params[name] = value
        self._record(lambda: self._restore_param(node_id, name, had, old))
        self.events.emit(ev.NodeChanged(node, "params", name))

    def _restore_param(self, node_id: str, name: str, had: bool, old: Any) -> None:
        node = self.nodes[node_id]
        if had:
            node.params[name] = old
        else:
            node.params.pop(name, None)
        self.events.emit(ev.NodeChanged(node, "params", name))

    def set_flag(self, node_id: str, flag: str, value: bool) -> None:
        if flag not in FLAG_NAMES:
            raise GraphError(f"unknown flag {flag!r}")
        node = self.nodes[node_id]
        old, node.flags[flag] = bool(node.flags.get(flag, False)), bool(value)
        self._record(lambda: self.set_flag(node_id, flag, old))
        self.events.emit(ev.NodeChanged(node, "flags", flag))

    def set_title(self, node_id: str, title: str) -> None:
        node = self.nodes[node_id]
        old, node.title = node.title, title[:MAX_TITLE]
        self._record(lambda: self.set_title(node_id, old))
        self.events.emit(ev.NodeChanged(node, "title", "title"))

    def set_size(self, node_id: str, size: tuple[float, float] | None) -> None:
        node = self.nodes[node_id]
        old, node.size = node.size, clamp_size(size)
        self._record(lambda: self.set_size(node_id, old))
        self.events.emit(ev.NodeChanged(node, "size", "size"))

    def set_color(self, node_id: str, color: str | None) -> None:
        node = self.nodes[node_id]
        old, node.color = node.color, normalise_color(color)
        self._record(lambda: self.set_color(node_id, old))
        self.events.emit(ev.NodeChanged(node, "color", "color"))

    def find_node(self, key: str) -> Node:
        """A node by id or by (unique) title."""
        if key in self.nodes:
            return self.nodes[key]
        matches = [n for n in self.nodes.values() if n.title == key]
        if not matches:
            raise GraphError(f"no node with id or title {key!r}")
        if len(matches) > 1:
            raise GraphError(f"{len(matches)} nodes are titled {key!r}; use the node id")
        return matches[0]

    # ----- links ------------------------------------------------------------------
    def links_of(self, node_id: str) -> list[Link]:
        return [ln for ln in self.links.values() if node_id in (ln.src_node, ln.dst_node)]
    def inbound(self, node_id: str, input_name: str) -> Link | None:
        link_id = self._inbound.get((node_id, input_name))
        return self.links[link_id] if link_id else None

    def param_overridden(self, node_id: str, param_name: str) -> bool:
        """Whether a link (to the param's own socket or to the input declared in
        ``Param.overridden_by``) supplies this param instead of its widget."""
        if self.inbound(node_id, param_name) is not None:
            return True
        param = self.node_type(node_id).param(param_name)
        return bool(param and param.overridden_by
                    and self.inbound(node_id, param.overridden_by) is not None)

    def outbound(self, node_id: str, output_name: str | None = None) -> list[Link]:
        links = self._outbound.get(node_id, {}).values()
        return [ln for ln in links if output_name is None or ln.src_output == output_name]

    # The socket types behind reroutes: walks that live in graphs/socket_types.py.
    def output_type(self, node_id: str, output_name: str, memo: dict | None = None) -> str:
        """The socket type an output carries; a reroute carries its source's type."""
        return socket_types.output_type(self, node_id, output_name, memo)

    def input_type(self, node_id: str, input_name: str, memo: dict | None = None) -> str:
        """The socket type an input accepts; a reroute takes what its outputs feed."""
        return socket_types.input_type(self, node_id, input_name, memo)

    def type_problem(self, src_node: str, src_output: str, dst_node: str, dst_input: str,
                     memo: dict | None = None) -> str:
        """Why the output's type cannot feed the input ("" when it can)."""
        return socket_types.type_problem(self, src_node, src_output, dst_node, dst_input, memo)

    def can_connect(self, src_node: str, src_output: str, dst_node: str,
                    dst_input: str) -> tuple[bool, str]:
        """Whether the link may be made, and why not. Replacing an existing input link is fine."""
        if src_node not in self.nodes or dst_node not in self.nodes:
            return False, "no such node"
        if src_node == dst_node:
            return False, "a node cannot feed itself"
        src, dst = self.nodes[src_node], self.nodes[dst_node]
        src_socket = self.node_type(src).output(src_output)
        dst_socket = self.node_type(dst).input(dst_input)
        if src_socket is None:
            return False, f"{src.title} has no output {src_output!r}"
        if dst_socket is None:
            return False, f"{dst.title} has no input {dst_input!r}"
        problem = self.type_problem(src_node, src_output, dst_node, dst_input)
        if problem:
            return False, problem
        if self._reaches(dst_node, src_node):
            return False, f"would create a cycle: {dst.title} already feeds {src.title}"
        return True, ""

    def _successors(self) -> dict[str, dict[str, int]]:
        if self._succ is None:
            succ: dict[str, dict[str, int]] = {}
            for ln in self.links.values():
                targets = succ.setdefault(ln.src_node, {})
                targets[ln.dst_node] = targets.get(ln.dst_node, 0) + 1
            self._succ = succ
        return self._succ

    def _reaches(self, start: str, target: str) -> bool:
        """Whether ``target`` is downstream of ``start`` (walks only start's descendants)."""
        succ = self._successors()
        stack, seen = [start], {start}
        while stack:
            current = stack.pop()
            if current == target:
                return True
            for nxt in succ.get(current, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def add_link(self, link: Link, check: bool = True) -> Link:
        if check:
            ok, why = self.can_connect(link.src_node, link.src_output, link.dst_node, link.dst_input)
            if not ok:
                raise GraphError(why)
        check_id(link.id)
        if link.id in self.links:
            raise GraphError(f"duplicate link id {link.id}")
        if (link.dst_node, link.dst_input) in self._inbound:
            raise GraphError(f"input {link.dst_input!r} of {self.nodes[link.dst_node].title} "
                             "is already connected")
        self.links[link.id] = link
        self._inbound[(link.dst_node, link.dst_input)] = link.id
        self._outbound.setdefault(link.src_node, {})[link.id] = link
        if self._succ is not None:
            targets = self._succ.setdefault(link.src_node, {})
            targets[link.dst_node] = targets.get(link.dst_node, 0) + 1
        self._record(lambda: self.remove_link(link.id))
        self.events.emit(ev.LinkAdded(link))
        return link

    def connect(self, src_node: str, src_output: str, dst_node: str, dst_input: str) -> Link:
        """Link an output to an input, replacing whatever fed that input."""
        ok, why = self.can_connect(src_node, src_output, dst_node, dst_input)
        if not ok:
            raise GraphError(why)
        old = self.inbound(dst_node, dst_input)
        if old is not None:
            self.remove_link(old.id)
        return self.add_link(Link(new_id(), src_node, src_output, dst_node, dst_input), check=False)

    def remove_link(self, link_id: str) -> Link:
        link = self.links.pop(link_id)
        del self._inbound[(link.dst_node, link.dst_input)]
        outgoing = self._outbound[link.src_node]
        del outgoing[link_id]
        if not outgoing:
            del self._outbound[link.src_node]
        if self._succ is not None:
            targets = self._succ[link.src_node]
            targets[link.dst_node] -= 1
            if not targets[link.dst_node]:
                del targets[link.dst_node]
        self._record(lambda: self.add_link(link, check=False))
        self.events.emit(ev.LinkRemoved(link))
        return link

    # ----- frames -----------------------------------------------------------------
    def add_frame(self, frame: Frame) -> Frame:
        check_id(frame.id)
        if frame.id in self.frames:
            raise GraphError(f"duplicate frame id {frame.id}")
        frame.title = str(frame.title)[:MAX_TITLE]
        frame.rect = clamp_rect(frame.rect)
        frame.color = normalise_color(frame.color) or DEFAULT_FRAME_COLOR
        self.frames[frame.id] = frame
        self._record(lambda: self.remove_frame(frame.id))
        self.events.emit(ev.FrameAdded(frame))
        return frame

    def remove_frame(self, frame_id: str) -> Frame:
        frame = self.frames.pop(frame_id)
        self._record(lambda: self.add_frame(frame))
        self.events.emit(ev.FrameRemoved(frame))
        return frame

    def set_frame(self, frame_id: str, *, title: str | None = None,
                  rect: tuple[float, float, float, float] | None = None,
                  color: str | None = None) -> None:
        frame = self.frames[frame_id]
        old = (frame.title, frame.rect, frame.color)
        if title is not None:
            frame.title = str(title)[:MAX_TITLE]
        if rect is not None:
            frame.rect = clamp_rect(rect)
        if color is not None:
            frame.color = normalise_color(color) or DEFAULT_FRAME_COLOR
        self._record(lambda: self.set_frame(frame_id, title=old[0], rect=old[1], color=old[2]))
        self.events.emit(ev.FrameChanged(frame))

    def nodes_in_frame(self, frame_id: str) -> list[Node]:
        x, y, w, h = self.frames[frame_id].rect
        return [n for n in self.nodes.values()
                if x <= n.pos[0] <= x + w and y <= n.pos[1] <= y + h]

    # ----- view and whole-graph ---------------------------------------------------
    def set_view(self, zoom: float, center: tuple[float, float]) -> None:
        zoom = float(zoom)
        if not math.isfinite(zoom):
            raise GraphError(f"not a finite zoom: {zoom!r}")
        old, self.view = self.view, View(min(MAX_ZOOM, max(MIN_ZOOM, zoom)), clamp_point(center))
        self._record(lambda: self.set_view(old.zoom, old.center))
        self.events.emit(ev.ViewChanged(self.view))

    def clear(self) -> None:
        self.nodes.clear()
        self.links.clear()
        self.frames.clear()
        self._inbound.clear()
        self._outbound.clear()
        self._succ = None
        self.view = View()
        self.metadata = {}
        self.events.emit(ev.Cleared())

    def replace_with(self, other: Graph) -> None:
        """Take over ``other``'s contents (used by Open: listeners stay attached)."""
        self.clear()
        self.metadata = dict(other.metadata)
        for node in other.nodes.values():
            self.add_node(node.clone())
        for link in other.links.values():
            self.add_link(link, check=False)
        for frame in other.frames.values():
            self.add_frame(frame.clone())
        self.set_view(other.view.zoom, other.view.center)

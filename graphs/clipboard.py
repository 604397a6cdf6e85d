"""Copied fragments as text, so nodes travel through the system clipboard (between windows,
into a text editor, or from a workflow file someone pasted into a chat)."""

from __future__ import annotations

import json

from .commands import Fragment
from .model import Graph, Link
from .registry import Registry
from .workflow import WorkflowError, from_dict, to_dict


def fragment_to_text(graph: Graph, fragment: Fragment) -> str:
    """A valid workflow of the fragment; links from outside it are kept under ``input_links``."""
    inside = {n.id for n in fragment.nodes}
    piece = Graph(graph.registry)
    for node in fragment.nodes:
        piece.add_node(node.clone())
    for frame in fragment.frames:
        piece.add_frame(frame.clone())
    external = []
    for link in fragment.links:
        if link.src_node in inside and link.dst_node in inside:
            piece.add_link(link, check=False)
        elif link.dst_node in inside:
            external.append({"from": [link.src_node, link.src_output],
                             "to": [link.dst_node, link.dst_input]})
    data = to_dict(piece)
    data["metadata"] = {"clipboard": True}
    data["input_links"] = external
    return json.dumps(data, ensure_ascii=False)


def fragment_from_text(text: str, registry: Registry) -> Fragment | None:
    """The fragment in ``text`` (a copied fragment or any workflow), or None if it is not one."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != "latentgraph":
        return None
    external = data.pop("input_links", [])
    try:
        graph = from_dict(data, registry)
    except WorkflowError:
        return None
    links = list(graph.links.values())
    if isinstance(external, list):
        for i, raw in enumerate(external):
            try:
                (src, out), (dst, inp) = raw["from"], raw["to"]
            except (TypeError, KeyError, ValueError):
                continue
            if dst in graph.nodes and all(isinstance(v, str) for v in (src, out, inp)):
                links.append(Link(f"external{i}", src, out, dst, inp))
    return Fragment(list(graph.nodes.values()), links, list(graph.frames.values()))

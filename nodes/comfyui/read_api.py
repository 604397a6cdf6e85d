"""Read ComfyUI's API prompt JSON (``{"3": {"class_type": "KSampler", "inputs": {...}}}``) into a
:class:`ComfyGraph`, laid out left to right by networkx layering (an API prompt has no positions):
each node's column is its longest path from a source, rows in the order of the file."""

from __future__ import annotations

from typing import Any

from .model import ComfyFormatError, ComfyGraph, ComfyNode
from .read_ui import MAX_NODES

COLUMN_WIDTH, ROW_HEIGHT = 420.0, 300.0


def looks_like_api(data: Any) -> bool:
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):  # what /prompt is sent
        data = data["prompt"]
    return (isinstance(data, dict) and bool(data)
            and all(isinstance(v, dict) and isinstance(v.get("class_type"), str) for v in data.values()))


def read_api(data: dict) -> ComfyGraph:
    if isinstance(data.get("prompt"), dict):
        data = data["prompt"]
    if len(data) > MAX_NODES:
        raise ComfyFormatError("", f"more than {MAX_NODES} nodes")
    graph = ComfyGraph("api")
    for node_id, raw in data.items():
        inputs = raw.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise ComfyFormatError(f"{node_id}.inputs", "expected an object")
        meta = raw.get("_meta") if isinstance(raw.get("_meta"), dict) else {}
        node = ComfyNode(str(node_id), raw["class_type"], str(meta.get("title") or ""))
        if isinstance(meta.get("control_after_generate"), str):  # what our exports keep of the frontend's widget
            node.widgets["control_after_generate"] = meta["control_after_generate"]
        for name, value in inputs.items():
            if _is_link(value):
                node.links[name] = (str(value[0]), int(value[1]))
            else:
                node.widgets[name] = value
        graph.nodes[node.id] = node
    for node in graph.nodes.values():
        for name, (src, _) in list(node.links.items()):
            if src not in graph.nodes:
                graph.notes.append(f"{node.id}.inputs.{name}: from node {src}, which is not in the prompt; dropped")
                del node.links[name]
    _layout(graph)
    return graph


def _is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int) and not isinstance(value[1], bool)
            and value[1] >= 0)


def _layout(graph: ComfyGraph) -> None:
    import networkx as nx

    dag = nx.DiGraph()
    dag.add_nodes_from(graph.nodes)
    dag.add_edges_from((src, node.id) for node in graph.nodes.values() for src, _ in node.links.values())
    if not nx.is_directed_acyclic_graph(dag):
        raise ComfyFormatError("", "the prompt's links form a cycle")
    column: dict[str, int] = {}
    for node_id in nx.topological_sort(dag):
        column[node_id] = max((column[p] + 1 for p in dag.predecessors(node_id)), default=0)
    rows: dict[int, int] = {}
    for node_id in graph.nodes:  # the file's order within a column
        col = column[node_id]
        graph.nodes[node_id].pos = (col * COLUMN_WIDTH, rows.get(col, 0) * ROW_HEIGHT)
        rows[col] = rows.get(col, 0) + 1

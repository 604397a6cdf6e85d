"""Read ComfyUI's UI workflow JSON (frontend 0.4 and 1.x) into a :class:`ComfyGraph`.

Links come as ``[id, src, src_slot, dst, dst_slot, type]`` arrays (0.4) or as objects (1.x and
subgraphs); a node's input slot names its input (a widget converted to an input keeps the
widget's name). ``Reroute`` nodes stay (our reroute); the frontend-only ``PrimitiveNode`` is
dissolved: the widgets it drives already hold its value. Subgraphs (``definitions.subgraphs``)
are flattened into the graph, their inner ids prefixed by the instance's, framed by their name.
Widget values stay positional here; :mod:`nodes.comfyui.widgets` names them."""

from __future__ import annotations

from typing import Any

from .model import ComfyFormatError, ComfyGraph, ComfyNode

MAX_NODES = 5000
MAX_DEPTH = 8  # subgraphs inside subgraphs
SUBGRAPH_IN, SUBGRAPH_OUT = "-10", "-20"


def looks_like_ui(data: Any) -> bool:
    return (isinstance(data, dict) and isinstance(data.get("nodes"), list) and isinstance(data.get("links"), list)
            and "format" not in data and any(isinstance(n, dict) and "type" in n and "id" in n and
                                             ("widgets_values" in n or "inputs" in n or "outputs" in n)
                                             for n in data["nodes"][:50]))


def read_ui(data: dict) -> ComfyGraph:
    graph = ComfyGraph("ui", frontend=str((data.get("extra") or {}).get("frontendVersion") or data.get("version") or ""))
    definitions = {}
    for i, sub in enumerate(((data.get("definitions") or {}).get("subgraphs")) or []):
        if not isinstance(sub, dict) or not isinstance(sub.get("id"), str):
            raise ComfyFormatError(f"definitions.subgraphs[{i}]", "a subgraph needs an id")
        definitions[sub["id"]] = sub
    _read_level(graph, data, "", "", definitions, 0, {})
    for i, group in enumerate(data.get("groups") or []):
        bounding = group.get("bounding") if isinstance(group, dict) else None
        if not (isinstance(bounding, list) and len(bounding) == 4 and all(_number(v) for v in bounding)):
            graph.notes.append(f"groups[{i}]: no bounding box; left out")
            continue
        graph.groups.append((str(group.get("title") or "Group"), tuple(float(v) for v in bounding),
                             group.get("color") if isinstance(group.get("color"), str) else None))
    _dissolve_primitive_nodes(graph)
    return graph


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _pair(value: Any, path: str) -> tuple[float, float] | None:
    if isinstance(value, dict):  # old files: {"0": x, "1": y}
        value = [value.get("0"), value.get("1")]
    if isinstance(value, list) and len(value) >= 2 and _number(value[0]) and _number(value[1]):
        return float(value[0]), float(value[1])
    return None


def _links(data: dict, path: str) -> dict[str, tuple[str, int, str, int]]:
    """link id -> (source node, source slot, target node, target slot)."""
    links = {}
    for i, link in enumerate(data.get("links") or []):
        where = f"{path}links[{i}]"
        if isinstance(link, list):
            if len(link) < 5:
                raise ComfyFormatError(where, "a link array needs [id, from, from_slot, to, to_slot, type]")
            link_id, src, src_slot, dst, dst_slot = link[:5]
        elif isinstance(link, dict):
            link_id, src, src_slot = link.get("id"), link.get("origin_id"), link.get("origin_slot")
            dst, dst_slot = link.get("target_id"), link.get("target_slot")
        else:
            raise ComfyFormatError(where, "a link must be an array or an object")
        if not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in (link_id, src, dst)) \
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (src_slot, dst_slot)):
            raise ComfyFormatError(where, "link ids, node ids and slots must be integers")
        links[str(link_id)] = (str(src), src_slot, str(dst), dst_slot)
    return links


def _read_level(graph: ComfyGraph, data: dict, prefix: str, frame: str, definitions: dict, depth: int,
                outer: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Add one level's nodes (recursing into subgraph instances); returns, for a subgraph, the
    inner source of each of its output slots."""
    if depth > MAX_DEPTH:
        raise ComfyFormatError(prefix, f"subgraphs nested more than {MAX_DEPTH} deep")
    path = f"subgraph {frame}: " if frame else ""
    links = _links(data, path)
    raw_nodes = data.get("nodes") or []
    if len(graph.nodes) + len(raw_nodes) > MAX_NODES:
        raise ComfyFormatError("nodes", f"more than {MAX_NODES} nodes")
    instances: dict[str, tuple[dict, dict]] = {}
    input_names: dict[str, list[str]] = {}
    for i, raw in enumerate(raw_nodes):
        where = f"{path}nodes[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or not isinstance(raw.get("id"), (int, str)):
            raise ComfyFormatError(where, "a node needs an id and a type")
        node_id = prefix + str(raw["id"])
        if node_id in graph.nodes:
            raise ComfyFormatError(where, f"node id {raw['id']} is used twice")
        inputs = raw.get("inputs") or []
        if not isinstance(inputs, list):
            raise ComfyFormatError(f"{where}.inputs", "expected a list")
        names = []
        for entry in inputs:
            name = entry.get("name") if isinstance(entry, dict) else None
            widget = entry.get("widget") if isinstance(entry, dict) else None
            if isinstance(widget, dict) and isinstance(widget.get("name"), str):
                name = widget["name"]
            names.append(str(name if name is not None else f"input_{len(names)}"))
        input_names[str(raw["id"])] = names
        if raw["type"] in definitions:
            instances[str(raw["id"])] = (raw, definitions[raw["type"]])
            continue
        outputs = []
        for entry in raw.get("outputs") or []:
            if isinstance(entry, dict):
                outputs.append((str(entry.get("name") or ""), str(entry.get("type") or "*")))
        widgets = raw.get("widgets_values")
        node = ComfyNode(
            node_id, raw["type"], str(raw.get("title") or ""), _pair(raw.get("pos"), where) or (0.0, 0.0),
            _pair(raw.get("size"), where), raw.get("mode") if raw.get("mode") in (0, 1, 2, 3, 4) else 0,
            raw.get("color") if isinstance(raw.get("color"), str) else None,
            widgets=dict(widgets) if isinstance(widgets, dict) else {},
            widget_list=list(widgets) if isinstance(widgets, list) else None,
            input_types={n: str(e.get("type") or "*") for n, e in zip(names, inputs) if isinstance(e, dict)},
            widget_inputs={n for n, e in zip(names, inputs) if isinstance(e, dict) and isinstance(e.get("widget"), dict)},
            outputs=outputs, package=str((raw.get("properties") or {}).get("cnr_id") or ""), frame=frame)
        graph.nodes[node_id] = node
    if frame:  # a subgraph's inner nodes keep their layout, placed where its instance was
        inner = [graph.nodes[prefix + str(r["id"])] for r in raw_nodes if prefix + str(r["id"]) in graph.nodes]
        if inner:
            x0, y0 = min(n.pos[0] for n in inner), min(n.pos[1] for n in inner)
            ox, oy = outer.get("origin", (0.0, 0.0))
            for n in inner:
                n.pos = (ox + n.pos[0] - x0, oy + n.pos[1] - y0)
    # subgraph instances: their inner nodes, then the links through their boundaries
    boundary_out: dict[str, dict[int, tuple[str, int]]] = {}
    boundary_in: dict[str, dict[int, list[tuple[str, str]]]] = {}
    for raw_id, (raw, sub) in instances.items():
        title = str(raw.get("title") or sub.get("name") or "Subgraph")
        inner_prefix = f"{prefix}{raw_id}:"
        origin = _pair(raw.get("pos"), "") or (0.0, 0.0)
        outs = _read_level(graph, sub, inner_prefix, title, definitions, depth + 1, {"origin": origin})
        boundary_out[raw_id] = outs
        boundary_in[raw_id] = _subgraph_inputs(graph, sub, inner_prefix)
        _apply_proxy_widgets(graph, raw, inner_prefix)
    _make_room_for_subgraphs(graph, prefix, {f"{prefix}{raw_id}:": raw for raw_id, (raw, _) in instances.items()})
    # links at this level
    exits: dict[int, tuple[str, int]] = {}
    for link_id, (src, src_slot, dst, dst_slot) in links.items():
        if dst == SUBGRAPH_OUT:
            exits[dst_slot] = (prefix + src, src_slot)
            continue
        if src == SUBGRAPH_IN:
            continue  # read by the level above (_subgraph_inputs)
        source = (prefix + src, src_slot)
        if src in boundary_out:  # from a subgraph instance's output: its inner source
            source = boundary_out[src].get(src_slot)
            if source is None:
                graph.notes.append(f"{path}link {link_id}: subgraph output {src_slot} leads nowhere; dropped")
                continue
        names = input_names.get(dst)
        if names is None:
            graph.notes.append(f"{path}link {link_id}: to node {dst}, which is not in the file; dropped")
            continue
        if dst in boundary_in:  # into a subgraph instance: to every inner input of that slot
            for inner, name in boundary_in[dst].get(dst_slot, []):
                if inner in graph.nodes:
                    graph.nodes[inner].links[name] = source
            continue
        if dst_slot >= len(names) or prefix + dst not in graph.nodes:
            graph.notes.append(f"{path}link {link_id}: node {dst} has no input slot {dst_slot}; dropped")
            continue
        graph.nodes[prefix + dst].links[names[dst_slot]] = source
    return exits


def _make_room_for_subgraphs(graph: ComfyGraph, prefix: str, instances: dict[str, dict]) -> None:
    """A flattened subgraph is wider than the node that stood for it: what lay to its right moves
    right by the difference, so nothing lands on top of its contents."""
    widths = []
    for inner_prefix, raw in instances.items():
        inner = [n for n in graph.nodes.values() if n.id.startswith(inner_prefix)]
        x = (_pair(raw.get("pos"), "") or (0.0, 0.0))[0]
        if inner:
            right = max(n.pos[0] + (n.size or (300.0, 0.0))[0] for n in inner)
            widths.append((x, inner_prefix, right - x - (_pair(raw.get("size"), "") or (300.0, 0.0))[0]))
    for node in graph.nodes.values():
        if not node.id.startswith(prefix):
            continue
        anchor = next(((x, p) for x, p, _ in widths if node.id.startswith(p)), None)
        at = anchor[0] if anchor else node.pos[0]
        shift = sum(extra for x, p, extra in widths if extra > 0 and (x < at or (anchor and x == at and p != anchor[1])))
        node.pos = (node.pos[0] + shift, node.pos[1])


def _subgraph_inputs(graph: ComfyGraph, sub: dict, prefix: str) -> dict[int, list[tuple[str, str]]]:
    """Subgraph input slot -> the inner (node id, input name) pairs it feeds."""
    fed: dict[int, list[tuple[str, str]]] = {}
    for src, src_slot, dst, dst_slot in _links(sub, f"subgraph {sub.get('name')}: ").values():
        if src != SUBGRAPH_IN:
            continue
        node = graph.nodes.get(prefix + dst)
        if node is None:
            continue
        names = [n for n in node.input_types] if node.input_types else []
        name = names[dst_slot] if dst_slot < len(names) else f"input_{dst_slot}"
        fed.setdefault(src_slot, []).append((node.id, name))
    return fed


def _apply_proxy_widgets(graph: ComfyGraph, raw: dict, prefix: str) -> None:
    """An instance's promoted widgets (``properties.proxyWidgets``) set the inner widgets' values
    where the instance has its own (``widgets_values`` in the same order)."""
    proxies = (raw.get("properties") or {}).get("proxyWidgets") or []
    values = raw.get("widgets_values") if isinstance(raw.get("widgets_values"), list) else []
    for index, proxy in enumerate(proxies):
        if isinstance(proxy, list) and len(proxy) == 2 and index < len(values):
            node = graph.nodes.get(prefix + str(proxy[0]))
            if node is not None:
                node.widgets[str(proxy[1])] = values[index]


def _dissolve_primitive_nodes(graph: ComfyGraph) -> None:
    """The frontend's PrimitiveNode holds one value for the converted widgets it feeds; those
    widgets' own values already equal it, so its links go and it goes."""
    for node in [n for n in graph.nodes.values() if n.class_type == "PrimitiveNode"]:
        for target, name in graph.consumers(node.id):
            del target.links[name]
            target.widget_inputs.discard(name)
        del graph.nodes[node.id]

"""Turn a :class:`ComfyGraph` into a LatentGraph workflow (the file format's dict, validated by
``graphs.workflow.from_dict`` like any file): each ComfyUI node through its mapping
(:mod:`nodes.comfyui.node_map`), or a placeholder that keeps its class, widgets and links."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from graphs.placeholders import add_placeholder, make_placeholder
from graphs.registry import Registry
from graphs.workflow import FORMAT, VERSION

from .model import ComfyGraph, ComfyNode
from .report import ImportReport
from .widgets import name_widgets

PLACEHOLDER_PREFIX = "comfyui."
SAMPLER_CLASSES = ("KSampler", "KSamplerAdvanced", "SamplerCustom")
SAMPLER_COLUMN = 360.0  # the width of the Noise + Scheduler column a sampler gains
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/-]")


def placeholder_type_id(class_type: str) -> str:
    return PLACEHOLDER_PREFIX + (_UNSAFE.sub("_", class_type)[:180] or "node")


class NodeBuild:
    """What one ComfyUI node's mapping makes: our nodes, and where its inputs and outputs went."""

    def __init__(self, builder: Builder, node: ComfyNode, values: dict[str, Any]) -> None:
        self.builder, self.node, self.values = builder, node, values
        self.inputs: dict[str, tuple[str, str]] = {}  # ComfyUI input name -> (our node, our input)
        self.outputs: dict[int, tuple[str, str]] = {}  # ComfyUI output slot -> (our node, our output)
        self.made: list[str] = []
        self.absorbed_names: set[str] = set()  # inputs the mapping read itself (SamplerCustom's sampler)
        self.why_not = ""  # a mapping that declines says why (the report shows it)

    def add(self, type_id: str, params: dict[str, Any] | None = None, key: str = "", title: str = "",
            offset: tuple[float, float] = (0.0, 0.0)) -> str:
        node = self.node
        node_id = f"c{node.id}" + (f".{key}" if key else "")
        node_type = self.builder.registry.nodes.get(type_id)
        type_version = node_type.version
        params = dict(params or {})
        for name, value in list(params.items()):
            param = node_type.param(name)
            error = "no such param here" if param is None else param.check(value)
            if error:  # a value out of our range: the param's default, said in the report
                del params[name]
                if param is not None:
                    self.guess(f"{name} {value!r} refused ({error}); {param.default!r} used")
            elif param.kind == "choice":
                params[name] = param.match_choice(value)
        self.builder.nodes.append({
            "id": node_id, "type": type_id, "type_version": type_version,
            "title": title or node.title or node_type.title, "pos": [node.pos[0] + offset[0], node.pos[1] + offset[1]],
            "size": None, "color": hex_colour(node.color), "params": params,
            "flags": {"bypass": node.mode == 4, "mute": node.mode == 2, "collapsed": False}})
        self.made.append(node_id)
        return node_id

    def guess(self, message: str) -> None:
        self.builder.report.guessed.append(f"{self.builder.label(self.node)}: {message}")

    def sampler_note(self, message: str) -> None:
        self.builder.report.samplers.append(f"{self.builder.label(self.node)}: {message}")

    def source(self, input_name: str) -> ComfyNode | None:
        """The ComfyUI node feeding ``input_name`` (through reroutes)."""
        return self.builder.upstream(self.node, input_name)


class Builder:
    def __init__(self, graph: ComfyGraph, registry: Registry, report: ImportReport,
                 mappings: dict[str, Callable[[NodeBuild], Any]]) -> None:
        """``mappings``: ComfyUI class -> what makes our nodes for it (nodes/comfyui/node_map.py)."""
        self.graph, self.registry, self.report, self.mappings = graph, registry, report, mappings
        self.nodes: list[dict[str, Any]] = []
        self.links: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.built: dict[str, NodeBuild] = {}
        self.absorbed: set[str] = set()  # ComfyUI nodes another node's mapping took in (KSamplerSelect...)
        self.extra_links: list[tuple[tuple[str, int], tuple[str, str]]] = []  # (ComfyUI source, our input)
        self.clip_skips: dict[str, int] = {}  # CLIPSetLastLayer node -> our clip_skip

    def label(self, node: ComfyNode) -> str:
        return f"{node.title or node.class_type} (#{node.id})"

    def upstream(self, node: ComfyNode, input_name: str) -> ComfyNode | None:
        seen = 0
        link = node.links.get(input_name)
        while link is not None and seen < 64:
            source = self.graph.nodes.get(link[0])
            if source is None or source.class_type != "Reroute":
                return source
            link, seen = next(iter(source.links.values()), None), seen + 1
        return None

    def _make_room(self) -> None:
        """A ComfyUI sampler becomes three nodes: each gets a column of its own, everything to its
        right moving over by that column's width (groups stretch with what they hold)."""
        columns = sorted(n.pos[0] for n in self.graph.nodes.values() if n.class_type in SAMPLER_CLASSES)

        def shifted(x: float, inclusive: bool = False) -> float:
            return x + SAMPLER_COLUMN * sum(1 for c in columns if c < x or (inclusive and c <= x))

        for node in self.graph.nodes.values():
            node.pos = (shifted(node.pos[0]), node.pos[1])
        self.graph.groups = [(title, (shifted(x), y, shifted(x + w, True) - shifted(x), h), color)
                             for title, (x, y, w, h), color in self.graph.groups]

    def build(self) -> dict[str, Any]:
        self._make_room()

        for node in self.graph.nodes.values():
            guessed: list[str] = []
            values = name_widgets(node.class_type, node.widget_list, node.widgets, guessed, set(node.links))
            build = NodeBuild(self, node, values)
            for message in guessed:
                build.guess(message)
            mapping = self.mappings.get(node.class_type)
            marks = (len(self.nodes), len(self.links), len(self.extra_links), len(self.report.guessed),
                     len(self.report.samplers))
            try:
                declined = mapping is None or mapping(build) is False
                why = build.why_not
            except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
                declined, why = True, f"its values could not be read ({type(exc).__name__}: {str(exc)[:120]})"
            if declined:  # whatever the mapping made goes: the placeholder keeps the node as the file has it
                del self.nodes[marks[0]:], self.links[marks[1]:], self.extra_links[marks[2]:]
                del self.report.guessed[marks[3]:], self.report.samplers[marks[4]:]
                self.absorbed.discard(node.id)
                build = NodeBuild(self, node, values)
                self._placeholder(build, why)
            self.built[node.id] = build
        self._link_all()
        self._apply_clip_skips()
        self._frames()
        return {"format": FORMAT, "version": VERSION, "metadata": {"imported_from": self.report.source},
                "view": {"zoom": 0.8, "center": list(self._center())}, "nodes": self.nodes, "links": self.links,
                "frames": self.frames}

    def _placeholder(self, build: NodeBuild, why: str = "") -> None:
        node = build.node
        type_id = placeholder_type_id(node.class_type)
        params: dict[str, Any] = {"widgets_values": node.widget_list} if node.widget_list is not None else {}
        params.update({k: v for k, v in node.widgets.items() if isinstance(k, str) and k not in node.links})
        inputs = [(name, node.input_types.get(name, "ANY")) for name in node.links]
        outputs = [(name or f"output_{i}", kind) for i, (name, kind) in enumerate(node.outputs)]
        max_slot = max((slot for other in self.graph.nodes.values() for src, slot in other.links.values()
                        if src == node.id), default=-1)
        outputs += [(f"output_{i}", "ANY") for i in range(len(outputs), max_slot + 1)]
        from graphs.registry import ANY

        def socket_type(kind: str) -> str:
            return kind if kind in self.registry.sockets else ANY

        add_placeholder(self.registry, make_placeholder(
            type_id, [(n, socket_type(k)) for n, k in inputs], [(n, socket_type(k)) for n, k in outputs],
            params, package=node.package, title=node.class_type))
        our = build.add(type_id, params, title=node.title or node.class_type)
        build.inputs = {name: (our, name) for name, _ in inputs}
        build.outputs = {i: (our, name) for i, (name, _) in enumerate(outputs)}
        where = f" from the {node.package!r} node pack" if node.package and node.package != "comfy-core" else ""
        self.report.placeholders.append(f"{self.label(node)}: " + (why or f"{node.class_type}{where} has no "
                                                                         "LatentGraph node"))

    def _link_all(self) -> None:
        count = 0
        for node in self.graph.nodes.values():
            build = self.built[node.id]
            if node.id in self.absorbed:
                continue
            for name, (src, slot) in node.links.items():
                target = build.inputs.get(name)
                source_build = self.built.get(src)
                source = source_build.outputs.get(slot) if source_build else None
                if src in self.absorbed or name in build.absorbed_names:
                    continue
                if target is None or source is None:
                    why = "its input" if target is None else "its source's output"
                    self.report.dropped.append(f"link into {self.label(node)}.{name}: {why} has no equivalent here")
                    continue
                count += 1
                self.links.append({"id": f"l{count}", "from": list(source), "to": list(target)})
        for (src, slot), target in self.extra_links:
            source = self.built[src].outputs.get(slot) if src in self.built else None
            if source is not None:
                count += 1
                self.links.append({"id": f"l{count}", "from": list(source), "to": list(target)})

    def _apply_clip_skips(self) -> None:
        """A Text encode whose CLIP comes through a CLIPSetLastLayer (LoRAs and reroutes between)
        stops where that node says."""
        for node in self.graph.nodes.values():
            if node.class_type != "CLIPTextEncode":
                continue
            source, hops = self.upstream(node, "clip"), 0
            while source is not None and source.class_type in ("LoraLoader",) and hops < 64:
                source, hops = self.upstream(source, "clip"), hops + 1
            if source is not None and source.id in self.clip_skips:
                ours = next(n for n in self.nodes if n["id"] == f"c{node.id}")
                ours["params"]["clip_skip"] = self.clip_skips[source.id]

    def _frames(self) -> None:
        for i, (title, (x, y, w, h), color) in enumerate(self.graph.groups):
            self.frames.append({"id": f"g{i}", "title": title, "rect": [x, y, w, h],
                                "color": hex_colour(color) or "#3a4a5a"})
        for name in sorted({n.frame for n in self.graph.nodes.values() if n.frame}):
            made = [n for n in self.nodes if any(n["id"] in b.made for b in self.built.values() if b.node.frame == name)]
            self.frames.append(_frame_around(f"s{len(self.frames)}", name, made))
        for build in self.built.values():
            if len(build.made) > 1:  # a KSampler's Noise + Scheduler + UNet denoise
                made = [n for n in self.nodes if n["id"] in build.made]
                self.frames.append(_frame_around(f"k{build.node.id}", build.node.title or build.node.class_type, made))

    def _center(self) -> tuple[float, float]:
        if not self.nodes:
            return 0.0, 0.0
        xs, ys = [n["pos"][0] for n in self.nodes], [n["pos"][1] for n in self.nodes]
        return (min(xs) + max(xs)) / 2 + 150, (min(ys) + max(ys)) / 2 + 100


def hex_colour(value: str | None) -> str | None:
    """ComfyUI's colours ("#223", "#3f789e") as ours ("#222233"); anything else: the default."""
    if not isinstance(value, str) or not re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", value):
        return None
    return value if len(value) == 7 else "#" + "".join(c * 2 for c in value[1:])


def _frame_around(frame_id: str, title: str, made: list[dict[str, Any]]) -> dict[str, Any]:
    xs, ys = [n["pos"][0] for n in made], [n["pos"][1] for n in made]
    left, top = min(xs) - 30, min(ys) - 60
    return {"id": frame_id, "title": title, "rect": [left, top, max(xs) - left + 340, max(ys) - top + 300],
            "color": "#3a4a5a"}

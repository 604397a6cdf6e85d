"""A ComfyUI graph as the importer reads it, whichever file it came from (the UI workflow with its
links, groups, reroutes and subgraphs, or the API prompt): nodes with named widget values and
named input links. Plain data; nothing here knows our node types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ComfyFormatError(ValueError):
    """A file that claims to be ComfyUI's but cannot be read as it; ``path`` says where (JSON path)."""

    def __init__(self, path: str, message: str) -> None:
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}" if path else message)


@dataclass
class ComfyNode:
    id: str
    class_type: str
    title: str = ""
    pos: tuple[float, float] = (0.0, 0.0)
    size: tuple[float, float] | None = None
    mode: int = 0  # 0 always, 2 never (muted), 4 bypass
    color: str | None = None
    widgets: dict[str, Any] = field(default_factory=dict)  # by name (UI files: by the widget order)
    widget_list: list[Any] | None = None  # as the UI file has them (kept for placeholders)
    links: dict[str, tuple[str, int]] = field(default_factory=dict)  # input name -> (source id, slot)
    input_types: dict[str, str] = field(default_factory=dict)
    widget_inputs: set[str] = field(default_factory=set)  # inputs that are converted widgets
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (name, type) by slot
    package: str = ""  # properties.cnr_id: the node pack that provides it
    frame: str = ""  # the subgraph it was flattened from


@dataclass
class ComfyGraph:
    kind: str  # "ui" or "api"
    nodes: dict[str, ComfyNode] = field(default_factory=dict)
    groups: list[tuple[str, tuple[float, float, float, float], str | None]] = field(default_factory=list)
    frontend: str = ""  # the UI's version, where the file says it
    notes: list[str] = field(default_factory=list)  # what the reader had to guess or drop

    def consumers(self, node_id: str, slot: int | None = None) -> list[tuple[ComfyNode, str]]:
        return [(n, name) for n in self.nodes.values() for name, (src, s) in n.links.items()
                if src == node_id and (slot is None or s == slot)]

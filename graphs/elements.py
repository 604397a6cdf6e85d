"""The records a graph is made of: nodes, links, frames and the view (plain data; the Graph in
graphs/model.py owns and changes them, the events in graphs/events.py carry them)."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

FLAG_NAMES = ("bypass", "mute", "collapsed")
DEFAULT_FRAME_COLOR = "#3a4a5a"


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Node:
    id: str
    type_id: str
    type_version: int
    title: str
    pos: tuple[float, float] = (0.0, 0.0)
    params: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FLAG_NAMES, False))
    size: tuple[float, float] | None = None
    color: str | None = None

    def clone(self) -> Node:
        return copy.deepcopy(self)


@dataclass(frozen=True)
class Link:
    id: str
    src_node: str
    src_output: str
    dst_node: str
    dst_input: str


@dataclass
class Frame:
    id: str
    title: str
    rect: tuple[float, float, float, float]
    color: str = DEFAULT_FRAME_COLOR

    def clone(self) -> Frame:
        return copy.deepcopy(self)


@dataclass
class View:
    zoom: float = 1.0
    center: tuple[float, float] = (0.0, 0.0)

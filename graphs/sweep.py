"""Parameter sweeps: axes over ``TITLE.PARAM`` (addressed like ``latentgraph run --set``),
their cross product as cells (graph snapshots with the values applied), and the
``sweep.json`` manifest that maps each cell's values to its files and makes a rerun resume.

Qt-free and torch-free: running the cells and writing images is ``nodes.sweep_cells``' job.

An axis is written ``TITLE.PARAM=VALUES`` where VALUES is a list ``3,5,7``, an inclusive range
``1:8`` (ints) or ``3.0:7.0:0.5`` (start:stop:step), or ``@prompts.txt`` (one value a line).
Up to three axes: X (columns), Y (rows), Z (one grid per value). Cells are numbered with X
fastest, then Y, then Z.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import Graph, GraphError

AXIS_NAMES = ("x", "y", "z")
MAX_VALUES = 10_000  # per axis
MAX_CELLS = 10_000
MANIFEST = "sweep.json"
MANIFEST_FORMAT = "latentgraph-sweep"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
METADATA_KEY = "sweep"  # in the workflow's metadata: {"axes": [spec, ...], "grid": bool}


class SweepError(ValueError):
    """A bad axis, value or manifest; the message names the axis (or file) and the problem."""


@dataclass(frozen=True)
class Axis:
    spec: str  # as the user wrote it, e.g. "Noise.seed=1:8" (saved with the workflow)
    node_id: str
    title: str
    param: str
    values: tuple[Any, ...]

    @property
    def address(self) -> str:
        return f"{self.title}.{self.param}"

    def label(self, value: Any) -> str:
        return f"{self.address} = {format_value(value)}"


@dataclass(frozen=True)
class Cell:
    index: int
    coords: tuple[int, ...]  # one index per axis (x, y, z)
    values: tuple[tuple[str, Any], ...]  # (address, value) per axis

    def values_dict(self) -> dict[str, Any]:
        return dict(self.values)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def split_spec(spec: str) -> tuple[str, str, str]:
    """``TITLE.PARAM=VALUES`` -> (title, param, values text), split as ``--set`` splits."""
    key, sep, values = spec.partition("=")
    title, dot, param = key.rpartition(".")
    if not sep or not dot or not title or not param or not values.strip():
        raise SweepError(f"--axis {spec!r}: expected TITLE.PARAM=VALUES (a list 3,5,7, a range "
                         "1:8 or 3.0:7.0:0.5, or @file with one value a line)")
    return title.strip(), param.strip(), values.strip()


def _range(text: str, kind: str, spec: str) -> list[Any]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise SweepError(f"--axis {spec!r}: a range is START:STOP or START:STOP:STEP")
    integer = kind in ("int", "seed")
    try:
        numbers = [int(p, 0) if integer else float(p) for p in parts]
    except ValueError:
        raise SweepError(f"--axis {spec!r}: range bounds must be {'integers' if integer else 'numbers'}"
                         ) from None
    start, stop = numbers[0], numbers[1]
    step = numbers[2] if len(numbers) == 3 else (1 if integer else 1.0)
    if step == 0 or not all(math.isfinite(n) for n in numbers):
        raise SweepError(f"--axis {spec!r}: the step must be a finite non-zero number")
    if (stop - start) * step < 0:
        raise SweepError(f"--axis {spec!r}: the step goes away from STOP")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    if count > MAX_VALUES:
        raise SweepError(f"--axis {spec!r}: {count:,} values; the limit is {MAX_VALUES:,}")
    if integer:
        return [start + i * step for i in range(count)]
    # round() keeps 3.0 + 3 * 0.1 from printing (and hashing) as 3.3000000000000003
    return [round(start + i * step, 10) for i in range(count)]


def _read_values_file(name: str, base_dir: str | None, spec: str) -> list[str]:
    path = Path(os.path.expanduser(name))
    if not path.is_absolute() and base_dir and not path.exists():
        path = Path(base_dir) / path
    try:
        if path.stat().st_size > 16 * 1024 * 1024:
            raise SweepError(f"--axis {spec!r}: {path} is larger than 16 MB")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SweepError(f"--axis {spec!r}: {path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SweepError(f"--axis {spec!r}: cannot read {path}: {exc.strerror or exc}") from None
    lines = [line.strip() for line in text.splitlines()]
    values = [line for line in lines if line]
    if not values:
        raise SweepError(f"--axis {spec!r}: {path} has no values (one a line)")
    return values


def parse_axis(graph: Graph, spec: str, base_dir: str | None = None) -> Axis:
    """An axis of ``graph``: its node found by title (or id), values parsed by the param's kind."""
    title, param_name, text = split_spec(spec)
    try:
        node = graph.find_node(title)
    except GraphError as exc:
        raise SweepError(f"--axis {spec!r}: {exc}") from None
    node_type = graph.node_type(node)
    param = node_type.param(param_name)
    if param is None:
        names = ", ".join(p.name for p in node_type.params) or "none"
        raise SweepError(f"--axis {spec!r}: {node.title} has no param {param_name!r} (params: {names})")
    if text.startswith("@"):
        raw: list[Any] = _read_values_file(text[1:], base_dir, spec)
    elif param.kind in ("int", "seed", "float") and ":" in text:
        raw = _range(text, param.kind, spec)
    else:
        raw = [part.strip() for part in text.split(",")]
        if any(not part for part in raw):
            raise SweepError(f"--axis {spec!r}: an empty value in the list")
    if len(raw) > MAX_VALUES:
        raise SweepError(f"--axis {spec!r}: {len(raw):,} values; the limit is {MAX_VALUES:,}")
    values = []
    for item in raw:
        try:
            value = param.parse(item) if isinstance(item, str) else item
        except ValueError as exc:
            raise SweepError(f"--axis {spec!r}: value {format_value(item)!r}: {exc}") from None
        error = param.check(value)
        if error:
            raise SweepError(f"--axis {spec!r}: value {format_value(value)!r}: {error}")
        values.append(value)
    if graph.param_overridden(node.id, param.name):
        raise SweepError(f"--axis {spec!r}: {node.title}.{param.name} is driven by a link, "
                         "so a value set on it would be ignored")
    return Axis(spec, node.id, node.title, param.name, tuple(values))


@dataclass
class Sweep:
    axes: list[Axis]
    grid: bool = False
    cells: list[Cell] = field(init=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.axes) <= len(AXIS_NAMES):
            raise SweepError(f"a sweep has 1 to {len(AXIS_NAMES)} axes (X, Y, Z); got {len(self.axes)}")
        seen: set[tuple[str, str]] = set()
        for axis in self.axes:
            if (axis.node_id, axis.param) in seen:
                raise SweepError(f"--axis {axis.spec!r}: {axis.address} is already an axis")
            seen.add((axis.node_id, axis.param))
        total = math.prod(len(a.values) for a in self.axes)
        if total > MAX_CELLS:
            raise SweepError(f"the sweep has {total:,} cells; the limit is {MAX_CELLS:,}")
        self.cells = []
        # product() varies its last argument fastest; X must vary fastest, so reverse.
        ranges = [range(len(a.values)) for a in reversed(self.axes)]
        for index, rev in enumerate(itertools.product(*ranges)):
            coords = tuple(reversed(rev))
            values = tuple((a.address, a.values[i]) for a, i in zip(self.axes, coords))
            self.cells.append(Cell(index, coords, values))

    @classmethod
    def parse(cls, graph: Graph, specs: list[str], base_dir: str | None = None,
              grid: bool = False) -> Sweep:
        return cls([parse_axis(graph, s, base_dir) for s in specs], grid)

    def shape(self) -> tuple[int, int, int]:
        """(columns, rows, grids)."""
        sizes = [len(a.values) for a in self.axes] + [1, 1]
        return sizes[0], sizes[1], sizes[2]

    def cell_graph(self, graph: Graph, cell: Cell) -> Graph:
        """A snapshot of ``graph`` with the cell's values set (the graph itself is untouched)."""
        copy = graph.copy()
        copy.metadata.pop(METADATA_KEY, None)
        for axis, i in zip(self.axes, cell.coords):
            copy.set_param(axis.node_id, axis.param, axis.values[i])
        copy.metadata["sweep_cell"] = {"index": cell.index,
                                       "values": {k: v for k, v in cell.values}}
        return copy

    def to_metadata(self) -> dict[str, Any]:
        return {"axes": [a.spec for a in self.axes], "grid": self.grid}


def cell_hash(graph: Graph) -> str:
    """What decides a cell's images: node types, params, flags and links (not positions,
    titles or metadata), so a rerun recognises a finished cell."""
    nodes = sorted([n.id, n.type_id, n.type_version, sorted(n.params.items()),
                    sorted((k, bool(v)) for k, v in n.flags.items() if k != "collapsed")]
                   for n in graph.nodes.values())
    links = sorted([ln.src_node, ln.src_output, ln.dst_node, ln.dst_input] for ln in graph.links.values())
    text = json.dumps([nodes, links], sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.blake2b(text.encode("utf-8", "backslashreplace"), digest_size=16).hexdigest()


def sweep_from_metadata(graph: Graph) -> tuple[list[str], bool] | None:
    """The axes saved in the workflow's metadata (``metadata.sweep``), or None."""
    saved = graph.metadata.get(METADATA_KEY)
    if saved is None:
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("axes"), list) or not all(
            isinstance(s, str) for s in saved["axes"]):
        raise SweepError(f"metadata.{METADATA_KEY}: expected {{\"axes\": [\"TITLE.PARAM=VALUES\", ...]}}")
    return list(saved["axes"]), bool(saved.get("grid", False))


def store_in_metadata(graph: Graph, sweep: Sweep) -> None:
    """Keep the sweep with the workflow (the axes as written: a range stays ``1:8``)."""
    graph.metadata[METADATA_KEY] = sweep.to_metadata()


# ----- the manifest -------------------------------------------------------------------
class Manifest:
    """``sweep.json`` in the output folder: the axes, and per cell its values, hash, status,
    files (relative names) and error. Saved atomically after every cell, so an interrupted
    sweep loses at most the cells that were running."""

    def __init__(self, folder: str | os.PathLike, sweep: Sweep, workflow: str = "") -> None:
        self.folder = Path(folder)
        self.sweep = sweep
        self.data: dict[str, Any] = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "workflow": workflow,
            "axes": [{"axis": name, "address": a.address, "spec": a.spec, "values": list(a.values)}
                     for name, a in zip(AXIS_NAMES, sweep.axes)],
            "cells": [], "grids": [],
        }
        self._previous: dict[str, dict[str, Any]] = {}

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST

    def load_previous(self) -> int:
        """Read the manifest already in the folder (if any); returns how many cells it has.
        A file that is not a sweep manifest is refused rather than overwritten."""
        if not self.path.exists():
            return 0
        try:
            if self.path.stat().st_size > MAX_MANIFEST_BYTES:
                raise SweepError(f"{self.path}: larger than {MAX_MANIFEST_BYTES:,} bytes")
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SweepError(f"{self.path}: not a readable sweep manifest ({exc}); move it away "
                             "or pick another --output-dir") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT \
                or not isinstance(data.get("cells"), list):
            raise SweepError(f"{self.path}: not a {MANIFEST_FORMAT} manifest")
        for entry in data["cells"]:
            if isinstance(entry, dict) and isinstance(entry.get("hash"), str):
                self._previous[entry["hash"]] = entry
        return len(self._previous)

    def finished_entry(self, cell: Cell, digest: str) -> dict[str, Any] | None:
        """The previous run's entry for this cell when it finished and its files are all there."""
        entry = self._previous.get(digest)
        if not entry or entry.get("status") != "done" or not isinstance(entry.get("files"), list):
            return None
        files = entry["files"]
        if not files or not all(isinstance(f, str) and self._inside(f) and (self.folder / f).is_file()
                                for f in files):
            return None
        return {**entry, "index": cell.index, "coords": list(cell.coords),
                "values": cell.values_dict()}

    def _inside(self, name: str) -> bool:
        return not os.path.isabs(name) and ".." not in Path(name).parts

    def record(self, cell: Cell, digest: str, status: str, files: list[str] = (),
               error: str | None = None, **extra: Any) -> dict[str, Any]:
        entry = {"index": cell.index, "coords": list(cell.coords), "values": cell.values_dict(),
                 "hash": digest, "status": status, "files": list(files), "error": error, **extra}
        cells = [c for c in self.data["cells"] if c["index"] != cell.index]
        cells.append(entry)
        cells.sort(key=lambda c: c["index"])
        self.data["cells"] = cells
        return entry

    def entry(self, index: int) -> dict[str, Any] | None:
        return next((c for c in self.data["cells"] if c["index"] == index), None)

    def save(self) -> None:
        from .workflow import atomic_write_text

        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.data, indent=1, ensure_ascii=False,
                                                default=repr) + "\n")

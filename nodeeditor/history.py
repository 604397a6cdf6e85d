"""The run history, Qt-free: every run that ended (finished or failed) with the snapshot it ran,
its settings, thumbnails, the params that changed since the run before it, and the files it wrote.

On disk, under a folder (the editor's: the user's data folder, ``history/``)::

    history.jsonl        one JSON object per run, oldest first
    thumbs/ID_N.png      small PNG thumbnails (at most THUMB_SIZE px a side)

Bounded: the newest ``max_runs`` runs within ``max_bytes`` (lines + thumbnails); the oldest are
dropped first. A new run is one appended line (``O_APPEND``, a single write, so a crash can cut only
that line, and a cut line is skipped on load) plus new thumbnail files (``safe_io.write_new``);
dropping runs rewrites the file atomically (``safe_io.write_atomic``). The store does no threading
of its own: the editor calls it on one background thread (``history_panel.HistoryService``), so the
GUI thread never waits on the disk or on PNG encoding.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from graphs import safe_io
from graphs.sweep import format_value

FILE = "history.jsonl"
THUMBS = "thumbs"
MAX_RUNS = 200
MAX_BYTES = 200 * 1024 * 1024
THUMB_SIZE = 160
MAX_THUMBS = 4
MAX_CHANGES = 40
_MISSING = object()
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


# ----- what changed between two snapshots --------------------------------------------------
NodeParams = dict[str, tuple[str, dict[str, Any]]]  # node id -> (title, params)


def graph_params(graph) -> NodeParams:
    return {node.id: (node.title, dict(node.params)) for node in graph.nodes.values()}


def workflow_params(data: dict[str, Any]) -> NodeParams:
    """The same, from workflow-file data (``graphs.workflow.to_dict``)."""
    found: NodeParams = {}
    for node in data.get("nodes", []) if isinstance(data, dict) else []:
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            params = node.get("params") if isinstance(node.get("params"), dict) else {}
            found[node["id"]] = (str(node.get("title") or node.get("type") or node["id"][:8]), params)
    return found


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(none)"
    if isinstance(value, str):
        return f'"{format_value(value)}"'
    return format_value(value)


def param_changes(old: NodeParams, new: NodeParams, limit: int = MAX_CHANGES) -> list[str]:
    """``["Noise.seed 42 → 43", "+ Upscale latent", "− Preview image"]``: params that differ on
    nodes in both snapshots, then nodes added and removed (at most ``limit`` lines)."""
    lines = []
    for node_id, (title, params) in new.items():
        if node_id not in old:
            lines.append(f"+ {title}")
            continue
        before = old[node_id][1]
        for name in sorted(set(params) | set(before)):  # a file's params come sorted, a graph's not
            a, b = before.get(name, _MISSING), params.get(name, _MISSING)
            if a != b:
                lines.append(f"{title}.{name} {_show(a)} → {_show(b)}")
    lines += [f"− {title}" for node_id, (title, _params) in old.items() if node_id not in new]
    if len(lines) > limit:
        lines = lines[:limit - 1] + [f"… {len(lines) - limit + 1} more"]
    return lines


# ----- one run ------------------------------------------------------------------------------
@dataclass
class HistoryRun:
    id: str
    time: float  # when it ended (seconds since the epoch)
    status: str  # "finished" or "failed"
    seconds: float
    label: str  # what the queue called it ("Run", "Run to Noise", "Re-run ...")
    workflow: dict[str, Any]  # the snapshot it ran, as workflow-file data
    settings: dict[str, Any] = field(default_factory=dict)  # output_dir, base_dir, models_dir
    changes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    thumbs: list[str] = field(default_factory=list)  # names in thumbs/
    error: str = ""
    targets: list[str] | None = None
    size: int = 0  # bytes on disk (its line and thumbnails)

    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))

    def workflow_text(self) -> str:
        return json.dumps(self.workflow, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: Any) -> HistoryRun | None:
        """A run from one line's data, or None when the line is not one of ours."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) \
                or not isinstance(data.get("workflow"), dict):
            return None
        try:
            run = cls(data["id"], float(data.get("time", 0)), str(data.get("status", "")),
                      float(data.get("seconds", 0)), str(data.get("label", "Run")), data["workflow"],
                      dict(data.get("settings") or {}),
                      [str(c) for c in data.get("changes") or []], [str(f) for f in data.get("files") or []],
                      [str(t) for t in data.get("thumbs") or [] if _plain_name(str(t))],
                      str(data.get("error") or ""),
                      [str(t) for t in data["targets"]] if isinstance(data.get("targets"), list) else None)
        except (TypeError, ValueError):
            return None
        return run


def _line(run: HistoryRun) -> str:
    data = asdict(run)
    del data["size"]
    return json.dumps(data, ensure_ascii=False, default=repr) + "\n"


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


@dataclass
class RunRecord:
    """What the editor hands the history when a run ends: made on the GUI thread from what it
    already holds (no copies, no encoding), stored on the history thread."""

    label: str
    workflow_text: str  # the snapshot that ran
    settings: dict[str, Any]
    status: str
    seconds: float
    error: str
    files: list[str]  # what Save image wrote (its ``paths`` output)
    images: list[Any]  # PIL images the run showed, thumbnailed when stored
    targets: list[str] | None = None  # "run to" nodes, None for the whole graph


# ----- the store ------------------------------------------------------------------------------
class HistoryStore:
    """Call from one thread at a time (the editor: its history thread)."""

    def __init__(self, folder: str | os.PathLike, max_runs: int = MAX_RUNS, max_bytes: int = MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.max_runs, self.max_bytes = max_runs, max_bytes
        self.runs: list[HistoryRun] = []

    @property
    def path(self) -> Path:
        return self.folder / FILE

    def thumb_path(self, name: str) -> Path:
        return self.folder / THUMBS / name

    def load(self) -> list[HistoryRun]:
        """The runs on disk, oldest first (unreadable lines skipped; over the bounds: trimmed)."""
        self.runs = []
        try:
            with safe_io.open_regular(self.path, max_bytes=self.max_bytes) as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            return []  # unreadable or absurdly large: start afresh rather than fail the editor
        for line in lines:
            try:
                run = HistoryRun.from_json(json.loads(line))
            except ValueError:
                continue
            if run is not None:
                run.size = len(line) + 1 + sum(self._size(self.thumb_path(t)) for t in run.thumbs)
                self.runs.append(run)
        self._trim()
        return list(self.runs)

    def add(self, status: str, seconds: float, label: str, workflow: dict[str, Any], settings: dict[str, Any],
            files: list[str], images: list[Any], error: str = "", when: float | None = None,
            targets: list[str] | None = None) -> HistoryRun:
        """Record a run: thumbnails of ``images`` (PIL), the changes since the last run, one line."""
        when = time.time() if when is None else when
        previous = self.runs[-1].workflow if self.runs else None
        changes = param_changes(workflow_params(previous), workflow_params(workflow)) if previous else []
        run = HistoryRun(f"{int(when * 1000):012x}{secrets.token_hex(3)}", when, status, round(seconds, 3),
                         label, workflow, settings, changes, [str(f) for f in files], [], error,
                         list(targets) if targets else None)
        sizes = self._write_thumbs(run, images)
        line = _line(run).encode("utf-8")
        self._append(line)
        run.size = len(line) + sizes
        self.runs.append(run)
        self._trim()
        return run

    def add_record(self, record: RunRecord) -> HistoryRun:
        return self.add(record.status, record.seconds, record.label, json.loads(record.workflow_text),
                        record.settings, record.files, record.images, record.error, targets=record.targets)

    # ----- writing ----------------------------------------------------------------------
    def _write_thumbs(self, run: HistoryRun, images: list[Any]) -> int:
        folder = self.folder / THUMBS
        folder.mkdir(parents=True, exist_ok=True)
        seen: set[bytes] = set()
        total = 0
        for image in images:
            if len(run.thumbs) >= MAX_THUMBS:
                break
            thumb = image.convert("RGB")
            thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
            pixels = thumb.tobytes()
            if pixels in seen:  # Save image and Preview image of the same picture: one thumbnail
                continue
            seen.add(pixels)
            name = f"{run.id}_{len(run.thumbs)}.png"
            path = safe_io.write_new(folder / name, lambda handle, t=thumb: t.save(handle, format="PNG"))
            run.thumbs.append(name)
            total += self._size(path)
        return total

    def _append(self, line: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o666)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(f"{self.path}: is {safe_io.kind_of(info.st_mode)}, not a file")
            if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
                line = b"\n" + line  # a line cut by a crash stays a line of its own (skipped on load)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def _trim(self) -> bool:
        """Drop the oldest runs past the bounds; True when some were dropped."""
        dropped = []
        total = sum(r.size for r in self.runs)
        while self.runs and (len(self.runs) > self.max_runs or (total > self.max_bytes and len(self.runs) > 1)):
            run = self.runs.pop(0)
            total -= run.size
            dropped.append(run)
        if not dropped:
            return False
        text = "".join(_line(r) for r in self.runs)
        safe_io.write_atomic(self.path, text.encode("utf-8"))
        for run in dropped:
            for name in run.thumbs:
                try:
                    os.remove(self.thumb_path(name))
                except OSError:
                    pass
        return True

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

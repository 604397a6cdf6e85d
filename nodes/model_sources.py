"""Where a model's files come from, and the quick checks that refuse a bad source before any
weights are read: a path that is not a model file or a diffusers folder, a FIFO, a folder walk
that would never end, unreadable settings files. Every refusal names the path."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphs import safe_io

from .paths import bundled_model_dir

DTYPES = ("auto", "fp32", "fp16", "bf16")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt")
_FINGERPRINT_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".ckpt", ".pt")
_MAX_JSON_BYTES = 4 * 1024 * 1024  # model_index.json, latent_rgb.json, latentgraph.json


class ModelLoadError(RuntimeError):
    """A model source that cannot be loaded, with a message a user can act on."""


def resolve_source(source: str) -> Path:
    """``bundled``, a diffusers folder or a single-file checkpoint; anything else is refused at
    once (a folder without ``model_index.json``, a FIFO, a device) without reading it."""
    if source.strip().lower() in ("", "bundled"):
        path = bundled_model_dir()
        if not (path / "model_index.json").is_file():
            raise ModelLoadError(f"the bundled model is missing from {path}; "
                                 "run scripts/train_bundled_model.py or point source at a model")
        return path
    return checked_source(source, "model", "model_index.json",
                          "point source at a model folder or a .safetensors file")


def checked_source(source: str, what: str, marker: str, hint: str) -> Path:
    """``source`` resolved, if it is a folder holding ``marker`` (a diffusers folder) or a regular
    file; anything else (missing, a FIFO, a device) is refused at once naming the path, without
    reading it."""
    path = Path(source).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ModelLoadError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"{what} source {path}: {exc.strerror}") from None
    path = path.resolve()
    if stat.S_ISDIR(info.st_mode):
        if not (path / marker).is_file():
            raise ModelLoadError(f"{path} is not a diffusers {what} folder (no {marker}); {hint}")
    elif not stat.S_ISREG(info.st_mode):
        raise ModelLoadError(f"{what} source {path}: is {safe_io.kind_of(info.st_mode)}, not a {what} file")
    return path


def checked_file(source: str, what: str, param: str, suffixes: tuple[str, ...]) -> Path:
    """``source`` as one model file of ``suffixes``; a folder, a FIFO, a device or another kind of
    file is refused naming the path and the param to set."""
    kinds = ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]
    if Path(source).expanduser().is_dir():
        raise ModelLoadError(f"{Path(source).expanduser()}: a folder; point {param} at a {what} {kinds} file")
    path = checked_source(source, what, "", f"point {param} at a {what} {kinds} file")
    if path.suffix.lower() not in suffixes:
        raise ModelLoadError(f"{path.name}: not a {what} file (expected {kinds})")
    return path


def read_json(file: Path) -> Any:
    """A small JSON settings file of a model; ModelLoadError naming it when it is not one."""
    try:
        with safe_io.open_regular(file, _MAX_JSON_BYTES) as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise ModelLoadError(f"{file}: not a readable JSON file ({exc})") from None


def components(folder: Path) -> list[str]:
    """The component sub-folders ``model_index.json`` names (``unet``, ``vae``...)."""
    index = read_json(folder / "model_index.json")
    if not isinstance(index, dict):
        raise ModelLoadError(f"{folder / 'model_index.json'}: expected a JSON object")
    return sorted(name for name, value in index.items() if not name.startswith("_")
                  and isinstance(value, list) and (folder / name).is_dir())


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Regular files directly in ``folder`` (one level: diffusers keeps weights there)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise ModelLoadError(f"{folder}: cannot list the folder ({exc.strerror})") from None
    return [Path(e.path) for e in entries
            if e.name.lower().endswith(suffixes) and e.is_file(follow_symlinks=True)]


def model_files(folder: Path, suffixes: tuple[str, ...] = _FINGERPRINT_SUFFIXES) -> list[Path]:
    """The files of a diffusers folder: its top level and its components' folders."""
    files = _files(folder, suffixes)
    for name in components(folder):
        files.extend(_files(folder / name, suffixes))
    return files


def path_fingerprint(path: Path) -> str:
    """Changes when any model file changes, even rewritten with its mtime put back (the inode
    or ctime then differs); cheap: one stat per file, no walk beyond the components."""
    if path.is_file():
        files, base = [path], path.parent
    elif (path / "model_index.json").is_file():
        files, base = model_files(path), path
    else:  # one component's folder (a VAE on its own)
        files, base = _files(path, _FINGERPRINT_SUFFIXES), path
    parts = []
    for file in files:
        info = file.stat()
        parts.append(f"{file.relative_to(base)}:{info.st_ino}:{info.st_size}:"
                     f"{info.st_mtime_ns}:{info.st_ctime_ns}")
    return "|".join(parts)


def files_fingerprint(param: str, locate: Callable[[str, dict[str, Any]], Path]):
    """A node type's ``fingerprint`` for a param that names model files (``locate`` turns its value
    into the path): the files' state, or why they are missing, so a changed or mended file
    re-runs the node."""
    def fingerprint(params: dict[str, Any], settings: dict[str, Any]) -> str:
        try:
            return path_fingerprint(locate(params[param], settings))
        except (ModelLoadError, OSError) as exc:
            return f"missing:{exc}"
    return fingerprint


def model_settings(path: Path) -> dict[str, Any]:
    """A model folder's ``latentgraph.json``: its recommended settings (scheduler, steps, cfg,
    size, prompt) and preferences such as ``dtype``; ``{}`` when there is none or it is unreadable."""
    file = path / "latentgraph.json"
    if not path.is_dir() or not file.is_file():
        return {}
    try:
        data = read_json(file)
    except ModelLoadError:
        return {}
    return data if isinstance(data, dict) else {}


def preferred_dtype(path: Path) -> str | None:
    """The dtype a model folder asks for (``"dtype": "fp32"`` in its settings), if valid.

    The bundled model is tiny and trained in fp32; its fp16 image on a GPU was seen to differ
    from the fp32 one far more than rounding explains (docs/benchmarks.md), so it asks for fp32.
    """
    value = model_settings(path).get("dtype")
    return value if value in DTYPES else None


def _numbers(value: Any, count: int) -> tuple[float, ...] | None:
    if not isinstance(value, list) or len(value) != count:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in value):
        return None
    return tuple(float(v) for v in value)


def load_latent_rgb(folder: Path, channels: int) -> tuple[tuple, tuple] | None:
    """A model's own latent→RGB preview map (``latent_rgb.json``: ``matrix``, one [R, G, B] row
    per latent channel, and an optional ``bias``); None when the folder has none."""
    file = folder / "latent_rgb.json"
    if not file.exists():
        return None
    data = read_json(file)
    rows = data.get("matrix") if isinstance(data, dict) else None
    matrix = [_numbers(row, 3) for row in rows] if isinstance(rows, list) else [None]
    if len(matrix) != channels or None in matrix:
        raise ModelLoadError(f"{file}: 'matrix' must be {channels} rows (one per latent channel) "
                             "of 3 finite numbers (R, G, B)")
    bias = _numbers(data.get("bias", [0.0, 0.0, 0.0]), 3)
    if bias is None:
        raise ModelLoadError(f"{file}: 'bias' must be 3 finite numbers (R, G, B)")
    return tuple(matrix), bias


def check_weights(folder: Path) -> bool:
    """True when the components hold safetensors weights; False when only pickles (.bin and the
    like, read by diffusers with ``weights_only=True``); refused when there are none."""
    files = model_files(folder, WEIGHT_SUFFIXES)
    if not files:
        raise ModelLoadError(f"{folder}: no weights found (expected *.safetensors)")
    return any(f.suffix.lower() == ".safetensors" for f in files)

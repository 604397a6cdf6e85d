"""Where model files are found by name: models folders in ComfyUI's layout (``checkpoints/``,
``loras/``, ``vae/``, ``embeddings/``, ``controlnet/``, ``upscale_models/``), and ComfyUI's own
``extra_model_paths.yaml``, so one set of folders serves both apps.

The folders come from the run settings (``models_dir``: the editor's Settings, the CLI's
``--models-dir``; ``extra_model_paths``: a ComfyUI yaml) and from the environment
(``LATENTGRAPH_MODELS_DIR``, several joined by ``os.pathsep``; ``LATENTGRAPH_EXTRA_MODEL_PATHS``).
A param that names a file takes a path as before, or a name (``style.safetensors``, or ``style``)
looked up in the folders of its kind. Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .model_sources import ModelLoadError

KINDS = ("checkpoints", "loras", "vae", "embeddings", "controlnet", "upscale_models")
SUFFIXES = {"checkpoints": (".safetensors", ".ckpt"), "loras": (".safetensors", ".pt", ".ckpt"),
            "vae": (".safetensors",), "embeddings": (".safetensors", ".pt", ".bin"),
            "controlnet": (".safetensors",), "upscale_models": (".safetensors", ".pth")}
ENV_MODELS = "LATENTGRAPH_MODELS_DIR"
ENV_EXTRA = "LATENTGRAPH_EXTRA_MODEL_PATHS"
_MAX_LISTED = 5000  # files listed per kind: a folder tree of millions is not walked


def folders(kind: str, settings: dict[str, Any]) -> list[Path]:
    """The folders searched for files of ``kind``, in order."""
    bases = [settings.get("models_dir") or "", *os.environ.get(ENV_MODELS, "").split(os.pathsep)]
    found = [Path(base).expanduser() / kind for base in bases if base]
    for yaml_file in (settings.get("extra_model_paths") or "", os.environ.get(ENV_EXTRA, "")):
        if yaml_file:
            found += _comfy_paths(Path(yaml_file).expanduser(), kind)
    unique = []
    for folder in found:
        if folder not in unique:
            unique.append(folder)
    return unique


def _comfy_paths(file: Path, kind: str) -> list[Path]:
    """ComfyUI's extra_model_paths.yaml: sections of ``kind: one or more paths`` (one per line),
    relative to the section's ``base_path``."""
    import yaml

    try:
        with open(file, encoding="utf-8") as handle:
            data = yaml.safe_load(handle.read(1_000_000))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"extra model paths {file}: not readable ({exc})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"extra model paths {file}: expected sections of model folders")
    paths = []
    for section in data.values():
        if not isinstance(section, dict):
            continue
        base = Path(str(section.get("base_path", ""))).expanduser()
        if not base.is_absolute():
            base = file.parent / base
        value = section.get(kind)
        for line in str(value).splitlines() if value else ():
            if line.strip():
                paths.append(base / line.strip())
    return paths


def find(kind: str, name: str, settings: dict[str, Any], resolved: str | None = None) -> Path:
    """The file ``name`` stands for: ``resolved`` (the name as a path) if it exists, else ``name``
    (with or without its suffix) in the folders of ``kind``; refused naming where it looked."""
    if resolved and Path(resolved).expanduser().exists():
        return Path(resolved).expanduser()
    candidates = [name] + [name + suffix for suffix in SUFFIXES[kind] if not name.lower().endswith(suffix)]
    searched = folders(kind, settings)
    for folder in searched:
        for candidate in candidates:
            path = folder / candidate
            if path.exists():  # a file, or a diffusers folder (checkpoints/, vae/)
                return path
    what = {"checkpoints": "model", "loras": "LoRA", "vae": "VAE", "embeddings": "embedding",
            "controlnet": "ControlNet", "upscale_models": "upscale model"}[kind]
    message = f"{what} not found: {resolved or name}"
    if searched:
        message += f"; also looked in {', '.join(str(f) for f in searched)}"
    elif "/" not in name and os.sep not in name:  # a bare name: it can only be found in a models folder
        message += f"; no models folder is set (File → Models folder…, --models-dir or {ENV_MODELS})"
    raise ModelLoadError(message)


def listing(kind: str, settings: dict[str, Any]) -> dict[str, Path]:
    """Files of ``kind`` in its folders (subfolders included): relative name -> path; the first
    folder that has a name wins."""
    found: dict[str, Path] = {}
    for folder in folders(kind, settings):
        if not folder.is_dir():
            continue
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for file in sorted(files):
                if file.lower().endswith(SUFFIXES[kind]):
                    path = Path(root) / file
                    found.setdefault(path.relative_to(folder).as_posix(), path)
                    if len(found) >= _MAX_LISTED:
                        return found
    return found


def resolve_named(kind: str, value: str, settings: dict[str, Any]) -> str:
    """A file param's value as a path: the path as written (relative to the workflow), else the
    name in the folders of ``kind``; "bundled" and "" are left as they are."""
    from graphs.executor import resolve_path

    if not value.strip() or value.strip().lower() == "bundled":
        return value
    return str(find(kind, value, settings, resolve_path(value, settings)))

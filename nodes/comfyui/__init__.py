"""Open ComfyUI workflows: the UI workflow JSON, the API prompt JSON, and PNG/WebP images that
carry either. They become LatentGraph graphs (nodes/comfyui/node_map.py maps the core node types;
anything else is a placeholder that keeps its widgets and links) plus an :class:`ImportReport`
saying what was guessed or left out.

``load_any(path)`` opens whatever a user drops: our own workflow files and images too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graphs.registry import Registry, default_registry
from graphs.workflow_check import WorkflowError

from .model import ComfyFormatError, ComfyGraph
from .read_api import looks_like_api, read_api
from .read_ui import looks_like_ui, read_ui
from .report import ImportReport

__all__ = ["ComfyFormatError", "ImportReport", "detect", "import_data", "load_any", "image_workflow"]

IMAGE_SUFFIXES = (".png", ".webp")


def detect(data: Any) -> str | None:
    """"ui" or "api" for ComfyUI's formats, None for anything else (ours included)."""
    if looks_like_ui(data):
        return "ui"
    if looks_like_api(data):
        return "api"
    return None


def import_data(data: Any, registry: Registry | None = None, file: str | None = None):
    """``(Graph, ImportReport)`` for a ComfyUI workflow or prompt (parsed JSON); WorkflowError
    naming the file and the JSON path of the first problem, if it cannot be read."""
    from graphs.workflow import from_dict

    from .build import Builder
    from .node_map import MAPPINGS

    registry = registry or default_registry()
    kind = detect(data)
    try:
        if kind is None:
            raise ComfyFormatError("", "not a ComfyUI workflow or API prompt")
        graph: ComfyGraph = read_ui(data) if kind == "ui" else read_api(data)
    except ComfyFormatError as exc:
        raise WorkflowError(exc.path, exc.message, file) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a structure the readers did not expect
        raise WorkflowError("", f"not a readable ComfyUI file ({type(exc).__name__}: {exc})", file) from None
    source = (f"ComfyUI workflow (frontend {graph.frontend})" if kind == "ui" and graph.frontend
              else "ComfyUI workflow" if kind == "ui" else "ComfyUI API prompt")
    report = ImportReport(source, len(graph.nodes), dropped=list(graph.notes))
    ours = Builder(graph, registry, report, MAPPINGS).build()
    return from_dict(ours, registry, file), report


def image_workflow(path: str | Path) -> tuple[str, Any] | None:
    """What an image carries: ``("latentgraph", text)``, ``("comfyui", parsed JSON)`` (its UI
    workflow, else its API prompt) or None. PNG text chunks; WebP EXIF as ComfyUI writes it."""
    from graphs import pngmeta

    path = Path(path)
    if path.suffix.lower() == ".webp":
        chunks = _webp_texts(path)
    else:
        chunks = pngmeta.read_text_chunks(path)
    if pngmeta.WORKFLOW_KEY in chunks:
        return "latentgraph", chunks[pngmeta.WORKFLOW_KEY]
    for key in ("workflow", "prompt"):
        if key in chunks:
            try:
                return "comfyui", json.loads(chunks[key])
            except ValueError as exc:
                raise WorkflowError(key, f"the image's {key!r} text is not JSON ({exc})", str(path)) from None
    return None


def _webp_texts(path: Path) -> dict[str, str]:
    from PIL import Image

    from graphs import limits, safe_io

    with safe_io.open_regular(path, limits.MAX_FILE_BYTES * 4) as handle, Image.open(handle) as image:
        exif = image.getexif()
        texts = {}
        for value in exif.values():
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str) and ":" in value:
                key, _, text = value.partition(":")
                if key in ("workflow", "prompt"):
                    texts[key] = text
        return texts


def load_any(path: str | Path, registry: Registry | None = None):
    """``(Graph, ImportReport or None)`` for a workflow file or an image that carries one, ours or
    ComfyUI's; WorkflowError naming the file and the problem."""
    from graphs import workflow

    registry = registry or default_registry()
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            found = image_workflow(path)
        except (OSError, ValueError) as exc:
            if isinstance(exc, WorkflowError):
                raise
            raise WorkflowError("", str(exc), str(path)) from None
        if found is None:
            raise WorkflowError("", "this image carries no LatentGraph or ComfyUI workflow", str(path))
        kind, content = found
        if kind == "latentgraph":
            return workflow.loads(content, registry, file=str(path)), None
        return import_data(content, registry, str(path))
    data = workflow.read_json(path)
    if detect(data) is not None:
        return import_data(data, registry, str(path))
    return workflow.from_dict(data, registry, str(path)), None

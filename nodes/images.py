"""Image nodes: load, save (PNG with the workflow embedded), preview."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from graphs.executor import resolve_path
from graphs.pngmeta import PARAMETERS_KEY, WORKFLOW_KEY
from graphs.registry import NodeType, Param, Socket
from graphs.reports import run_parameters

from .previews import images_to_pil, pil_to_images


def _file_fingerprint(params: dict[str, Any], settings: dict[str, Any]) -> str:
    path = Path(resolve_path(params["path"], settings))
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def run_load_image(ctx, path: str) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    file = Path(ctx.resolve_path(path))
    if not path:
        raise ValueError("no image chosen (param 'path' is empty)")
    if not file.is_file():
        raise FileNotFoundError(f"image not found: {file}")
    try:
        with Image.open(file) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image {file}: {exc}") from None
    return {"image": pil_to_images([rgb])}


LOAD_IMAGE = NodeType(
    "image.load", "Load image", "image", run_load_image,
    outputs=(Socket("image", "IMAGE"),),
    params=(Param("path", "path", "", tooltip="a PNG, JPEG or WebP file"),),
    fingerprint=_file_fingerprint,
    description="Reads an image file.",
)


_PATTERN_FIELD = re.compile(r"[^A-Za-z0-9_.\- ]")


def next_free_path(folder: Path, prefix: str) -> Path:
    """``prefix_00001.png``, one past the highest counter already in ``folder``."""
    stem = _PATTERN_FIELD.sub("_", prefix).strip() or "image"
    pattern = re.compile(re.escape(stem) + r"_(\d{5,})\.png$")
    highest = 0
    for entry in os.listdir(folder):
        match = pattern.match(entry)
        if match:
            highest = max(highest, int(match.group(1)))
    return folder / f"{stem}_{highest + 1:05d}.png"


def run_save_image(ctx, image, prefix: str) -> dict[str, Any]:
    from PIL.PngImagePlugin import PngInfo

    folder = Path(ctx.settings.get("output_dir") or "output").expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    workflow = json.dumps(ctx.workflow(), ensure_ascii=False)
    parameters = run_parameters(ctx.graph, ctx.node_id)
    pils = images_to_pil(image)
    paths = []
    for index, pil in enumerate(pils):
        info = PngInfo()
        info.add_itxt(WORKFLOW_KEY, workflow, zip=True)
        info.add_itxt(PARAMETERS_KEY, json.dumps({**parameters, "batch_index": index},
                                                 ensure_ascii=False))
        path = next_free_path(folder, prefix)
        tmp = path.with_name(f".{path.name}.tmp")
        pil.save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
        paths.append(str(path))
    ctx.show_images(pils)
    return {"paths": paths}


SAVE_IMAGE = NodeType(
    "image.save", "Save image", "image", run_save_image,
    inputs=(Socket("image", "IMAGE"),),
    params=(Param("prefix", "string", "latentgraph", tooltip="file name prefix; a counter follows"),),
    output_node=True,
    always_run=True,  # a side effect: every run that asks for it writes its files
    description="Writes PNGs into the output folder with the workflow embedded.",
)


def run_preview_image(ctx, image) -> dict[str, Any]:
    pils = images_to_pil(image)
    ctx.show_images(pils)
    return {"images": pils}


PREVIEW_IMAGE = NodeType(
    "image.preview", "Preview image", "image", run_preview_image,
    inputs=(Socket("image", "IMAGE"),),
    output_node=True,
    description="Shows images on the node without writing files.",
)

NODE_TYPES = (LOAD_IMAGE, SAVE_IMAGE, PREVIEW_IMAGE)

"""Image nodes: load, save (PNG with the workflow embedded), preview."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from graphs import safe_io
from graphs.executor import resolve_path
from graphs.pngmeta import INFOTEXT_KEY, PARAMETERS_KEY, WORKFLOW_KEY
from graphs.registry import NodeType, Param, Socket
from graphs.reports import run_parameters
from graphs.run_settings import DEFAULT_OUTPUT_DIR

from .infotext import infotext
from .previews import images_to_pil

# The largest Empty latent side: an image the app cannot generate it refuses to decode.
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_FILE_BYTES = 1024**3
# Files up to this size are fingerprinted by content (docs/benchmarks.md: a 4 MP PNG hashes in
# milliseconds); larger ones by inode, size, mtime and ctime, which a restored mtime cannot fake.
HASH_LIMIT_BYTES = 64 * 1024**2


def _file_fingerprint(params: dict[str, Any], settings: dict[str, Any]) -> str:
    path = Path(resolve_path(params["path"], settings))
    try:
        info = path.stat()
    except OSError:
        return "missing"
    if not stat.S_ISREG(info.st_mode):
        return f"not a file:{stat.S_IFMT(info.st_mode)}"
    if info.st_size > HASH_LIMIT_BYTES:
        return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"
    try:
        with safe_io.open_regular(path) as handle:
            return f"{info.st_size}:{hashlib.file_digest(handle, 'blake2b').hexdigest()}"
    except (OSError, ValueError):
        return "unreadable"


def run_load_image(ctx, path: str) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    if not path:
        raise ValueError("no image chosen (param 'path' is empty)")
    file = Path(ctx.resolve_path(path))
    try:
        handle = safe_io.open_regular(file, MAX_IMAGE_FILE_BYTES)
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {file}") from None
    except OSError as exc:
        raise ValueError(f"cannot open image {file}: {exc.strerror}") from None
    with handle:
        try:
            with Image.open(handle) as image:
                width, height = image.size
                if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
                    raise ValueError(f"{file}: the image is {width}x{height}; the largest this "
                                     f"app takes is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}")
                image.load()
                pixels = image_to_float_rgb(image, file)
        except Image.DecompressionBombError as exc:
            raise ValueError(f"{file}: refused, far larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} "
                             f"({exc})") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"cannot read image {file}: {exc}") from None
    import torch

    return {"image": torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).contiguous()}


def image_to_float_rgb(image, file: Path | str = "image"):
    """A PIL image as ``[H, W, 3]`` float32 in 0..1, keeping 16-bit precision; transparency is
    dropped (its colour kept, as ComfyUI does); a mode with no faithful RGB is refused."""
    import numpy as np

    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{file}: a {mode} image with values outside 0..65535 "
                             f"({values.min()}..{values.max()}); convert it to 8 or 16 bits")
        grey = values.astype(np.float32) / 65535.0
    elif mode == "F":
        grey = np.asarray(image, dtype=np.float32)
        if grey.size and not (np.isfinite(grey).all() and grey.min() >= 0 and grey.max() <= 1):
            raise ValueError(f"{file}: a floating-point image with values outside 0..1; "
                             "convert it to 8 or 16 bits")
    else:
        try:
            if "A" in mode or "a" in mode or "transparency" in image.info:
                image = image.convert("RGBA")
            rgb = image.convert("RGB")
        except ValueError as exc:
            raise ValueError(f"{file}: images in mode {mode} are not supported ({exc}); "
                             "convert it to RGB") from None
        return np.asarray(rgb, dtype=np.float32) / 255.0
    return np.repeat(grey[:, :, None], 3, axis=2)


LOAD_IMAGE = NodeType(
    "image.load", "Load image", "image", run_load_image,
    outputs=(Socket("image", "IMAGE"),),
    params=(Param("path", "path", "", tooltip="a PNG, JPEG or WebP file, up to 8192x8192"),),
    fingerprint=_file_fingerprint,
    aliases=("LoadImage",),
    description="Reads an image file.",
)


_PATTERN_FIELD = re.compile(r"[^A-Za-z0-9_.\- ]")
# ``stem_NNNNN.png`` stays far inside any file system's 255-byte name limit, counter included.
MAX_STEM = 200


def file_stem(prefix: str) -> str:
    """The prefix as a safe file-name stem: other characters become ``_``, cut to MAX_STEM."""
    return _PATTERN_FIELD.sub("_", prefix).strip()[:MAX_STEM] or "image"


def candidate_names(folder: Path, stem: str):
    """``stem_00001.png`` onwards, from one past the highest counter already in ``folder``; a
    name another writer takes first is skipped when it is claimed."""
    pattern = re.compile(re.escape(stem) + r"_(\d{5,})\.png$")
    highest = 0
    for entry in os.listdir(folder):
        match = pattern.match(entry)
        if match:
            highest = max(highest, int(match.group(1)))
    for counter in range(highest + 1, highest + 100_000):
        yield f"{stem}_{counter:05d}.png"


def png_info(workflow_text: str | None, parameters: dict[str, Any], infotext: str | None = None):
    """The PNG text chunks every image the app writes carries: the workflow that made it
    (zipped; dropping the PNG on the canvas restores it), the run's readable parameters (JSON)
    and, for an image a graph made, A1111's infotext."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if infotext is not None:
        info.add_itxt(INFOTEXT_KEY, infotext)
    if workflow_text is not None:
        info.add_itxt(WORKFLOW_KEY, workflow_text, zip=True)
    info.add_itxt(PARAMETERS_KEY, json.dumps(parameters, ensure_ascii=False, default=repr))
    return info


def write_png(path: Path, pil, workflow: dict[str, Any] | None, parameters: dict[str, Any],
              infotext: str | None = None) -> None:
    """One PNG at ``path``, atomically through :mod:`graphs.safe_io` like every write the app makes.
    ``workflow`` is None for images no single graph made (a sweep's grids)."""
    info = png_info(None if workflow is None else json.dumps(workflow, ensure_ascii=False), parameters, infotext)
    safe_io.write_atomic(path, lambda handle: pil.save(handle, format="PNG", pnginfo=info))


def run_save_image(ctx, image, prefix: str) -> dict[str, Any]:
    folder = Path(ctx.settings.get("output_dir") or DEFAULT_OUTPUT_DIR).expanduser()
    try:
        safe_io.check_output_folder(folder)
        folder.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as exc:
        raise ValueError(f"output folder refused: {exc}") from None
    stem = file_stem(prefix)
    if len(stem) < len(_PATTERN_FIELD.sub("_", prefix).strip()):
        ctx.warn(f"prefix cut to its first {MAX_STEM} characters")
    workflow = json.dumps(ctx.workflow(), ensure_ascii=False)
    parameters = run_parameters(ctx.graph, ctx.node_id)
    pils = images_to_pil(image)
    # the images' own size: a "model default" or img2img size is known only from the image
    parameters.update(width=pils[0].width, height=pils[0].height)
    a1111 = infotext(ctx.graph, ctx.node_id, parameters, ctx.settings)  # one batch, one text: once
    paths = []
    for index, pil in enumerate(pils):
        info = png_info(workflow, {**parameters, "batch_index": index}, a1111)
        path = safe_io.write_unique(folder, candidate_names(folder, stem),
                                    lambda handle, pil=pil, info=info:
                                    pil.save(handle, format="PNG", pnginfo=info))
        paths.append(str(path))
    ctx.show_images(pils)
    return {"paths": paths}


SAVE_IMAGE = NodeType(
    "image.save", "Save image", "image", run_save_image,
    inputs=(Socket("image", "IMAGE"),),
    params=(Param("prefix", "string", "latentgraph", tooltip="file name prefix; a counter follows"),),
    output_node=True,
    always_run=True,  # a side effect: every run that asks for it writes its files
    aliases=("SaveImage", "output"),
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
    aliases=("PreviewImage", "show"),
    description="Shows images on the node without writing files.",
)

NODE_TYPES = (LOAD_IMAGE, SAVE_IMAGE, PREVIEW_IMAGE)

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


def file_fingerprint(value: str, settings: dict[str, Any]) -> str:
    """What a file param's file is now, so a changed file reruns its node (an edited image or mask
    under the same name)."""
    if not value:
        return ""
    path = Path(resolve_path(value, settings))
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


def open_image_file(ctx, path: str, what: str = "image"):
    """``(loaded PIL image, its path)`` for a file param's value (see :func:`open_image`)."""
    file = Path(ctx.resolve_path(path))
    return open_image(file, what), file


def open_image(file: Path, what: str = "image"):
    """The pixels of an image file as a loaded PIL image (its size checked before decoding), through
    the app's safe open: no links, no devices, nothing over the file-size limit. FileNotFoundError
    or ValueError naming the file. The mask editor reads images with it, so it sees what the node sees."""
    from PIL import Image, UnidentifiedImageError

    try:
        handle = safe_io.open_regular(file, MAX_IMAGE_FILE_BYTES)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {file}") from None
    except OSError as exc:
        raise ValueError(f"cannot open {what} {file}: {exc.strerror}") from None
    with handle:
        try:
            image = Image.open(handle)
            width, height = image.size
            if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
                raise ValueError(f"{file}: the {what} is {width}x{height}; the largest this "
                                 f"app takes is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}")
            image.load()
            return image
        except Image.DecompressionBombError as exc:
            raise ValueError(f"{file}: refused, far larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} "
                             f"({exc})") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"cannot read {what} {file}: {exc}") from None


def run_load_image(ctx, path: str, mask: str = "") -> dict[str, Any]:
    import torch

    if not path:
        raise ValueError("no image chosen (param 'path' is empty)")
    image, file = open_image_file(ctx, path)
    pixels = torch.from_numpy(image_to_float_rgb(image, file)).permute(2, 0, 1).unsqueeze(0).contiguous()
    if mask:  # a painted mask (the editor's mask editor, or any grayscale file)
        mask_image, mask_file = open_image_file(ctx, mask, "mask")
        painted = torch.from_numpy(mask_values(mask_image, "luminance", mask_file)).unsqueeze(0)
        alpha = fit_mask(ctx, painted, pixels.shape[-2:])
    else:  # ComfyUI's convention: transparent pixels are the ones to repaint
        alpha = torch.from_numpy(mask_values(image, "alpha", file)).unsqueeze(0)
        alpha = 1.0 - alpha if image_has_alpha(image) else torch.zeros_like(alpha)
    return {"image": pixels, "mask": alpha}


MASK_CHANNELS = ("luminance", "alpha", "red", "green", "blue")


def image_has_alpha(image) -> bool:
    return "A" in image.mode or "a" in image.mode or "transparency" in image.info


def mask_values(image, channel: str, file: Path | str = "mask"):
    """One channel of a PIL image as ``[H, W]`` float32 in 0..1 (16-bit grey kept at full precision;
    alpha of an image without one: all 1)."""
    import numpy as np

    mode = image.mode
    if channel == "alpha":
        if not image_has_alpha(image):
            return np.ones((image.height, image.width), dtype=np.float32)
        return np.asarray(image.convert("RGBA"), dtype=np.float32)[:, :, 3] / 255.0
    if channel == "luminance" and (mode.startswith("I;16") or mode in ("I", "F")):
        return image_to_float_rgb(image, file)[:, :, 0]
    if channel == "luminance":
        try:
            return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
        except ValueError as exc:
            raise ValueError(f"{file}: images in mode {mode} are not supported ({exc})") from None
    return image_to_float_rgb(image, file)[:, :, "rgb".index(channel[0])]


def fit_mask(ctx, mask, size):
    """``mask`` [B, h, w] at ``size`` (h, w): a mask painted or loaded at another size is stretched to
    the image (bilinear), with a note on the node rather than a refusal."""
    import torch.nn.functional as F

    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    ctx.warn(f"mask is {mask.shape[-1]}x{mask.shape[-2]}, the image {size[1]}x{size[0]}: "
             "the mask was resized to the image")
    return F.interpolate(mask.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)


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
    outputs=(Socket("image", "IMAGE"), Socket("mask", "MASK")),
    params=(Param("path", "path", "", tooltip="a PNG, JPEG or WebP file, up to 8192x8192"),
            Param("mask", "path", "", linkable=False,
                  tooltip="a painted mask for this image (Edit mask... in the node's menu, or any grayscale "
                          "file; white repaints); empty: the image's transparent pixels are the mask")),
    fingerprint=lambda params, settings: "|".join(
        file_fingerprint(params.get(name, ""), settings) for name in ("path", "mask")),
    aliases=("LoadImage", "inpaint", "alpha"),
    description="Reads an image file; its mask is a painted mask file, or the image's transparency.",
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

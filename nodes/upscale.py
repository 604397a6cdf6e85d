"""Resizing latents and images: Upscale latent (the first half of a hires fix: upscale, then a
second UNet denoise at part strength), Image scale and Scale to megapixels.

The methods are torch's ``interpolate`` modes under the names ComfyUI users know (``nearest-exact``,
``bilinear``, ``area``, ``bicubic``; ``lanczos`` for images, through Pillow). A size of 0 keeps the
aspect ratio from the other side; results past the app's 8192-pixel side limit are refused.
"""

from __future__ import annotations

import math
from typing import Any

from graphs.registry import NodeType, Param, Socket

from .images import MAX_IMAGE_SIDE
from .values import Latent, VaeModel

LATENT_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "nearest")
IMAGE_METHODS = (*LATENT_METHODS, "lanczos")


def target_size(width: int, height: int, scale_by: float, new_width: int, new_height: int,
                multiple: int) -> tuple[int, int]:
    """The size to resize to: ``scale_by`` if non-zero, else the sides given (0: keep the aspect
    ratio from the other side), rounded to a multiple of ``multiple``; refused past the limit."""
    if scale_by:
        w, h = width * scale_by, height * scale_by
    elif new_width and new_height:
        w, h = new_width, new_height
    elif new_width:
        w, h = new_width, height * new_width / width
    elif new_height:
        w, h = width * new_height / height, new_height
    else:
        raise ValueError("set scale_by, or width and/or height")
    w, h = max(multiple, round(w / multiple) * multiple), max(multiple, round(h / multiple) * multiple)
    if w > MAX_IMAGE_SIDE or h > MAX_IMAGE_SIDE:
        raise ValueError(f"{w}x{h} is past the {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} limit")
    return int(w), int(h)


def _interpolate(tensor, size: tuple[int, int], method: str):
    """``tensor`` [batch, channels, h, w] resized to ``size`` (h, w)."""
    import torch.nn.functional as F

    if method in ("bilinear", "bicubic"):
        return F.interpolate(tensor, size=size, mode=method, align_corners=False)
    return F.interpolate(tensor, size=size, mode=method)


def run_upscale_latent(ctx, latent: Latent, method: str, scale_by: float, width: int, height: int,
                       vae: VaeModel | None = None) -> dict[str, Any]:
    scale = vae.scale_factor if vae is not None else 8  # pixels per latent cell: 8 in every SD VAE
    samples = latent.samples
    w, h = target_size(samples.shape[-1] * scale, samples.shape[-2] * scale, scale_by, width, height, scale)
    resized = _interpolate(samples.float(), (h // scale, w // scale), method).to(samples.dtype)
    ctx.status(f"{samples.shape[-1] * scale}x{samples.shape[-2] * scale} → {w}x{h}")
    # A resized latent is a starting point, not an empty one: UNet denoise at denoise < 1 re-noises
    # it to that strength (a hires fix), as it does an encoded image.
    return {"latent": Latent(resized, scaling_factor=latent.scaling_factor)}


def run_image_scale(ctx, image, method: str, scale_by: float, width: int, height: int) -> dict[str, Any]:
    w, h = target_size(image.shape[-1], image.shape[-2], scale_by, width, height, 1)
    return {"image": resize_image(image, (h, w), method)}


def run_scale_to_megapixels(ctx, image, method: str, megapixels: float) -> dict[str, Any]:
    factor = math.sqrt(megapixels * 1_000_000 / (image.shape[-1] * image.shape[-2]))
    w, h = target_size(image.shape[-1], image.shape[-2], factor, 0, 0, 1)
    return {"image": resize_image(image, (h, w), method)}


def resize_image(image, size: tuple[int, int], method: str):
    """IMAGE [batch, 3, h, w] in 0..1 resized; lanczos through Pillow (torch has none)."""
    import numpy as np
    import torch

    if method != "lanczos":
        return _interpolate(image, size, method).clamp(0, 1)
    from PIL import Image

    out = []
    for picture in image:
        pil = Image.fromarray((picture.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), "RGB")
        resized = np.asarray(pil.resize((size[1], size[0]), Image.Resampling.LANCZOS), dtype=np.float32) / 255
        out.append(torch.from_numpy(resized).permute(2, 0, 1))
    return torch.stack(out)


def _size_params(multiple: int) -> tuple[Param, ...]:
    return (Param("scale_by", "float", 2.0, min=0.0, max=16.0, step=0.25,
                  tooltip="multiply both sides; 0: use width and height instead"),
            Param("width", "int", 0, min=0, max=MAX_IMAGE_SIDE, step=multiple,
                  tooltip="pixels, when scale_by is 0; 0 keeps the aspect ratio from height"),
            Param("height", "int", 0, min=0, max=MAX_IMAGE_SIDE, step=multiple,
                  tooltip="pixels, when scale_by is 0; 0 keeps the aspect ratio from width"))


UPSCALE_LATENT = NodeType(
    "sd.upscale_latent", "Upscale latent", "latent", run_upscale_latent,
    inputs=(Socket("latent", "LATENT"), Socket("vae", "VAE", optional=True)), outputs=(Socket("latent", "LATENT"),),
    params=(Param("method", "choice", "nearest-exact", choices=LATENT_METHODS), *_size_params(8)),
    aliases=("LatentUpscale", "LatentUpscaleBy", "hires fix", "resize latent"),
    description="Resizes a latent (sides in pixels, multiples of 8). For a hires fix, follow it with a "
                "UNet denoise at denoise 0.4-0.6.",
)
IMAGE_SCALE = NodeType(
    "image.scale", "Image scale", "image", run_image_scale,
    inputs=(Socket("image", "IMAGE"),), outputs=(Socket("image", "IMAGE"),),
    params=(Param("method", "choice", "bicubic", choices=IMAGE_METHODS), *_size_params(1)),
    aliases=("ImageScale", "ImageScaleBy", "resize"),
    description="Resizes an image by a factor or to a size.",
)
SCALE_TO_MEGAPIXELS = NodeType(
    "image.scale_to_megapixels", "Scale to megapixels", "image", run_scale_to_megapixels,
    inputs=(Socket("image", "IMAGE"),), outputs=(Socket("image", "IMAGE"),),
    params=(Param("method", "choice", "bicubic", choices=IMAGE_METHODS),
            Param("megapixels", "float", 1.0, min=0.01, max=64.0, step=0.05,
                  tooltip="the image's pixel count afterwards, in millions, its aspect ratio kept")),
    aliases=("ImageScaleToTotalPixels",),
    description="Resizes an image to a pixel count, keeping its aspect ratio.",
)

NODE_TYPES = (UPSCALE_LATENT, IMAGE_SCALE, SCALE_TO_MEGAPIXELS)

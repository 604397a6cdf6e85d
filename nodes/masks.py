"""Mask nodes: Load mask, Grow mask, Feather mask, Invert mask, Threshold mask, Image to mask and
Mask to image.

A MASK is float32 ``[batch, height, width]`` in 0..1, 1 (white in a file) the area to repaint;
an IMAGE is float32 ``[batch, 3, height, width]`` in 0..1 (nodes/sockets.py). File reading reuses
Load image's helpers (nodes/images.py), so a mask file gets the same size limit, safe open, mode
handling and content fingerprint as an image.
"""

from __future__ import annotations

from typing import Any

from graphs.registry import NodeType, Param, Socket

from .images import MASK_CHANNELS, file_fingerprint, mask_values, open_image_file

# ITU-R BT.601 luma, the weights of PIL's "L" conversion (and OpenCV's RGB2GRAY).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
IMAGE_CHANNELS = ("luminance", "red", "green", "blue")
MAX_GROW = 256


def check_mask(mask, name: str = "mask"):
    """``mask`` as float32 [B, H, W], or a clear error naming the input."""
    import torch

    if not isinstance(mask, torch.Tensor) or mask.dim() != 3:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"input '{name}' is not a mask [batch, height, width]: got {shape}")
    return mask.float()


def check_image(image, name: str = "image"):
    """``image`` as float32 [B, 3, H, W], or a clear error naming the input."""
    import torch

    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"input '{name}' is not an RGB image [batch, 3, height, width]: got {shape}")
    return image.float()


def luminance(image):
    """[B, 3, H, W] → [B, H, W]: BT.601 luma."""
    r, g, b = LUMA_WEIGHTS
    return image[:, 0] * r + image[:, 1] * g + image[:, 2] * b


def run_load_mask(ctx, path: str, channel: str) -> dict[str, Any]:
    import torch

    if not path:
        raise ValueError("no mask chosen (param 'path' is empty)")
    image, file = open_image_file(ctx, path, "mask")
    values = torch.from_numpy(mask_values(image, channel, file)).unsqueeze(0).contiguous()
    if channel == "alpha":  # ComfyUI's LoadImageMask: transparent pixels are the ones to repaint
        values = 1.0 - values
    return {"mask": values}


def grow(mask, pixels: int, tapered_corners: bool, each_step=None):
    """``mask`` [B, H, W] dilated (pixels > 0) or eroded (pixels < 0) by |pixels|.

    Greyscale morphology, the same as ComfyUI's GrowMask (N repeats of a 3x3 grey dilation or
    erosion; pixels past the border are ignored, which for these kernels equals scipy's default
    'reflect' border). Square corners: N repeats of a 3x3 square are one (2N+1)x(2N+1) square, and a
    square's max is separable, so one row pool and one column pool do it in two passes whatever N.
    Tapered corners: the 3x3 cross has no such shortcut (N crosses make a diamond, not a
    separable shape), so it is applied N times; each repeat is two 3-wide pools and a max.
    Erosion is the dilation of the negated mask (a min-pool). Exact for any values, so a binary
    mask stays binary: one pixel grown by N is a diamond of radius N (tapered) or a square.
    ``each_step(i, n)`` is called after each repeat (the node's cancel check and progress).
    """
    import torch
    import torch.nn.functional as F

    n = abs(pixels)
    if n == 0:
        return mask
    sign = 1.0 if pixels > 0 else -1.0
    x = (mask * sign).unsqueeze(1)  # [B, 1, H, W]; max_pool pads with -inf: the border is ignored
    if not tapered_corners:
        x = F.max_pool2d(x, (1, 2 * n + 1), stride=1, padding=(0, n))
        x = F.max_pool2d(x, (2 * n + 1, 1), stride=1, padding=(n, 0))
    else:
        for step in range(n):
            x = torch.maximum(F.max_pool2d(x, (1, 3), stride=1, padding=(0, 1)),
                              F.max_pool2d(x, (3, 1), stride=1, padding=(1, 0)))
            if each_step is not None:
                each_step(step + 1, n)
    return (x[:, 0] * sign).contiguous()


def run_grow_mask(ctx, mask, pixels: int, tapered_corners: bool) -> dict[str, Any]:
    def each_step(step: int, total: int) -> None:
        ctx.check_cancel()
        ctx.progress(step, total)

    return {"mask": grow(check_mask(mask), pixels, tapered_corners, each_step)}


def gaussian_kernel(radius: int):
    """The 1-D Gaussian of ``2 * radius + 1`` taps with sigma = radius / 3 (the kernel reaches 3
    sigma, where the curve has fallen to 1% of its peak), normalised to sum 1."""
    import torch

    sigma = radius / 3.0
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def feather(mask, radius: int):
    """``mask`` [B, H, W] blurred by a separable Gaussian (``gaussian_kernel``); the border is
    extended (replicate), so a mask that fills the image stays full and the edges do not darken."""
    import torch.nn.functional as F

    if radius == 0:
        return mask
    kernel = gaussian_kernel(radius).to(mask.device)
    x = mask.unsqueeze(1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return x[:, 0].clamp(0, 1).contiguous()


def run_feather_mask(ctx, mask, radius: int) -> dict[str, Any]:
    return {"mask": feather(check_mask(mask), radius)}


def run_invert_mask(ctx, mask) -> dict[str, Any]:
    return {"mask": 1.0 - check_mask(mask)}


def run_threshold_mask(ctx, mask, value: float) -> dict[str, Any]:
    return {"mask": (check_mask(mask) >= value).float()}


def run_image_to_mask(ctx, image, channel: str) -> dict[str, Any]:
    image = check_image(image)
    if channel == "luminance":
        return {"mask": luminance(image).clamp(0, 1).contiguous()}
    return {"mask": image[:, IMAGE_CHANNELS.index(channel) - 1].contiguous()}


def run_mask_to_image(ctx, mask) -> dict[str, Any]:
    mask = check_mask(mask)
    return {"image": mask.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()}


_MASK_IN = (Socket("mask", "MASK"),)
_MASK_OUT = (Socket("mask", "MASK"),)

LOAD_MASK = NodeType(
    "mask.load", "Load mask", "mask", run_load_mask,
    outputs=_MASK_OUT,
    params=(Param("path", "path", "", tooltip="a PNG, JPEG or WebP file, up to 8192x8192; white repaints "
                                              "(16-bit greys kept at full precision)"),
            Param("channel", "choice", "luminance", choices=MASK_CHANNELS,
                  tooltip="which channel is the mask; alpha is inverted, as in ComfyUI: transparent "
                          "pixels (alpha 0) are the ones to repaint (mask = 1 - alpha)")),
    fingerprint=lambda params, settings: file_fingerprint(params.get("path", ""), settings),
    aliases=("LoadImageMask", "Load Image (as Mask)", "inpaint"),
    description="Reads a mask from a file: one channel of a grayscale or any image, white repaints.",
)
GROW_MASK = NodeType(
    "mask.grow", "Grow mask", "mask", run_grow_mask,
    inputs=_MASK_IN, outputs=_MASK_OUT,
    params=(Param("pixels", "int", 8, min=-MAX_GROW, max=MAX_GROW, step=1,
                  tooltip="how far the mask's edge moves out; negative shrinks it"),
            Param("tapered_corners", "bool", True,
                  tooltip="on: grow by a cross each pixel, so corners round off (a point becomes a "
                          "diamond); off: by a square, so corners stay square")),
    aliases=("GrowMask", "shrink mask", "expand mask", "dilate", "erode"),
    description="Grows (or with a negative size shrinks) the mask's white area by a number of pixels.",
)
FEATHER_MASK = NodeType(
    "mask.feather", "Feather mask", "mask", run_feather_mask,
    inputs=_MASK_IN, outputs=_MASK_OUT,
    params=(Param("radius", "int", 8, min=0, max=256, step=1,
                  tooltip="pixels: a Gaussian blur reaching this far (sigma = radius / 3); 0 leaves "
                          "the mask as it is"),),
    aliases=("FeatherMask", "blur mask", "soften mask", "mask blur"),
    description="Softens the mask's edges with a Gaussian blur, so a repaint blends into the image.",
)
INVERT_MASK = NodeType(
    "mask.invert", "Invert mask", "mask", run_invert_mask,
    inputs=_MASK_IN, outputs=_MASK_OUT,
    aliases=("InvertMask",),
    description="Swaps the areas to repaint and to keep (1 - mask).",
)
THRESHOLD_MASK = NodeType(
    "mask.threshold", "Threshold mask", "mask", run_threshold_mask,
    inputs=_MASK_IN, outputs=_MASK_OUT,
    params=(Param("value", "float", 0.5, min=0.0, max=1.0, step=0.01,
                  tooltip="values at or above this become 1 (repaint), the rest 0"),),
    aliases=("ThresholdMask", "binarize"),
    description="Makes a soft mask hard: every value at or above the threshold becomes 1, the rest 0.",
)
IMAGE_TO_MASK = NodeType(
    "mask.from_image", "Image to mask", "mask", run_image_to_mask,
    inputs=(Socket("image", "IMAGE"),), outputs=_MASK_OUT,
    params=(Param("channel", "choice", "luminance", choices=IMAGE_CHANNELS,
                  tooltip="luminance: ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B), as PIL's 'L'"),),
    aliases=("ImageToMask", "convert image to mask"),
    description="Makes a mask from one channel (or the luminance) of an image; white repaints.",
)
MASK_TO_IMAGE = NodeType(
    "mask.to_image", "Mask to image", "mask", run_mask_to_image,
    inputs=_MASK_IN, outputs=(Socket("image", "IMAGE"),),
    aliases=("MaskToImage", "convert mask to image", "preview mask"),
    description="Turns a mask into a grey image (white repaints), to preview, save or edit it.",
)

NODE_TYPES = (LOAD_MASK, GROW_MASK, FEATHER_MASK, INVERT_MASK, THRESHOLD_MASK, IMAGE_TO_MASK, MASK_TO_IMAGE)
